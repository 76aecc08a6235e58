"""History search in the conversation list, offscreen: typing, highlights, Enter, Esc, Ctrl+K."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from app.chat import ConversationService
from app.history_search import search_history
from app.store import Database, open_database
from ui.conversation_list import ConversationList
from ui.main import build_services
from ui.main_window import MainWindow


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(tmp_path / "history.sqlite3")
    yield database
    database.close()


@pytest.fixture()
def service(db: Database) -> ConversationService:
    return ConversationService(db)


def _conversation(service: ConversationService, title: str, message: str) -> int:
    conv = service.create()
    service.add_user_message(conv.id, message)
    service.rename(conv.id, title)
    return conv.id


@pytest.fixture()
def panel(qtbot, db: Database, service: ConversationService) -> ConversationList:
    widget = ConversationList()
    qtbot.addWidget(widget)
    widget.set_search(partial(search_history, db))
    widget.set_conversations(service.list_conversations(), None)
    widget.resize(300, 500)
    widget.show()
    return widget


def _type(qtbot, panel: ConversationList, text: str) -> None:
    qtbot.keyClicks(panel.search_box, text)
    qtbot.waitUntil(panel.searching, timeout=2_000)


def test_typing_shows_hits_with_the_words_in_bold(qtbot, panel, service) -> None:
    cid = _conversation(service, "Camping", "Pack the <tent> and the stove")
    _conversation(service, "Cooking", "A recipe for soup")
    _type(qtbot, panel, "stov")
    assert panel.results.hit_count() == 1
    assert panel.results.conversation_id_at(0) == cid
    rich = panel.results.hit_html_at(0)
    assert "Pack the &lt;tent&gt; and the <b>stove</b>" in rich
    assert ">Camping<" in rich
    assert panel.list.isHidden()
    assert panel.results.status.isHidden()


def test_search_waits_for_a_pause_in_typing(qtbot, panel, service) -> None:
    _conversation(service, "Camping", "stove")
    qtbot.keyClicks(panel.search_box, "stove")
    assert not panel.searching()
    qtbot.waitUntil(panel.searching, timeout=2_000)
    assert panel.results.hit_count() == 1


def test_no_matches_says_so(qtbot, panel, service) -> None:
    _conversation(service, "Camping", "stove")
    _type(qtbot, panel, 'NEAR( "zzz')
    assert panel.results.hit_count() == 0
    assert panel.results.status.text() == "No matches."


def test_enter_opens_the_selected_hit(qtbot, panel, service) -> None:
    first = _conversation(service, "One", "shared word alpha")
    second = _conversation(service, "Two", "shared word alpha alpha")
    _type(qtbot, panel, "alpha")
    ids = [panel.results.conversation_id_at(row) for row in range(panel.results.hit_count())]
    assert sorted(ids) == [first, second]
    qtbot.keyClick(panel.search_box, Qt.Key.Key_Down)
    with qtbot.waitSignal(panel.conversation_selected) as blocker:
        qtbot.keyClick(panel.search_box, Qt.Key.Key_Return)
    assert blocker.args == [ids[1]]


def test_double_click_opens_the_hit(qtbot, panel, service) -> None:
    cid = _conversation(service, "Camping", "stove")
    _type(qtbot, panel, "stove")
    view = panel.results.list
    rect = view.visualItemRect(view.item(0))
    # A real double-click is a press, a release, then the double-click event.
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    with qtbot.waitSignal(panel.conversation_selected) as blocker:
        qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert blocker.args == [cid]


def test_escape_clears_the_search_and_shows_the_list(qtbot, panel, service) -> None:
    _conversation(service, "Camping", "stove")
    _type(qtbot, panel, "stove")
    qtbot.keyClick(panel.search_box, Qt.Key.Key_Escape)
    assert panel.search_box.text() == ""
    assert not panel.searching()
    assert panel.list.isVisible()


def test_clearing_the_box_returns_to_the_list(qtbot, panel, service) -> None:
    _conversation(service, "Camping", "stove")
    _type(qtbot, panel, "stove")
    panel.search_box.clear()
    assert not panel.searching()
    assert panel.list.isVisible()


@pytest.fixture()
def make_window(qtbot, workbench_home: Path):
    """Build a main window on fresh services (as a new launch would); closes it afterwards."""
    windows: list[MainWindow] = []

    def make() -> MainWindow:
        window = MainWindow(build_services())
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()


def test_ctrl_k_focuses_the_search_box_in_the_main_window(qtbot, make_window) -> None:
    window = make_window()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=2_000)
    box = window.conversation_list.search_box
    box.setText("old query")
    window.chat_view.input.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is window.chat_view.input, timeout=2_000)
    qtbot.keyClick(window.chat_view.input, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.focusWidget() is box
    assert box.selectedText() == "old query"


def test_a_hit_opens_its_conversation_in_the_main_window(qtbot, make_window) -> None:
    window = make_window()
    services = window.services
    assert services.database is not None
    wanted = services.conversations.create()
    services.conversations.add_user_message(wanted.id, "where is the lighthouse")
    services.conversations.create()
    window.conversation_list.set_search(partial(search_history, services.database))
    _type(qtbot, window.conversation_list, "lighthouse")
    qtbot.keyClick(window.conversation_list.search_box, Qt.Key.Key_Return)
    assert window.chat.conversation_id == wanted.id


def test_the_main_window_wires_history_search_by_itself(qtbot, workbench_home) -> None:  # type: ignore[no-untyped-def]
    from ui.main import build_services
    from ui.main_window import MainWindow

    services = build_services()
    chat = services.conversations.create("", "demo")
    services.conversations.add_user_message(chat.id, "How do zebras keep cool?")
    window = MainWindow(services)
    qtbot.addWidget(window)
    window.show()
    window.conversation_list.search_box.setText("zebra")
    window.conversation_list.run_search()
    results = window.conversation_list.results
    assert results.hit_count() == 2  # the auto title and the message
    assert all("<b>zebra" in results.hit_html_at(i) for i in range(2))
    window.close()
