"""The conversation service and the reply recorder, on real SQLite files."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from sqlalchemy.pool import QueuePool

from app.chat import (
    ConversationNotFound,
    ConversationService,
    ConversationSummary,
    MessageView,
    ReplyRecorder,
    auto_title,
)
from app.errors import DatabaseUnavailable, UserFacingError
from app.store import Database, open_database
from runtimes.base import ChatMessage, GenerationParams, GenerationStats


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _stats(stop_reason: str = "stop") -> GenerationStats:
    return GenerationStats(
        prompt_tokens=12,
        completion_tokens=34,
        load_time_s=0.5,
        ttft_s=0.08,
        decode_tps=55.5,
        total_time_s=0.7,
        stop_reason=stop_reason,  # type: ignore[arg-type]
    )


def _stored(path: Path, message_id: int) -> tuple[str, str, str]:
    """(content, status, error) as another connection sees them."""
    connection = sqlite3.connect(path)
    try:
        row = connection.execute(
            "SELECT content, status, error FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
    finally:
        connection.close()
    return (str(row[0]), str(row[1]), str(row[2]))


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(tmp_path / "history.sqlite3", busy_timeout_s=0.05)
    yield database
    database.close()


@pytest.fixture()
def service(db: Database, clock: FakeClock) -> ConversationService:
    return ConversationService(db, clock=clock)


def _reply(service: ConversationService, text: str = "Hi") -> tuple[int, ReplyRecorder]:
    chat = service.create("/m/smol.gguf", "SmolLM2", "llamacpp")
    service.add_user_message(chat.id, text)
    return chat.id, service.start_reply(chat.id, "SmolLM2", "llamacpp", GenerationParams())


# --- conversations -------------------------------------------------------------------------


def test_create_returns_a_frozen_summary(service: ConversationService) -> None:
    chat = service.create("/m/smol.gguf", "SmolLM2", "llamacpp")
    assert isinstance(chat, ConversationSummary)
    assert (chat.title, chat.model_name, chat.message_count) == ("New chat", "SmolLM2", 0)
    assert (chat.model_path, chat.runtime) == ("/m/smol.gguf", "llamacpp")
    assert chat.created_at.tzinfo is UTC
    with pytest.raises(dataclasses.FrozenInstanceError):
        chat.title = "x"  # type: ignore[misc]


def test_list_puts_the_most_recently_active_first(service: ConversationService) -> None:
    older = service.create(model_name="a")
    newer = service.create(model_name="b")
    assert [c.id for c in service.list_conversations()] == [newer.id, older.id]
    service.add_user_message(older.id, "back to this one")
    listed = service.list_conversations()
    assert [c.id for c in listed] == [older.id, newer.id]
    assert [c.message_count for c in listed] == [1, 0]


def test_get_and_missing_conversations(service: ConversationService) -> None:
    chat = service.create()
    assert service.get(chat.id).id == chat.id
    for call in (service.get, service.messages, service.delete):
        with pytest.raises(ConversationNotFound) as caught:
            call(9999)
        assert isinstance(caught.value, UserFacingError)
    with pytest.raises(ConversationNotFound):
        service.add_user_message(9999, "hello")


def test_rename_sets_a_title_and_stops_automatic_titles(service: ConversationService) -> None:
    chat = service.create()
    assert service.rename(chat.id, "  My   notes ").title == "My notes"
    service.add_user_message(chat.id, "This would have been the automatic title")
    assert service.get(chat.id).title == "My notes"


def test_rename_refuses_an_empty_title(service: ConversationService) -> None:
    chat = service.create()
    with pytest.raises(UserFacingError, match="empty"):
        service.rename(chat.id, "   ")
    assert service.get(chat.id).title == "New chat"


def test_delete_removes_the_conversation_and_its_messages(service: ConversationService) -> None:
    chat = service.create()
    service.add_user_message(chat.id, "hello")
    kept = service.create()
    service.delete(chat.id)
    assert [c.id for c in service.list_conversations()] == [kept.id]
    with pytest.raises(ConversationNotFound):
        service.messages(chat.id)


def test_first_user_message_sets_the_automatic_title(service: ConversationService) -> None:
    chat = service.create()
    service.add_user_message(chat.id, "\n  Explain   WAL mode in SQLite\nwith examples")
    assert service.get(chat.id).title == "Explain WAL mode in SQLite"
    service.add_user_message(chat.id, "A second question changes nothing")
    assert service.get(chat.id).title == "Explain WAL mode in SQLite"


def test_auto_title_cuts_long_lines_at_a_word_with_an_ellipsis() -> None:
    title = auto_title("Please compare the memory use of these quantizations on my laptop")
    assert title == "Please compare the memory use of these…"
    assert len(title) <= 48
    assert auto_title("x" * 100) == "x" * 47 + "…"
    assert auto_title("short") == "short"


def test_add_user_message_refuses_empty_text(service: ConversationService) -> None:
    chat = service.create()
    with pytest.raises(UserFacingError, match="empty"):
        service.add_user_message(chat.id, " \n\t")
    assert service.messages(chat.id) == []


def test_messages_come_back_in_order_as_views(service: ConversationService) -> None:
    chat = service.create()
    first = service.add_user_message(chat.id, "one")
    second = service.add_user_message(chat.id, "two")
    views = service.messages(chat.id)
    assert views == [first, second]
    assert all(isinstance(v, MessageView) for v in views)
    assert [(v.role, v.content, v.status, v.stats) for v in views] == [
        ("user", "one", "complete", None),
        ("user", "two", "complete", None),
    ]


def test_set_model_is_remembered(service: ConversationService) -> None:
    chat = service.create()
    service.set_model(chat.id, "/m/gemma.gguf", "Gemma 3 270M", "ollama")
    got = service.get(chat.id)
    assert (got.model_path, got.model_name, got.runtime) == (
        "/m/gemma.gguf",
        "Gemma 3 270M",
        "ollama",
    )


def test_request_messages_skip_empty_and_failed_turns(service: ConversationService) -> None:
    chat_id, ok = _reply(service, "first question")
    ok.append("first answer")
    ok.finish(_stats())
    service.add_user_message(chat_id, "second question")
    failed = service.start_reply(chat_id, "SmolLM2", "llamacpp", GenerationParams())
    failed.append("garbled")
    failed.fail("The model could not be loaded.")
    empty = service.start_reply(chat_id, "SmolLM2", "llamacpp", GenerationParams())
    empty.interrupt("stopped")
    cut = service.start_reply(chat_id, "SmolLM2", "llamacpp", GenerationParams())
    cut.append("half an ans")
    cut.finish(_stats("cancelled"))
    assert service.request_messages(chat_id, system_prompt="Be brief.") == (
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "first question"),
        ChatMessage("assistant", "first answer"),
        ChatMessage("user", "second question"),
        ChatMessage("assistant", "half an ans"),
    )
    assert service.request_messages(chat_id)[0] == ChatMessage("user", "first question")


# --- replies -------------------------------------------------------------------------------


def test_reply_exists_as_partial_from_the_start(service: ConversationService, db: Database) -> None:
    chat_id, reply = _reply(service)
    assert _stored(db.path, reply.message_id) == ("", "partial", "")
    view = service.messages(chat_id)[-1]
    assert (view.id, view.role, view.model_name, view.runtime) == (
        reply.message_id,
        "assistant",
        "SmolLM2",
        "llamacpp",
    )
    assert view.params == GenerationParams().as_dict()


def test_append_writes_at_most_every_flush_interval(
    service: ConversationService, db: Database, clock: FakeClock
) -> None:
    _, reply = _reply(service)
    clock.advance(0.1)
    reply.append("Hel")
    assert _stored(db.path, reply.message_id)[0] == "", "too soon to write"
    clock.advance(0.2)
    reply.append("lo")
    assert _stored(db.path, reply.message_id)[0] == "Hello"
    reply.append(" there")
    assert _stored(db.path, reply.message_id)[0] == "Hello"
    assert reply.text == "Hello there"
    assert reply.flush() is True
    assert _stored(db.path, reply.message_id) == ("Hello there", "partial", "")


def test_finish_stores_status_and_figures(service: ConversationService) -> None:
    chat_id, reply = _reply(service)
    reply.append("Done.")
    reply.finish(_stats())
    view = service.messages(chat_id)[-1]
    assert (view.content, view.status, view.error) == ("Done.", "complete", "")
    assert view.stats == _stats()
    assert reply.status == "complete"
    with pytest.raises(RuntimeError):
        reply.append("after the end")


def test_a_cancelled_reply_is_interrupted_with_its_figures(service: ConversationService) -> None:
    chat_id, reply = _reply(service)
    reply.append("Par")
    reply.finish(_stats("cancelled"))
    view = service.messages(chat_id)[-1]
    assert (view.content, view.status) == ("Par", "interrupted")
    assert view.stats is not None and view.stats.stop_reason == "cancelled"


def test_interrupt_keeps_the_partial_text_and_the_error(service: ConversationService) -> None:
    chat_id, reply = _reply(service)
    reply.append("Half a sen")
    reply.interrupt("The model's worker process stopped unexpectedly (exit code -9).")
    view = service.messages(chat_id)[-1]
    assert (view.content, view.status, view.stats) == ("Half a sen", "interrupted", None)
    assert "exit code -9" in view.error


def test_fail_marks_the_reply_as_error(service: ConversationService) -> None:
    chat_id, reply = _reply(service)
    reply.fail("Out of memory.")
    view = service.messages(chat_id)[-1]
    assert (view.status, view.error) == ("error", "Out of memory.")


def test_streamed_text_survives_a_crash_and_is_recovered(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    clock = FakeClock()
    db = open_database(path)
    service = ConversationService(db, clock=clock)
    chat_id, reply = _reply(service)
    for piece in ("The ", "answer ", "is "):
        clock.advance(0.3)
        reply.append(piece)
    reply.append("lost")  # within the flush interval: the only text a crash may lose
    # Crash: the recorder is never finished; another process opens the file.
    assert _stored(path, reply.message_id) == ("The answer is ", "partial", "")
    with open_database(path) as reopened:
        after_restart = ConversationService(reopened)
        assert after_restart.recover_interrupted() == 1
        view = after_restart.messages(chat_id)[-1]
        assert (view.content, view.status) == ("The answer is ", "interrupted")
        assert "stopped before this reply finished" in view.error
        assert after_restart.recover_interrupted() == 0
    db.close()


def test_a_locked_database_loses_no_text(
    service: ConversationService, db: Database, clock: FakeClock
) -> None:
    _, reply = _reply(service)
    locker = sqlite3.connect(db.path, isolation_level=None, timeout=0)
    locker.execute("BEGIN IMMEDIATE")
    try:
        clock.advance(0.3)
        reply.append("kept ")  # must not raise
        assert "locked" in reply.pending_error
        assert "kept in memory" in reply.pending_error
        clock.advance(0.3)
        reply.append("in memory")  # backing off: no new attempt yet, still no raise
        assert reply.text == "kept in memory"
        assert reply.saved is False
        assert reply.flush() is False
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert _stored(db.path, reply.message_id)[0] == ""
    assert reply.flush() is True
    assert reply.pending_error == ""
    assert _stored(db.path, reply.message_id) == ("kept in memory", "partial", "")


def test_finish_raises_when_still_locked_and_retry_saves_later(
    service: ConversationService, db: Database
) -> None:
    chat_id, reply = _reply(service)
    reply.append("final text")
    locker = sqlite3.connect(db.path, isolation_level=None, timeout=0)
    locker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DatabaseUnavailable, match="locked"):
            reply.finish(_stats())
        assert reply.text == "final text"
    finally:
        locker.execute("COMMIT")
        locker.close()
    reply.retry()
    view = service.messages(chat_id)[-1]
    assert (view.content, view.status, view.stats) == ("final text", "complete", _stats())
    assert reply.saved is True


def test_service_calls_on_a_locked_database_raise_database_unavailable(
    service: ConversationService, db: Database
) -> None:
    chat = service.create()
    locker = sqlite3.connect(db.path, isolation_level=None, timeout=0)
    locker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DatabaseUnavailable, match=str(db.path.name)):
            service.add_user_message(chat.id, "hello")
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert service.messages(chat.id) == []


def _set_max_pages(db: Database, pages: int | None) -> None:
    """Cap the file's size on the pool's one connection: SQLite then reports a full disk."""
    with db.engine.connect() as connection:
        if pages is None:
            pages = connection.exec_driver_sql("PRAGMA page_count").scalar_one()
        connection.exec_driver_sql(f"PRAGMA max_page_count = {pages}")
    pool = db.engine.pool
    assert isinstance(pool, QueuePool) and pool.checkedin() == 1, (
        "the cap must apply to the connection reused"
    )


def test_a_full_disk_loses_no_text(
    service: ConversationService, db: Database, clock: FakeClock
) -> None:
    _, reply = _reply(service)
    _set_max_pages(db, None)
    clock.advance(0.3)
    reply.append("x" * 200_000)  # more than the file may grow: SQLITE_FULL
    assert "full" in reply.pending_error
    assert len(reply.text) == 200_000
    _set_max_pages(db, 1_000_000)
    assert reply.flush() is True
    assert _stored(db.path, reply.message_id)[0] == "x" * 200_000


def test_fallback_is_stored_per_conversation_and_cleared(service: ConversationService) -> None:
    first = service.create("a.gguf", "A")
    second = service.create("b.gguf", "B")
    assert service.fallback(first.id) is None
    service.set_fallback(first.id, "ollama::llama3.2:3b", "llama3.2:3b")
    assert service.fallback(first.id) == ("ollama::llama3.2:3b", "llama3.2:3b")
    assert service.fallback(second.id) is None
    service.set_fallback(first.id, "", "")
    assert service.fallback(first.id) is None


def test_a_retried_reply_leaves_the_interrupted_one_out_and_keeps_its_note(
    service: ConversationService,
) -> None:
    conv_id, recorder = _reply(service, "Count to ten")
    recorder.append("one two")
    recorder.interrupt("The worker crashed.")
    history = service.request_messages(conv_id, exclude={recorder.message_id})
    assert [m.role for m in history] == ["user"]
    assert [m.role for m in service.request_messages(conv_id)] == ["user", "assistant"]
    retry = service.start_reply(
        conv_id, "B", "llamacpp", GenerationParams(), note="retried on B: A crashed"
    )
    retry.append("one two three")
    retry.finish(_stats())
    assert service.messages(conv_id)[-1].params["note"] == "retried on B: A crashed"


# --- pins and undo-able deletes ------------------------------------------------------------


def test_pinned_conversations_list_first(service: ConversationService) -> None:
    first = service.create()
    second = service.create()
    third = service.create()
    assert service.set_pinned(first.id, True).pinned is True
    listed = service.list_conversations()
    assert [c.id for c in listed] == [first.id, third.id, second.id]
    assert [c.pinned for c in listed] == [True, False, False]
    service.set_pinned(first.id, False)
    assert [c.id for c in service.list_conversations()] == [third.id, second.id, first.id]
    with pytest.raises(ConversationNotFound):
        service.set_pinned(9999, True)


def test_a_deleted_conversation_is_hidden_until_restored(service: ConversationService) -> None:
    chat = service.create()
    service.add_user_message(chat.id, "keep me")
    service.delete(chat.id)
    assert service.list_conversations() == []
    for call in (service.get, service.messages, service.delete):
        with pytest.raises(ConversationNotFound):
            call(chat.id)
    restored = service.restore(chat.id)
    assert (restored.id, restored.message_count) == (chat.id, 1)
    assert [m.content for m in service.messages(chat.id)] == ["keep me"]


def test_purge_removes_only_deleted_conversations_for_good(
    service: ConversationService, db: Database
) -> None:
    gone = service.create()
    service.add_user_message(gone.id, "bye")
    kept = service.create()
    service.delete(gone.id)
    assert service.purge_deleted() == 1
    assert service.purge_deleted() == 0
    with pytest.raises(ConversationNotFound):
        service.restore(gone.id)
    assert [c.id for c in service.list_conversations()] == [kept.id]
    with sqlite3.connect(db.path) as connection:
        assert connection.execute("SELECT count(*) FROM messages").fetchone() == (0,)
    connection.close()


def test_purge_can_keep_recent_deletions(service: ConversationService) -> None:
    chat = service.create()
    service.delete(chat.id)
    assert service.purge_deleted(older_than=timedelta(hours=1)) == 0
    assert service.purge_deleted(older_than=timedelta(0)) == 1
