"""A streaming reply survives SIGKILL: committed text stays, the file stays sound.

A child process streams replies through `ReplyRecorder` and reports each committed write;
the test kills it at random moments, many times, on the same database, and checks after
each kill what a user would find at the next start.
"""

from __future__ import annotations

import importlib.util
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.chat import ConversationService
from app.store import open_database

CHILD = Path(__file__).with_name("reply_writer_child.py")
KILLS = 25
_spec = importlib.util.spec_from_file_location("reply_writer_child", CHILD)
assert _spec is not None and _spec.loader is not None
_child = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_child)
FULL_TEXT: str = _child.reply_text()


def _run_and_kill(path: Path, rng: random.Random) -> list[str]:
    """Start the child, let it stream for a random while, SIGKILL it; its stdout lines."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first == "ready\n", child.stderr.read() if child.stderr else first
        time.sleep(rng.uniform(0.0, 0.35))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    return out.splitlines()


def _reported(lines: list[str]) -> dict[int, int]:
    """The longest committed length reported per message id."""
    committed: dict[int, int] = {}
    for line in lines:
        first, second = line.split()
        if first != "done":
            committed[int(first)] = max(committed.get(int(first), 0), int(second))
    return committed


def _check_file(path: Path, committed: dict[int, int]) -> set[int]:
    """Integrity, and every reported text kept; returns the ids left 'partial'."""
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        connection.execute(
            "INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)"
        )
        rows = dict(
            connection.execute(
                "SELECT id, content FROM messages WHERE role = 'assistant'"
            ).fetchall()
        )
        partial = {
            row[0] for row in connection.execute("SELECT id FROM messages WHERE status = 'partial'")
        }
    finally:
        connection.close()
    for message_id, length in committed.items():
        content = rows[message_id]
        assert len(content) >= length, f"message {message_id} lost committed text"
        assert FULL_TEXT.startswith(content), f"message {message_id} holds damaged text"
    return partial


@pytest.mark.timeout(120)
def test_sigkill_while_streaming_loses_no_committed_text(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    open_database(path).close()
    rng = random.Random(20261128)
    committed: dict[int, int] = {}
    killed_mid_reply = 0
    began = time.monotonic()
    for _ in range(KILLS):
        lines = _run_and_kill(path, rng)
        for message_id, length in _reported(lines).items():
            committed[message_id] = max(committed.get(message_id, 0), length)
        partial = _check_file(path, committed)
        killed_mid_reply += bool(partial)
        with open_database(path) as db:
            service = ConversationService(db)
            assert service.recover_interrupted() == len(partial)
            with db.engine.connect() as connection:
                statuses = dict(
                    connection.exec_driver_sql("SELECT id, status FROM messages").fetchall()
                )
        assert {statuses[i] for i in partial} <= {"interrupted"}
        assert "partial" not in statuses.values()
    assert committed, "the child never reported a committed write"
    assert killed_mid_reply >= KILLS // 2, "most kills should land inside a reply"
    assert time.monotonic() - began < 60
