"""The `llm-workbench` command line, run as a user would (real process, real model)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app import __version__

pytestmark = pytest.mark.integration


def _cli(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLM_WORKBENCH_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "ui.entry", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_version(workbench_home: Path) -> None:
    result = _cli(workbench_home, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"llm-workbench {__version__}"


def test_hw_prints_a_summary_and_json(workbench_home: Path) -> None:
    text = _cli(workbench_home, "hw")
    assert text.returncode == 0
    assert "RAM" in text.stdout
    data = json.loads(_cli(workbench_home, "hw", "--json").stdout)
    assert data["memory"]["total_bytes"] > 0
    assert data["cpu"]["logical_cores"] >= 1


def test_models_json_lists_the_demo_and_the_models_folder(
    workbench_home: Path, smollm2_path: Path
) -> None:
    folder = workbench_home / "models" / "mine"
    folder.mkdir(parents=True)
    shutil.copy(smollm2_path, folder / "my-copy.Q4_1.gguf")
    rows = json.loads(_cli(workbench_home, "models", "--json").stdout)
    assert {row["source"] for row in rows} == {"demo", "models-folder"}
    for row in rows:
        assert set(row) == {
            "name",
            "path",
            "size_bytes",
            "source",
            "repo",
            "owned",
            "architecture",
            "parameters",
            "quant",
            "context_length",
            "problem",
        }
        assert row["size_bytes"] == smollm2_path.stat().st_size
        assert Path(row["path"]).is_file()


def test_chat_streams_to_stdout_figures_to_stderr_and_saves_history(
    workbench_home: Path,
) -> None:
    args = ("chat", "smollm2", "Say hello.", "--max-tokens", "12", "--seed", "3")
    first = _cli(workbench_home, *args, "--temperature", "0")
    second = _cli(workbench_home, *args, "--temperature", "0")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip()
    assert first.stdout == second.stdout
    assert "tok/s" in first.stderr
    assert "TTFT" in first.stderr
    assert "tok/s" not in first.stdout
    # The exchange is in the history the window reads.
    from app.chat import ConversationService
    from app.store import open_database

    service = ConversationService(open_database(workbench_home / "data" / "workbench.sqlite3"))
    conversations = service.list_conversations()
    assert len(conversations) == 2
    messages = service.messages(conversations[0].id)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[1].content == first.stdout
    assert messages[1].status == "complete"
    assert messages[1].stats is not None
    assert messages[1].stats.completion_tokens == 12


def test_chat_with_an_unknown_model_says_what_exists(workbench_home: Path) -> None:
    result = _cli(workbench_home, "chat", "no-such-model", "hi")
    assert result.returncode == 2
    assert "error:" in result.stderr
    assert "Traceback" not in result.stderr


def test_chat_with_a_corrupt_file_is_a_clear_error(workbench_home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\xff" * 64)
    result = _cli(workbench_home, "chat", str(bad), "hi")
    assert result.returncode == 2
    assert "not a usable GGUF" in result.stderr
    assert "Traceback" not in result.stderr
