"""Branches of a conversation: versions of replies and questions, the path shown, edits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.chat import ConversationService, MessageView
from app.errors import UserFacingError
from app.store import Database, open_database
from runtimes.base import ChatMessage, GenerationParams, GenerationStats

STATS = GenerationStats(5, 6, 0.0, 0.1, 50.0, 0.2, "stop")


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(tmp_path / "history.sqlite3")
    yield database
    database.close()


@pytest.fixture()
def service(db: Database) -> ConversationService:
    return ConversationService(db, flush_interval=0.0)


def _answer(service: ConversationService, cid: int, text: str, parent_id: int | None = None) -> int:
    recorder = service.start_reply(cid, "m", "llamacpp", GenerationParams(), parent_id=parent_id)
    recorder.append(text)
    recorder.finish(STATS)
    return recorder.message_id


def _contents(views: list[MessageView]) -> list[str]:
    return [view.content for view in views]


def _versions(views: list[MessageView]) -> list[tuple[int, int]]:
    return [(view.branch_index, view.branch_count) for view in views]


@pytest.fixture()
def chat(service: ConversationService) -> int:
    """q1 -> a1 -> q2 -> a2, one branch."""
    cid = service.create().id
    service.add_user_message(cid, "q1")
    _answer(service, cid, "a1")
    service.add_user_message(cid, "q2")
    _answer(service, cid, "a2")
    return cid


def test_a_linear_chat_is_one_path_with_parents(service: ConversationService, chat: int) -> None:
    views = service.messages(chat)
    assert _contents(views) == ["q1", "a1", "q2", "a2"]
    assert [v.parent_id for v in views] == [None, views[0].id, views[1].id, views[2].id]
    assert _versions(views) == [(1, 1)] * 4


def test_regenerating_adds_a_sibling_version_that_is_shown(
    service: ConversationService, chat: int
) -> None:
    a2 = service.messages(chat)[-1]
    parent = service.regenerate_parent(chat, a2.id)
    assert parent == a2.parent_id
    _answer(service, chat, "a2 again", parent_id=parent)
    views = service.messages(chat)
    assert _contents(views) == ["q1", "a1", "q2", "a2 again"]
    assert _versions(views)[-1] == (2, 2)
    back = service.switch_branch(chat, views[-1].id, -1)
    assert _contents(back)[-1] == "a2"
    assert _versions(back)[-1] == (1, 2)
    assert service.messages(chat) == back, "the switch is remembered"
    assert _contents(service.switch_branch(chat, back[-1].id, -5))[-1] == "a2", "clamped"


def test_only_assistant_replies_can_be_regenerated(service: ConversationService, chat: int) -> None:
    question = service.messages(chat)[0]
    with pytest.raises(UserFacingError, match="reply"):
        service.regenerate_parent(chat, question.id)
    with pytest.raises(UserFacingError, match="no longer"):
        service.regenerate_parent(chat, 99_999)


def test_a_new_message_follows_the_shown_branch_not_the_newest_message(
    service: ConversationService, chat: int
) -> None:
    a2 = service.messages(chat)[-1]
    newer = _answer(service, chat, "a2 bis", parent_id=service.regenerate_parent(chat, a2.id))
    service.switch_branch(chat, newer, -1)
    question = service.add_user_message(chat, "q3 after a2")
    assert question.parent_id == a2.id
    assert _contents(service.messages(chat)) == ["q1", "a1", "q2", "a2", "q3 after a2"]


def test_editing_a_question_makes_a_new_version_and_keeps_the_old_branch(
    service: ConversationService, chat: int
) -> None:
    q2 = service.messages(chat)[2]
    edited = service.edit_user_message(chat, q2.id, "q2 edited")
    assert (edited.parent_id, edited.branch_index, edited.branch_count) == (q2.parent_id, 2, 2)
    assert _contents(service.messages(chat)) == ["q1", "a1", "q2 edited"]
    _answer(service, chat, "a2 for the edit")
    old = service.switch_branch(chat, edited.id, -1)
    assert _contents(old) == ["q1", "a1", "q2", "a2"], "down to the newest leaf of that version"
    assert _contents(service.switch_branch(chat, old[2].id, +1)) == [
        "q1",
        "a1",
        "q2 edited",
        "a2 for the edit",
    ]


def test_editing_the_first_question_keeps_the_title_and_refuses_bad_input(
    service: ConversationService, chat: int
) -> None:
    q1 = service.messages(chat)[0]
    assert service.get(chat).title == "q1"
    edited = service.edit_user_message(chat, q1.id, "something else")
    assert (edited.parent_id, edited.branch_count) == (None, 2)
    assert service.get(chat).title == "q1"
    with pytest.raises(UserFacingError, match="empty"):
        service.edit_user_message(chat, q1.id, "  ")
    with pytest.raises(UserFacingError, match="your own"):
        service.edit_user_message(chat, service.switch_branch(chat, q1.id, -1)[1].id, "x")


def test_switching_goes_down_the_newest_child_at_each_level(
    service: ConversationService, chat: int
) -> None:
    a1 = service.messages(chat)[1]
    service.add_user_message(chat, "q3")  # under a2
    sibling = _answer(service, chat, "a1 bis", parent_id=service.regenerate_parent(chat, a1.id))
    assert _contents(service.messages(chat)) == ["q1", "a1 bis"]
    assert _contents(service.switch_branch(chat, sibling, -1)) == ["q1", "a1", "q2", "a2", "q3"]


def test_deleting_a_middle_message_reattaches_what_followed(
    service: ConversationService, chat: int, db: Database
) -> None:
    a1 = service.messages(chat)[1]
    views = service.delete_message(chat, a1.id)
    assert _contents(views) == ["q1", "q2", "a2"]
    assert views[1].parent_id == views[0].id
    assert service.messages(chat) == views
    _check_search_index(db)


def test_deleting_the_leaf_shows_the_newest_leaf_under_its_parent(
    service: ConversationService, chat: int
) -> None:
    a2 = service.messages(chat)[-1]
    other = _answer(service, chat, "a2 bis", parent_id=service.regenerate_parent(chat, a2.id))
    assert _contents(service.delete_message(chat, other)) == ["q1", "a1", "q2", "a2"]
    assert _contents(service.delete_message(chat, a2.id)) == ["q1", "a1", "q2"]


def test_deleting_the_only_root_leaves_the_rest_as_a_path(
    service: ConversationService, chat: int
) -> None:
    q1 = service.messages(chat)[0]
    views = service.delete_message(chat, q1.id)
    assert _contents(views) == ["a1", "q2", "a2"]
    assert views[0].parent_id is None
    lone = service.create().id
    only = service.add_user_message(lone, "alone")
    assert service.delete_message(lone, only.id) == []
    assert service.add_user_message(lone, "again").parent_id is None


def test_a_dangling_active_leaf_falls_back_to_the_newest_message(
    service: ConversationService, chat: int, db: Database
) -> None:
    with db.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE conversations SET active_leaf_id = 424242")
    assert _contents(service.messages(chat)) == ["q1", "a1", "q2", "a2"]
    with db.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE conversations SET active_leaf_id = NULL")
    assert _contents(service.messages(chat)) == ["q1", "a1", "q2", "a2"]


def test_continue_extends_the_last_reply(service: ConversationService, chat: int) -> None:
    a2 = service.messages(chat)[-1]
    recorder = service.continue_reply(chat, a2.id)
    assert recorder.text == "a2"
    shown = service.messages(chat)[-1]
    assert (shown.status, shown.stats) == ("partial", None)
    assert service.request_messages(chat)[-1] == ChatMessage("user", "q2")
    assert service.request_messages(chat, include_partial_last=True)[-1] == ChatMessage(
        "assistant", "a2"
    )
    recorder.append(" and more")
    recorder.finish(STATS)
    final = service.messages(chat)[-1]
    assert (final.id, final.content, final.status, final.stats) == (
        a2.id,
        "a2 and more",
        "complete",
        STATS,
    )


def test_continue_refuses_a_question_or_a_reply_not_at_the_end(
    service: ConversationService, chat: int
) -> None:
    q1, a1 = service.messages(chat)[:2]
    with pytest.raises(UserFacingError, match="last reply"):
        service.continue_reply(chat, a1.id)
    with pytest.raises(UserFacingError, match="last reply"):
        service.continue_reply(chat, q1.id)


def test_start_reply_refuses_a_parent_from_elsewhere(
    service: ConversationService, chat: int
) -> None:
    other = service.create().id
    stranger = service.add_user_message(other, "elsewhere")
    with pytest.raises(UserFacingError, match="no longer"):
        service.start_reply(chat, "m", "llamacpp", GenerationParams(), parent_id=stranger.id)


def _check_search_index(db: Database) -> None:
    with db.engine.begin() as connection:
        # Raises if the index disagrees with the messages table.
        connection.exec_driver_sql(
            "INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)"
        )
        hits = connection.exec_driver_sql(
            "SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'a1'"
        ).all()
    assert hits == []
