"""The Compare window opens from the main window: toolbar, View ▸ Compare…, and Chat ▸
Compare This Chat With… (set up from the open chat)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtGui import QKeySequence

from ui.main import build_services
from ui.main_window import MainWindow


@pytest.fixture()
def window(qtbot, workbench_home: Path) -> Iterator[MainWindow]:
    win = MainWindow(build_services())
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()


def test_the_toolbar_button_opens_compare_and_eval(qtbot, window: MainWindow) -> None:
    window.compare_button.click()
    compare = window.windows.compare_window
    assert compare is not None and compare.isVisible()
    assert [compare.tabs.tabText(i) for i in range(compare.tabs.count())] == ["Compare", "Eval"]
    assert window.show_compare() is compare  # raised, not a second window
    choices = [choice for _label, choice in window.picker.choices()]
    assert compare.compare.panes[0].choice() in choices
    window.close()
    assert not compare.isVisible()


def test_view_compare_has_the_platform_shortcut(window: MainWindow) -> None:
    assert window.compare_action.shortcut() == QKeySequence("Ctrl+Shift+C")
    window.compare_action.trigger()
    assert window.windows.compare_window is not None


def test_compare_this_chat_starts_from_its_model_system_prompt_and_question(
    qtbot, window: MainWindow
) -> None:
    service = window.services.conversations
    path = window.picker.selected_path()
    conv = service.create(path, "SmolLM2", "llamacpp")
    service.add_user_message(conv.id, "What is a monad?")
    window.chat.open_conversation(conv.id)
    window.settings_panel.system_prompt.setPlainText("Answer like a pirate.")
    window.update_chat_actions()
    assert window.compare_chat_action.isEnabled()
    window.compare_chat_action.trigger()
    page = window.windows.compare_window.compare
    assert page.panes[0].choice() == path
    assert page.input.toPlainText() == "What is a monad?"
    assert page.system_prompt.text() == "Answer like a pirate."
