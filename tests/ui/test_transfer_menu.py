"""File ▸ Export / Import Conversation in a real main window, offscreen, on real SQLite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ui.main import build_services
from ui.main_window import MainWindow


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


def _export_data(title: str, text: str) -> dict[str, object]:
    return {
        "format": "llm-workbench.conversation",
        "version": 1,
        "title": title,
        "messages": [
            {"role": "user", "content": text},
            {"role": "assistant", "content": "A reply from elsewhere.", "status": "complete"},
        ],
    }


def test_export_is_disabled_until_a_conversation_is_open(make_window) -> None:
    window = make_window()
    assert window.chat.conversation_id is None
    assert window.export_action.isEnabled() is False
    assert window.export_action.shortcut().toString() == "Ctrl+Shift+E"
    window.chat.new_conversation("", "")
    assert window.export_action.isEnabled() is True


def test_export_through_the_menu_writes_the_chosen_file(
    make_window, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = make_window()
    conversations = window.services.conversations
    conv = conversations.create()
    conversations.add_user_message(conv.id, "Hello there")
    window.chat.open_conversation(conv.id)
    window.refresh_conversations()
    target = tmp_path / "out.md"
    asked: list[str] = []

    def ask(title: str) -> Path:
        asked.append(title)
        return target

    monkeypatch.setattr(window.transfer, "ask_export_path", ask)
    window.export_action.trigger()
    assert asked == ["Hello there"]
    assert target.read_text(encoding="utf-8") == "# Hello there\n\n## User\n\nHello there\n"
    assert window.chat_view.banner.message.text() == f"Exported 'Hello there' to {target}."


def test_import_through_the_menu_opens_the_conversation_and_lists_it(
    make_window, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = make_window()
    source = tmp_path / "chat.json"
    source.write_text(json.dumps(_export_data("From a colleague", "Is this shared?")))
    monkeypatch.setattr(window.transfer, "ask_import_path", lambda: source)
    window.import_action.trigger()
    assert window.conversation_list.titles() == ["From a colleague"]
    opened = window.chat.conversation_id
    assert opened is not None
    assert window.services.conversations.get(opened).title == "From a colleague"
    assert "Is this shared?" in window.chat_view.reply_text()
    assert "A reply from elsewhere." in window.chat_view.reply_text()
    assert window.export_action.isEnabled() is True


def test_a_bad_file_shows_the_problem_in_the_banner_and_imports_nothing(
    make_window, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = make_window()
    source = tmp_path / "list.json"
    source.write_text("[1, 2, 3]")
    monkeypatch.setattr(window.transfer, "ask_import_path", lambda: source)
    window.import_action.trigger()
    banner = window.chat_view.banner
    assert banner.isVisible()
    assert banner.message.text().startswith(
        f"{source} cannot be imported: not a conversation export "
        "(the JSON is a list, not an object)."
    )
    assert window.conversation_list.titles() == []
    assert window.services.conversations.list_conversations() == []
    assert window.chat.conversation_id is None


def test_cancelling_the_import_dialog_does_nothing(
    make_window, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = make_window()
    monkeypatch.setattr(window.transfer, "ask_import_path", lambda: None)
    window.import_action.trigger()
    assert window.services.conversations.list_conversations() == []
