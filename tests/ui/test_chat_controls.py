"""The controls under each message, in the real window with the real SmolLM2 model:
regenerate (versions ‹ 2/2 ›), flip versions, edit and resend (a fork), delete, continue,
per-conversation settings, the context warning, and the Chat menu's shortcuts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QKeySequence

from app.context_budget import ContextPlan
from runtimes.base import GenerationParams
from ui.main import build_services
from ui.main_window import MainWindow


@pytest.fixture()
def window(qtbot, workbench_home: Path) -> Iterator[MainWindow]:
    win = MainWindow(build_services())
    qtbot.addWidget(win)
    win.show()
    win.chat.params = GenerationParams(temperature=0.0, seed=1, max_tokens=12)
    yield win
    win.close()


def _send(qtbot, window: MainWindow, text: str) -> None:
    qtbot.keyClicks(window.chat_view.input, text)
    with qtbot.waitSignal(window.chat.reply_finished, timeout=90_000):
        qtbot.keyClick(window.chat_view.input, Qt.Key.Key_Return)


def _path(window: MainWindow):
    assert window.chat.conversation_id is not None
    return window.services.conversations.messages(window.chat.conversation_id)


def test_regenerate_keeps_both_versions_and_the_arrows_flip_between_them(
    qtbot, window: MainWindow
) -> None:
    _send(qtbot, window, "Name a fruit.")
    first = _path(window)[-1]
    window.chat.params = GenerationParams(temperature=1.5, seed=7, max_tokens=12)
    with qtbot.waitSignal(window.chat.reply_finished, timeout=90_000):
        window.chat_view.action_requested.emit("regenerate", first.id)
    path = _path(window)
    second = path[-1]
    assert len(path) == 2 and second.id != first.id
    assert (second.branch_index, second.branch_count) == (2, 2)
    assert "2/2" in window.chat_view.transcript.toPlainText()
    window.chat_view.action_requested.emit("prev", second.id)
    shown = _path(window)[-1]
    assert shown.id == first.id and (shown.branch_index, shown.branch_count) == (1, 2)
    assert "1/2" in window.chat_view.transcript.toPlainText()
    window.chat_view.action_requested.emit("next", first.id)
    assert _path(window)[-1].id == second.id


def test_edit_and_resend_forks_a_new_version_of_the_question(qtbot, window: MainWindow) -> None:
    _send(qtbot, window, "Name a colour.")
    question = _path(window)[0]
    window.chat_view.action_requested.emit("edit", question.id)
    assert window.chat_view.editing_message_id == question.id
    assert window.chat_view.input.toPlainText() == "Name a colour."
    window.chat_view.input.clear()
    qtbot.keyClicks(window.chat_view.input, "Name an animal.")
    with qtbot.waitSignal(window.chat.reply_finished, timeout=90_000):
        qtbot.keyClick(window.chat_view.input, Qt.Key.Key_Return)
    path = _path(window)
    assert [m.role for m in path] == ["user", "assistant"]
    assert path[0].content == "Name an animal."
    assert (path[0].branch_index, path[0].branch_count) == (2, 2)
    assert path[1].status == "complete" and path[1].content
    window.chat_view.action_requested.emit("prev", path[0].id)
    old = _path(window)
    assert old[0].content == "Name a colour." and old[1].id != path[1].id


def test_delete_message_asks_and_removes_only_that_message(qtbot, window: MainWindow) -> None:
    _send(qtbot, window, "Say hi.")
    reply = _path(window)[-1]
    window.message_actions.confirm_delete = lambda _parent, _message: False
    window.chat_view.action_requested.emit("delete", reply.id)
    assert _path(window)[-1].id == reply.id  # "No" keeps it
    window.message_actions.confirm_delete = lambda _parent, _message: True
    window.chat_view.action_requested.emit("delete", reply.id)
    assert [m.role for m in _path(window)] == ["user"]
    assert reply.content not in window.chat_view.reply_text()


def test_continue_extends_a_reply_cut_at_max_tokens(qtbot, window: MainWindow) -> None:
    window.chat.params = GenerationParams(temperature=0.0, seed=1, max_tokens=6)
    _send(qtbot, window, "Write a long story about a lighthouse.")
    cut = _path(window)[-1]
    assert cut.stats is not None and cut.stats.stop_reason == "length"
    assert window.message_actions.can_continue()
    with qtbot.waitSignal(window.chat.reply_finished, timeout=90_000):
        window.continue_action.trigger()
    path = _path(window)
    assert len(path) == 2 and path[-1].id == cut.id  # the same message, grown
    assert path[-1].content.startswith(cut.content)
    assert len(path[-1].content) > len(cut.content)
    assert path[-1].status == "complete"


def test_copy_last_reply_puts_its_text_on_the_clipboard(qtbot, window: MainWindow) -> None:
    _send(qtbot, window, "Say hi.")
    window.copy_reply_action.trigger()
    assert QGuiApplication.clipboard().text() == _path(window)[-1].content


def test_settings_belong_to_each_conversation(qtbot, window: MainWindow) -> None:
    panel = window.settings_panel
    _send(qtbot, window, "Say hi.")
    first = window.chat.conversation_id
    panel.system_prompt.setPlainText("You are a pirate.")
    panel.temperature.setValue(0.25)
    panel.flush()
    window.new_action.trigger()
    assert window.chat.conversation_id != first
    assert panel.system_prompt.toPlainText() == ""
    window.chat.open_conversation(first)
    assert panel.system_prompt.toPlainText() == "You are a pirate."
    assert panel.temperature.value() == pytest.approx(0.25)
    stored = window.services.conversations.settings(first)
    assert stored.system_prompt == "You are a pirate."


def test_the_system_prompt_reaches_the_model(qtbot, window: MainWindow) -> None:
    _send(qtbot, window, "Say hi.")
    reply = _path(window)[-1]
    assert reply.stats is not None
    plain = reply.stats.prompt_tokens
    window.settings_panel.system_prompt.setPlainText("word " * 60)  # 60 more tokens or so
    with qtbot.waitSignal(window.chat.reply_finished, timeout=90_000):
        window.regenerate_action.trigger()
    again = _path(window)[-1]
    assert again.stats is not None and again.stats.prompt_tokens > plain + 40


def test_the_meter_counts_the_loaded_models_tokens_exactly(qtbot, window: MainWindow) -> None:
    _send(qtbot, window, "Say hi.")
    label = window.settings_panel.meter_label.text()
    assert "tokens" in label and not label.startswith("≈")
    reply = _path(window)[-1]
    assert reply.stats is not None
    # The meter counts the history the next request sends: at least the last prompt.
    assert window.settings_panel.meter.value() >= reply.stats.prompt_tokens
    qtbot.keyClicks(window.chat_view.input, "and a draft")
    qtbot.waitUntil(lambda: window.settings_panel.meter_label.text().startswith("≈"), timeout=3000)


def test_a_history_too_long_for_the_context_asks_before_sending(qtbot, window: MainWindow) -> None:
    service = window.services.conversations
    path = window.picker.selected_path()
    conv = service.create(path, "SmolLM2", "llamacpp")
    for i in range(6):
        service.add_user_message(conv.id, f"Old question {i}: " + "lorem ipsum " * 300)
    window.chat.open_conversation(conv.id)
    panel = window.settings_panel
    panel.context.setCurrentIndex(panel.context.findData(2048))
    panel.flush()
    asked: list[ContextPlan] = []

    def cancel(_parent, plan: ContextPlan) -> bool:
        asked.append(plan)
        return False

    window.chat.ask_to_drop = cancel
    qtbot.keyClicks(window.chat_view.input, "And now?")
    qtbot.keyClick(window.chat_view.input, Qt.Key.Key_Return)
    assert len(asked) == 1 and asked[0].limit == 2048
    assert asked[0].drop_count > 0
    assert window.chat_view.input.toPlainText() == "And now?"  # nothing lost
    assert len(service.messages(conv.id)) == 6  # nothing sent
    window.chat.ask_to_drop = lambda _parent, _plan: True
    with qtbot.waitSignal(window.chat.reply_finished, timeout=120_000):
        qtbot.keyClick(window.chat_view.input, Qt.Key.Key_Return)
    reply = service.messages(conv.id)[-1]
    assert reply.role == "assistant" and reply.status == "complete", reply.error
    assert "left out to fit the context" in str(reply.params.get("note", ""))
    model = window.models.loaded_model(path)
    assert model is not None and model.info.n_ctx == 2048  # loaded with the chat's context


def test_chat_menu_shortcuts_follow_the_platform(window: MainWindow) -> None:
    assert window.new_action.shortcut() == QKeySequence(QKeySequence.StandardKey.New)
    assert window.preferences_action.shortcut() == QKeySequence("Ctrl+,")
    assert window.regenerate_action.shortcut() == QKeySequence("Ctrl+R")
    assert window.stop_action.shortcut() == QKeySequence(Qt.Key.Key_Escape)
    assert window.conversation_list.search_action.shortcut() == QKeySequence("Ctrl+K")
    window.update_chat_actions()
    assert not window.regenerate_action.isEnabled()  # nothing to regenerate yet
    assert not window.continue_action.isEnabled()


def test_preferences_and_about_open_from_the_menu(qtbot, window: MainWindow) -> None:
    window.preferences_action.trigger()
    dialogs = [w for w in window.findChildren(object) if w.objectName() == "preferences_dialog"]
    assert dialogs and dialogs[0].isVisible()
    dialogs[0].reject()
    window.about_action.trigger()
    about = [w for w in window.findChildren(object) if w.objectName() == "about_dialog"]
    assert about and "Logs" in about[0].details.toPlainText()
    about[0].close()


def test_the_settings_panel_hides_and_stays_hidden(qtbot, workbench_home: Path) -> None:
    first = MainWindow(build_services())
    qtbot.addWidget(first)
    first.show()
    first.settings_panel_action.setChecked(False)
    assert not first.settings_panel.isVisible()
    first.close()
    second = MainWindow(build_services())
    qtbot.addWidget(second)
    second.show()
    assert not second.settings_panel.isVisible()
    assert not second.settings_panel_action.isChecked()
    second.close()
