"""Conversation export (Markdown, JSON) and JSON import, on real SQLite files."""

from __future__ import annotations

import copy
import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from app.chat import ConversationService
from app.errors import ExternalFailure, UserFacingError
from app.store import Conversation, Database, open_database
from app.store.queries import insert_message
from app.transfer import (
    EXPORT_FORMAT,
    InvalidConversationExport,
    export_json,
    export_markdown,
    import_json,
    write_export,
)
from runtimes.base import GenerationParams, GenerationStats

TITLE = "Show me Python: naïve café ☕"
CODE_REPLY = "Here:\n\n```python\nprint('héllo')\n```\n"
PARAMS = GenerationParams(temperature=0.2, seed=7, max_tokens=64, stop=("END",))


def _stats(stop_reason: str) -> GenerationStats:
    return GenerationStats(
        prompt_tokens=12,
        completion_tokens=34,
        load_time_s=0.5,
        ttft_s=0.08,
        decode_tps=55.5,
        total_time_s=0.7,
        stop_reason=stop_reason,  # type: ignore[arg-type]
    )


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(tmp_path / "history.sqlite3")
    yield database
    database.close()


@pytest.fixture()
def service(db: Database) -> ConversationService:
    return ConversationService(db)


@pytest.fixture()
def conversation_id(db: Database, service: ConversationService) -> int:
    """System prompt, a finished reply with code, a cancelled one cut inside a code block,
    and one whose worker died (no stats)."""
    conv = service.create("/models/smol.gguf", "SmolLM2", "llamacpp")
    with db.session() as session:
        row = session.get(Conversation, conv.id)
        assert row is not None
        insert_message(session, row, role="system", content="You are terse.")
    service.add_user_message(conv.id, TITLE)
    reply = service.start_reply(conv.id, "SmolLM2", "llamacpp", PARAMS)
    reply.append(CODE_REPLY)
    reply.finish(_stats("stop"))
    service.add_user_message(conv.id, "And in JS?")
    reply = service.start_reply(conv.id, "SmolLM2", "llamacpp", PARAMS)
    reply.append("```js\nlet x")
    reply.finish(_stats("cancelled"))
    service.add_user_message(conv.id, "Again")
    reply = service.start_reply(conv.id, "SmolLM2", "llamacpp", PARAMS)
    reply.append("Partial answer")
    reply.interrupt("The worker stopped.")
    return conv.id


def _count(service: ConversationService) -> int:
    return len(service.list_conversations())


# ------------------------------------------------------------------ Markdown


def test_markdown_has_title_roles_verbatim_code_metrics_and_marks(
    service: ConversationService, conversation_id: int
) -> None:
    expected = "\n".join(
        [
            f"# {TITLE}",
            "",
            "## System",
            "",
            "You are terse.",
            "",
            "## User",
            "",
            TITLE,
            "",
            "## Assistant",
            "",
            "Here:",
            "",
            "```python",
            "print('héllo')",
            "```",
            "",
            "*SmolLM2 · 55.5 tok/s · TTFT 0.08 s · 12 in / 34 out tokens*",
            "",
            "## User",
            "",
            "And in JS?",
            "",
            "## Assistant (interrupted)",
            "",
            "```js",
            "let x",
            "```",  # the fence the cut-off reply left open is closed
            "",
            "*SmolLM2 · 55.5 tok/s · TTFT 0.08 s · 12 in / 34 out tokens*",
            "",
            "## User",
            "",
            "Again",
            "",
            "## Assistant (interrupted)",
            "",
            "Partial answer",
            "",
            "*SmolLM2*",
            "",
            "> The worker stopped.",
            "",
        ]
    )
    assert export_markdown(service, conversation_id) == expected


# ---------------------------------------------------------------------- JSON


def test_json_export_has_the_documented_shape(
    service: ConversationService, conversation_id: int
) -> None:
    data = export_json(service, conversation_id)
    assert data["format"] == "llm-workbench.conversation"
    assert data["version"] == 1
    assert (data["title"], data["model_name"], data["model_path"], data["runtime"]) == (
        TITLE,
        "SmolLM2",
        "/models/smol.gguf",
        "llamacpp",
    )
    messages = data["messages"]
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    assert [m["status"] for m in messages if m["role"] == "assistant"] == [
        "complete",
        "interrupted",
        "interrupted",
    ]
    reply = messages[2]
    assert reply["content"] == CODE_REPLY
    assert reply["stats"] == _stats("stop").as_dict()
    assert reply["params"] == PARAMS.as_dict()
    assert messages[4]["stats"]["stop_reason"] == "cancelled"
    assert messages[6]["stats"] is None
    assert messages[6]["error"] == "The worker stopped."
    assert messages[0]["stats"] is None
    json.dumps(data)  # plain JSON all the way down


def test_round_trip_keeps_messages_and_marks_a_taken_title(
    tmp_path: Path, db: Database, service: ConversationService, conversation_id: int
) -> None:
    path = tmp_path / "chat.json"
    write_export(path, service, conversation_id)
    new_id = import_json(db, path)
    assert new_id != conversation_id
    first, second = export_json(service, conversation_id), export_json(service, new_id)
    assert second["messages"] == first["messages"]
    assert second["title"] == f"{TITLE} (imported)"
    assert {k: v for k, v in second.items() if k not in ("title", "messages")} == {
        k: v for k, v in first.items() if k not in ("title", "messages")
    }
    assert _count(service) == 2
    # The thread is chained like a recorded one: each message's parent is the one before.
    ids = [m.id for m in service.messages(new_id)]
    with db.engine.connect() as connection:
        parents = connection.execute(
            text("SELECT parent_id FROM messages WHERE conversation_id = :c ORDER BY id"),
            {"c": new_id},
        ).scalars()
        assert list(parents) == [None, *ids[:-1]]


def test_an_unused_title_is_kept_as_it_is(
    tmp_path: Path, service: ConversationService, conversation_id: int
) -> None:
    data = export_json(service, conversation_id)
    with open_database(tmp_path / "other.sqlite3") as other:
        new_id = import_json(other, data)
        assert ConversationService(other).get(new_id).title == TITLE


def test_imported_messages_are_found_by_full_text_search(
    db: Database, service: ConversationService
) -> None:
    data = _valid()
    data["messages"][1]["content"] = "The zephyrine lighthouse blinked."
    new_id = import_json(db, data)
    with db.engine.connect() as connection:
        hits = connection.execute(
            text("SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'zephyrine'")
        ).scalars()
        assert list(hits) == [service.messages(new_id)[1].id]


# ---------------------------------------------------------------- validation


def _valid() -> dict[str, Any]:
    return {
        "format": EXPORT_FORMAT,
        "version": 1,
        "title": "Hand made",
        "messages": [
            {"role": "user", "content": "Hi"},
            {
                "role": "assistant",
                "content": "Hello",
                "status": "complete",
                "stats": _stats("stop").as_dict(),
            },
        ],
    }


def _with(change: Any) -> str:
    data = copy.deepcopy(_valid())
    change(data)
    return json.dumps(data)


BAD_FILES = [
    ("not json {", "not a conversation export (not JSON"),
    ("[1, 2]", "not a conversation export (the JSON is a list, not an object)"),
    (_with(lambda d: d.update(format="something.else")), "not a conversation export (format"),
    (_with(lambda d: d.update(version=3)), "version 3 is newer than this app reads (1)"),
    (_with(lambda d: d.update(version="1")), "the version is missing or not a whole number"),
    (_with(lambda d: d.pop("messages")), "it has no 'messages'"),
    (_with(lambda d: d.update(messages={})), "'messages' is an object, not a list"),
    (_with(lambda d: d.pop("title")), "'title' is missing"),
    (
        _with(lambda d: d["messages"][1].update(role="robot")),
        "message 2: role 'robot' is not user/assistant/system",
    ),
    (
        _with(lambda d: d["messages"][0].update(content=42)),
        "message 1: 'content' is a number, not text",
    ),
    (_with(lambda d: d["messages"][0].pop("content")), "message 1: 'content' is missing"),
    (
        _with(lambda d: d["messages"][1].update(stats=[1, 2])),
        "message 2: 'stats' is a list, not an object or null",
    ),
    (
        _with(lambda d: d["messages"][1]["stats"].update(prompt_tokens="12")),
        "message 2: stats 'prompt_tokens' is not a whole number ≥ 0",
    ),
    (
        _with(lambda d: d["messages"][1]["stats"].update(stop_reason="bored")),
        "message 2: stats 'stop_reason' is not one of stop/length/cancelled/error",
    ),
    (
        _with(lambda d: d["messages"][1].update(status="done")),
        "message 2: status 'done' is not one of complete/partial/interrupted/error",
    ),
    (
        _with(lambda d: d["messages"][0].update(content="x" * 4_000_001)),
        "message 1: 'content' is longer than 4000000 characters",
    ),
    (
        _with(lambda d: d["messages"][0].update(created_at="yesterday")),
        "message 1: 'created_at' is not an ISO 8601 time",
    ),
]


@pytest.mark.parametrize(("content", "problem"), BAD_FILES)
def test_a_malformed_file_is_refused_by_name_and_creates_nothing(
    tmp_path: Path,
    db: Database,
    service: ConversationService,
    conversation_id: int,
    content: str,
    problem: str,
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    before = _count(service)
    with pytest.raises(InvalidConversationExport) as caught:
        import_json(db, path)
    assert isinstance(caught.value, UserFacingError)
    assert caught.value.message.startswith(f"{path} cannot be imported: {problem}")
    assert caught.value.message.endswith(
        "Nothing was imported; choose a file made with File ▸ Export Conversation… (JSON)."
    )
    assert _count(service) == before == 1


def test_a_valid_hand_made_file_takes_defaults(db: Database, service: ConversationService) -> None:
    new_id = import_json(db, _valid())
    first, second = service.messages(new_id)
    assert (first.role, first.content, first.status, first.stats, first.params) == (
        "user",
        "Hi",
        "complete",
        None,
        {},
    )
    assert second.stats == _stats("stop")
    assert service.get(new_id).title == "Hand made"


# -------------------------------------------------------------------- writing


def test_write_export_picks_the_format_by_suffix(
    tmp_path: Path, service: ConversationService, conversation_id: int
) -> None:
    write_export(tmp_path / "chat.md", service, conversation_id)
    write_export(tmp_path / "chat.json", service, conversation_id)
    markdown = (tmp_path / "chat.md").read_text(encoding="utf-8")
    assert markdown == export_markdown(service, conversation_id)
    data = json.loads((tmp_path / "chat.json").read_text(encoding="utf-8"))
    assert data == export_json(service, conversation_id)
    with pytest.raises(UserFacingError, match=r"name the file \.md \(Markdown\) or \.json"):
        write_export(tmp_path / "chat.txt", service, conversation_id)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("chat")) == [
        "chat.json",
        "chat.md",
    ]


def test_write_into_a_path_whose_parent_is_a_file_is_an_external_failure(
    tmp_path: Path, service: ConversationService, conversation_id: int
) -> None:
    # Root may write into a chmod 0o500 folder; a regular file as the "folder" fails for all.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    target = blocker / "chat.md"
    with pytest.raises(ExternalFailure) as caught:
        write_export(target, service, conversation_id)
    assert caught.value.message == (
        f"Could not write the export {target}: Not a directory; choose another folder."
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_write_into_a_read_only_folder_is_an_external_failure(
    tmp_path: Path, service: ConversationService, conversation_id: int
) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ExternalFailure, match="the folder is not writable"):
            write_export(folder / "chat.md", service, conversation_id)
    finally:
        folder.chmod(0o700)


def test_a_full_disk_keeps_the_old_file_and_leaves_no_temp_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    service: ConversationService,
    conversation_id: int,
) -> None:
    target = tmp_path / "chat.md"
    target.write_text("previous export")

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ExternalFailure) as caught:
        write_export(target, service, conversation_id)
    assert caught.value.message == (
        f"Could not write the export {target}: the disk is full; free some space and export again."
    )
    assert target.read_text() == "previous export"
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []
