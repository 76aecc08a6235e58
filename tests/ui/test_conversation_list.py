"""The conversation list, offscreen: day headers, pins, F2 rename, delete with undo."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QMenu
from pytestqt.qtbot import QtBot

from app.chat import ConversationSummary
from ui.conversation_list import ConversationList

NOW = datetime(2026, 10, 15, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def utc_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC here; the day arithmetic itself is tested in test_conversation_groups."""
    monkeypatch.setenv("TZ", "UTC0")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture()
def cl(qtbot: QtBot) -> ConversationList:
    widget = ConversationList()
    widget.clock = lambda: NOW
    qtbot.addWidget(widget)
    widget.resize(300, 500)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def conv(conv_id: int, days_ago: float, *, pinned: bool = False) -> ConversationSummary:
    when = NOW - timedelta(days=days_ago)
    return ConversationSummary(
        id=conv_id,
        title=f"chat {conv_id}",
        created_at=when,
        updated_at=when,
        model_name="",
        message_count=2,
        pinned=pinned,
    )


def action(menu: QMenu, text: str) -> None:
    found = [a for a in menu.actions() if a.text() == text]
    assert found, f"no {text!r} in {[a.text() for a in menu.actions()]}"
    found[0].trigger()


def test_conversations_are_listed_under_day_headers(cl: ConversationList) -> None:
    cl.set_conversations([conv(1, 0.1), conv(2, 0.2), conv(3, 1), conv(4, 40)], None)
    shown = [cl.list.item(i).text() for i in range(cl.list.count())]
    assert shown == ["Today", "chat 1", "chat 2", "Yesterday", "chat 3", "September 2026", "chat 4"]
    assert cl.headers() == ["Today", "Yesterday", "September 2026"]
    assert cl.titles() == ["chat 1", "chat 2", "chat 3", "chat 4"]


def test_headers_cannot_be_selected_or_edited(cl: ConversationList) -> None:
    cl.set_conversations([conv(1, 0), conv(2, 1)], None)
    header = cl.list.item(0)
    assert header.text() == "Today"
    assert not header.flags() & Qt.ItemFlag.ItemIsSelectable
    assert not header.flags() & Qt.ItemFlag.ItemIsEditable
    assert cl.list.item(1).flags() & Qt.ItemFlag.ItemIsSelectable


def test_clicking_a_header_opens_nothing(cl: ConversationList, qtbot: QtBot) -> None:
    cl.set_conversations([conv(1, 0), conv(2, 1)], 1)
    header = cl.list.item(2)
    assert header.text() == "Yesterday"
    with qtbot.assertNotEmitted(cl.conversation_selected):
        rect = cl.list.visualItemRect(header)
        qtbot.mouseClick(cl.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert cl.current_id() == 1


def test_current_id_ignores_a_header_made_current(cl: ConversationList, qtbot: QtBot) -> None:
    cl.set_conversations([conv(1, 0)], None)
    with qtbot.assertNotEmitted(cl.conversation_selected):
        cl.list.setCurrentRow(0)
    assert cl.current_id() is None


def test_arrow_keys_skip_headers(cl: ConversationList, qtbot: QtBot) -> None:
    cl.set_conversations([conv(1, 0), conv(2, 1), conv(3, 3)], 1)
    cl.list.setFocus()
    with qtbot.waitSignal(cl.conversation_selected) as down:
        qtbot.keyClick(cl.list, Qt.Key.Key_Down)
    assert down.args == [2]
    qtbot.keyClick(cl.list, Qt.Key.Key_Down)
    assert cl.current_id() == 3
    qtbot.keyClick(cl.list, Qt.Key.Key_Up)
    qtbot.keyClick(cl.list, Qt.Key.Key_Up)
    assert cl.current_id() == 1
    qtbot.keyClick(cl.list, Qt.Key.Key_Up)  # only the "Today" header above: stay put
    assert cl.current_id() == 1


def test_pinned_conversations_come_first_with_a_pin(cl: ConversationList) -> None:
    cl.set_conversations([conv(1, 0), conv(2, 100, pinned=True), conv(3, 1)], None)
    assert cl.headers() == ["Pinned", "Today", "Yesterday"]
    assert cl.titles() == ["chat 2", "chat 1", "chat 3"]
    assert cl.list.item(1).text() == "chat 2"
    assert not cl.list.item(1).icon().isNull()
    assert cl.list.item(3).icon().isNull()


def test_current_id_survives_a_refresh_that_moves_the_row(
    cl: ConversationList, qtbot: QtBot
) -> None:
    cl.set_conversations([conv(1, 0), conv(2, 1)], 2)
    assert cl.current_id() == 2
    with qtbot.assertNotEmitted(cl.conversation_selected):
        cl.set_conversations([conv(2, 0, pinned=True), conv(1, 0)], 2)
    assert cl.current_id() == 2
    assert cl.list.currentItem().text() == "chat 2"


def test_the_menu_pins_and_unpins(cl: ConversationList, qtbot: QtBot) -> None:
    cl.set_conversations([conv(1, 0), conv(2, 0, pinned=True)], None)
    with qtbot.waitSignal(cl.pin_requested) as pinned:
        action(cl.context_menu_for(cl.item_for(1)), "Pin")
    assert pinned.args == [1, True]
    with qtbot.waitSignal(cl.pin_requested) as unpinned:
        action(cl.context_menu_for(cl.item_for(2)), "Unpin")
    assert unpinned.args == [2, False]


def test_headers_have_no_menu(cl: ConversationList) -> None:
    cl.set_conversations([conv(1, 0)], None)
    assert cl.context_menu_for(cl.list.item(0)) is None


def test_the_menu_deletes_without_asking(cl: ConversationList, qtbot: QtBot) -> None:
    cl.set_conversations([conv(1, 0), conv(2, 1)], None)
    with qtbot.waitSignal(cl.delete_requested, timeout=1000) as deleted:
        action(cl.context_menu_for(cl.item_for(2)), "Delete")
    assert deleted.args == [2]


def test_the_menu_renames_in_place(cl: ConversationList) -> None:
    cl.set_conversations([conv(1, 0)], None)
    action(cl.context_menu_for(cl.item_for(1)), "Rename")
    assert cl.list.state() == QAbstractItemView.State.EditingState


@pytest.mark.parametrize("key", [Qt.Key.Key_Delete, Qt.Key.Key_Backspace])
def test_the_delete_key_deletes_the_selected_row(
    cl: ConversationList, qtbot: QtBot, key: Qt.Key
) -> None:
    cl.set_conversations([conv(1, 0), conv(2, 1)], 2)
    cl.list.setFocus()
    with qtbot.waitSignal(cl.delete_requested, timeout=1000) as deleted:
        qtbot.keyClick(cl.list, key)
    assert deleted.args == [2]


def test_the_delete_key_without_a_selection_does_nothing(
    cl: ConversationList, qtbot: QtBot
) -> None:
    cl.set_conversations([conv(1, 0)], None)
    with qtbot.assertNotEmitted(cl.delete_requested):
        qtbot.keyClick(cl.list, Qt.Key.Key_Delete)


def test_f2_renames_the_selected_row(cl: ConversationList, qtbot: QtBot) -> None:
    cl.set_conversations([conv(1, 0), conv(2, 1)], 2)
    cl.list.setFocus()
    qtbot.keyClick(cl.list, Qt.Key.Key_F2)
    assert cl.list.state() == QAbstractItemView.State.EditingState
    editor = cl.list.focusWidget() or cl.focusWidget()
    assert editor is not None and editor is not cl.list
    with qtbot.waitSignal(cl.rename_requested) as renamed:
        editor.selectAll()  # type: ignore[attr-defined]
        qtbot.keyClicks(editor, "Renamed")
        qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert renamed.args == [2, "Renamed"]


def test_editing_a_header_text_renames_nothing(cl: ConversationList, qtbot: QtBot) -> None:
    cl.set_conversations([conv(1, 0)], None)
    with qtbot.assertNotEmitted(cl.rename_requested):
        cl.list.item(0).setText("Changed")


def test_confirm_delete_no_longer_asks(cl: ConversationList, qtbot: QtBot) -> None:
    with qtbot.waitSignal(cl.delete_requested, timeout=1000) as deleted:
        cl.confirm_delete(7, "chat 7")
    assert deleted.args == [7]


def test_undo_bar_shows_the_title_and_undo_brings_it_back(
    cl: ConversationList, qtbot: QtBot
) -> None:
    assert not cl.undo_bar.isVisible()
    cl.show_undo(3, "Rust vs Go")
    assert cl.undo_bar.isVisible()
    assert cl.undo_label.text() == "Deleted “Rust vs Go”"
    with qtbot.waitSignal(cl.undo_requested) as undone, qtbot.assertNotEmitted(cl.undo_expired):
        qtbot.mouseClick(cl.undo_button, Qt.MouseButton.LeftButton)
    assert undone.args == [3]
    assert not cl.undo_bar.isVisible()
    assert cl.pending_undo() is None


def test_undo_bar_expires_after_its_timeout(cl: ConversationList, qtbot: QtBot) -> None:
    cl.undo_timeout_ms = 50
    cl.show_undo(3, "Rust vs Go")
    with qtbot.waitSignal(cl.undo_expired, timeout=2000) as expired:
        pass
    assert expired.args == [3]
    assert not cl.undo_bar.isVisible()


def test_a_new_delete_replaces_the_bar_and_ends_the_old_undo(
    cl: ConversationList, qtbot: QtBot
) -> None:
    cl.show_undo(3, "first")
    with qtbot.waitSignal(cl.undo_expired) as expired:
        cl.show_undo(4, "second")
    assert expired.args == [3]
    assert cl.pending_undo() == 4
    assert cl.undo_label.text() == "Deleted “second”"


def test_a_long_title_is_shortened_in_the_bar(cl: ConversationList) -> None:
    cl.show_undo(3, "x" * 200)
    assert len(cl.undo_label.text()) < 60
    assert cl.undo_label.toolTip() == "x" * 200
