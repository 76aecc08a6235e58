"""The main window end to end, offscreen: real SmolLM2 in a real worker, real SQLite."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.chat import ConversationNotFound
from ui.main import build_services
from ui.main_window import MainWindow

pytestmark = pytest.mark.integration


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


def _reply_so_far(window: MainWindow) -> str:
    text = window.chat_view.reply_text()
    return text.split("Assistant", 1)[1] if "Assistant" in text else ""


def _send(qtbot, window: MainWindow, text: str) -> None:
    window.chat.params = window.chat.params.__class__(temperature=0.0, seed=1, max_tokens=24)
    qtbot.keyClicks(window.chat_view.input, text)
    qtbot.keyClick(window.chat_view.input, Qt.Key.Key_Return)


def test_first_launch_lists_the_demo_model(make_window) -> None:
    window = make_window()
    labels = [window.picker.combo.itemText(i) for i in range(window.picker.combo.count())]
    assert any("SmolLM2" in label for label in labels)
    assert labels[-1] == "Open GGUF file…"
    assert window.picker.selected_path().endswith(".gguf")


def test_typed_prompt_streams_a_reply_and_survives_a_restart(qtbot, make_window) -> None:
    window = make_window()
    window.chat.params = window.chat.params.__class__(temperature=0.0, seed=1, max_tokens=60)
    qtbot.keyClicks(window.chat_view.input, "Name a colour.")
    qtbot.keyClick(window.chat_view.input, Qt.Key.Key_Return)
    assert window.chat_view.send_button.isEnabled() is False
    assert window.chat_view.input.toPlainText() == ""
    # Tokens arrive while the reply is still streaming, and the text grows.
    seen: list[str] = []

    def grew_while_busy() -> bool:
        if window.chat.busy and _reply_so_far(window).strip():
            seen.append(_reply_so_far(window))
        return len(set(seen)) >= 2

    qtbot.waitUntil(grew_while_busy, timeout=60_000)
    # Not waitSignal: the reply may already have finished while the text was polled.
    qtbot.waitUntil(lambda: not window.chat.busy, timeout=60_000)
    assert len(_reply_so_far(window)) > len(seen[0])
    transcript = window.chat_view.reply_text()
    reply = transcript.split("Assistant", 1)[1]
    assert len(reply.strip()) > 5
    assert "tok/s" in transcript
    assert window.conversation_list.titles() == ["Name a colour."]
    assert "loaded" in window.picker.state.text()
    window.close()

    reopened = make_window()
    assert reopened.conversation_list.titles() == ["Name a colour."]
    assert reopened.chat.conversation_id is not None
    text = reopened.chat_view.reply_text()
    assert "Name a colour." in text
    assert reply.strip().splitlines()[0] in text


def test_stop_keeps_the_partial_reply(qtbot, make_window) -> None:
    window = make_window()
    window.chat.params = window.chat.params.__class__(temperature=0.0, seed=1, max_tokens=400)
    qtbot.keyClicks(window.chat_view.input, "Write a long story about a lighthouse.")
    qtbot.keyClick(window.chat_view.input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(_reply_so_far(window)) > 40, timeout=60_000)
    with qtbot.waitSignal(window.chat.reply_finished, timeout=5_000):
        qtbot.keyClick(window.chat_view, Qt.Key.Key_Escape)
    assert "stopped" in window.chat_view.reply_text()
    conv_id = window.chat.conversation_id
    messages = window.services.conversations.messages(conv_id)
    assert messages[-1].role == "assistant"
    assert messages[-1].status == "interrupted"
    assert len(messages[-1].content) > 40


def test_killed_worker_is_reported_and_the_gui_lives_on(qtbot, make_window) -> None:
    window = make_window()
    window.chat.params = window.chat.params.__class__(temperature=0.0, seed=1, max_tokens=400)
    qtbot.keyClicks(window.chat_view.input, "Count from one to one hundred.")
    qtbot.keyClick(window.chat_view.input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(_reply_so_far(window)) > 20, timeout=60_000)
    model = window.models.loaded_model(window.picker.selected_path())
    assert model is not None
    with qtbot.waitSignal(window.chat.reply_finished, timeout=10_000):
        os.kill(model.pid, signal.SIGKILL)
    assert window.chat_view.banner.isVisible()
    assert "stopped unexpectedly" in window.chat_view.banner.message.text()
    assert "crashed" in window.picker.state.text()
    messages = window.services.conversations.messages(window.chat.conversation_id)
    assert messages[-1].status == "interrupted"
    assert len(messages[-1].content) >= 15
    assert messages[-1].content in window.chat_view.reply_text()
    # The next message loads a fresh worker and gets an answer.
    window.chat.params = window.chat.params.__class__(temperature=0.0, seed=1, max_tokens=8)
    qtbot.keyClicks(window.chat_view.input, "Hello again")
    with qtbot.waitSignal(window.chat.reply_finished, timeout=60_000):
        qtbot.keyClick(window.chat_view.input, Qt.Key.Key_Return)
    assert window.services.conversations.messages(window.chat.conversation_id)[-1].status == (
        "complete"
    )


def test_opening_a_corrupt_file_shows_a_clear_error(qtbot, make_window, tmp_path: Path) -> None:
    window = make_window()
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"NOPE" + bytes(100))
    window.open_model_file(bad)
    assert window.chat_view.banner.isVisible()
    assert "not a usable GGUF" in window.chat_view.banner.message.text()
    labels = [window.picker.combo.itemText(i) for i in range(window.picker.combo.count())]
    assert not any("broken" in label for label in labels)


def test_rename_and_delete_from_the_list(qtbot, make_window) -> None:
    window = make_window()
    service = window.services.conversations
    first = service.create("", "", "llamacpp")
    second = service.create("", "", "llamacpp")
    window.refresh_conversations()
    assert len(window.conversation_list.titles()) == 2
    item = window.conversation_list.item_for(second.id)
    item.setText("Renamed in place")  # what the in-place editor does on Enter
    assert service.get(second.id).title == "Renamed in place"
    assert "Renamed in place" in window.conversation_list.titles()
    window.conversation_list.delete_requested.emit(first.id)
    assert [c.id for c in service.list_conversations()] == [second.id]
    assert len(window.conversation_list.titles()) == 1
    assert window.conversation_list.pending_undo() == first.id
    window.conversation_list.undo_requested.emit(first.id)  # Undo brings it back
    assert {c.id for c in service.list_conversations()} == {first.id, second.id}
    window.conversation_list.delete_requested.emit(first.id)
    window.conversation_list.expire_undo()  # the bar timed out: gone for good
    with pytest.raises(ConversationNotFound):
        service.restore(first.id)


def test_pin_from_the_list_puts_it_first(qtbot, make_window) -> None:
    window = make_window()
    service = window.services.conversations
    older = service.create("", "", "llamacpp")
    service.create("", "", "llamacpp")
    window.refresh_conversations()
    window.conversation_list.pin_requested.emit(older.id, True)
    assert service.list_conversations()[0].id == older.id
    assert window.conversation_list.headers()[0] == "Pinned"


def test_a_model_without_template_says_so_and_stays_in_the_list(
    qtbot, make_window, gemma_path: Path
) -> None:
    window = make_window()
    window.open_model_file(gemma_path)
    assert window.picker.selected_path() == str(gemma_path)
    _send(qtbot, window, "Hello")
    with qtbot.waitSignal(window.chat.reply_finished, timeout=60_000):
        pass
    assert window.chat_view.notice.isVisible()
    assert "no chat template" in window.chat_view.notice.text()
    assert "Gemma" in window.chat_view.notice.text()
    window.close()
    reopened = make_window()
    paths = [reopened.picker.combo.itemData(i) for i in range(reopened.picker.combo.count())]
    assert str(gemma_path) in paths


def test_window_geometry_is_restored(qtbot, make_window) -> None:
    window = make_window()
    window.resize(760, 540)  # inside the offscreen screen (800x600), which clamps
    window.splitter.setSizes([300, 460])
    window.close()
    reopened = make_window()
    assert (reopened.width(), reopened.height()) == (760, 540)
    assert reopened.splitter.sizes()[0] == 300


def test_closing_the_window_ends_the_worker_process(qtbot, make_window) -> None:
    import psutil

    window = make_window()
    _send(qtbot, window, "Hi")
    with qtbot.waitSignal(window.chat.reply_finished, timeout=60_000):
        pass
    model = window.models.loaded_model(window.picker.selected_path())
    assert model is not None
    worker = psutil.Process(model.pid)
    window.close()
    worker.wait(timeout=10)
    assert not psutil.pid_exists(model.pid) or worker.status() == psutil.STATUS_ZOMBIE


def test_a_failed_send_keeps_what_was_typed(qtbot, make_window) -> None:
    import sqlite3

    window = make_window()
    database = window.services.paths.database
    blocker = sqlite3.connect(database)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database
    try:
        qtbot.keyClicks(window.chat_view.input, "Keep me")
        qtbot.keyClick(window.chat_view.input, Qt.Key.Key_Return)
    finally:
        blocker.rollback()
        blocker.close()
    assert window.chat_view.banner.isVisible()
    assert "locked" in window.chat_view.banner.message.text().lower()
    assert window.chat_view.input.toPlainText() == "Keep me"
    assert window.chat_view.send_button.isEnabled()
    # Once the database is free, the same text goes through.
    window.chat.params = window.chat.params.__class__(temperature=0.0, seed=1, max_tokens=4)
    with qtbot.waitSignal(window.chat.reply_finished, timeout=60_000):
        qtbot.keyClick(window.chat_view.input, Qt.Key.Key_Return)
    assert window.chat_view.input.toPlainText() == ""


def test_load_shows_progress_and_can_be_cancelled(qtbot, make_window) -> None:
    window = make_window()
    picker = window.picker
    with qtbot.waitSignal(window.models.load_failed, timeout=30_000) as failed:
        qtbot.mouseClick(picker.load_button, Qt.MouseButton.LeftButton)
        assert picker.load_button.text() == "Cancel"
        assert picker.progress.isVisible()
        qtbot.mouseClick(picker.load_button, Qt.MouseButton.LeftButton)
    assert type(failed.args[0]).__name__ == "LoadCancelled"
    assert "load cancelled" in picker.state.text()
    assert not window.chat_view.banner.isVisible()
    assert window.models.loaded_keys() == []
    # A load left alone completes, and Unload ends it.
    with qtbot.waitSignal(window.models.model_loaded, timeout=60_000):
        qtbot.mouseClick(picker.load_button, Qt.MouseButton.LeftButton)
    assert "loaded" in picker.state.text()
    assert picker.load_button.text() == "Unload"
    qtbot.mouseClick(picker.load_button, Qt.MouseButton.LeftButton)
    assert window.models.loaded_keys() == []
    assert picker.load_button.text() == "Load"


def test_a_crash_is_retried_on_the_fallback_model(qtbot, make_window, gemma_path: Path) -> None:
    window = make_window()
    window.open_model_file(gemma_path)
    smol = next(
        str(window.picker.combo.itemData(i))
        for i in range(window.picker.combo.count())
        if "SmolLM2" in window.picker.combo.itemText(i)
    )
    window.picker.select_path(smol)
    window.chat.set_fallback(str(gemma_path), "Gemma 3 270m")
    window.chat.params = window.chat.params.__class__(temperature=0.0, seed=1, max_tokens=300)
    qtbot.keyClicks(window.chat_view.input, "Count from one to one hundred.")
    qtbot.keyClick(window.chat_view.input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(_reply_so_far(window)) > 20, timeout=60_000)
    model = window.models.loaded_model(smol)
    assert model is not None
    with qtbot.waitSignal(window.chat.reply_finished, timeout=90_000):
        os.kill(model.pid, signal.SIGKILL)
    service = window.services.conversations
    messages = service.messages(window.chat.conversation_id)
    # The retry is a second version of the reply; the crashed one stays as version 1.
    assert [m.role for m in messages] == ["user", "assistant"]
    retried = messages[1]
    assert (retried.branch_index, retried.branch_count) == (2, 2)
    crashed = service.switch_branch(window.chat.conversation_id, retried.id, -1)[1]
    assert crashed.status == "interrupted" and crashed.content
    service.switch_branch(window.chat.conversation_id, crashed.id, 1)
    assert retried.status == "complete"
    assert retried.model_name == "Gemma 3 270m"
    assert str(retried.params["note"]).startswith("retried on Gemma 3 270m: SmolLM2")
    assert "crashed" in str(retried.params["note"])
    assert "retried on Gemma 3 270m" in window.chat_view.reply_text()


def test_a_failed_load_is_retried_on_the_fallback_model(qtbot, make_window, tmp_path: Path) -> None:
    window = make_window()
    smol = window.picker.selected_path()
    # A file that passes the header check but that llama.cpp refuses: SmolLM2's header with
    # its architecture renamed, so the load itself fails in the worker.
    broken = tmp_path / "renamed-arch.gguf"
    data = Path(smol).read_bytes().replace(b"llama.block_count", b"llamx.block_count", 1)
    broken.write_bytes(data)
    window.open_model_file(broken)
    window.picker.select_path(str(broken))
    window.chat.set_fallback(smol, "SmolLM2")
    window.chat.params = window.chat.params.__class__(temperature=0.0, seed=1, max_tokens=8)
    qtbot.keyClicks(window.chat_view.input, "Hi")
    with qtbot.waitSignal(window.chat.reply_finished, timeout=60_000):
        qtbot.keyClick(window.chat_view.input, Qt.Key.Key_Return)
    messages = window.services.conversations.messages(window.chat.conversation_id)
    assert messages[-1].status == "complete"
    assert messages[-1].model_name == "SmolLM2"
    assert "failed to load" in str(messages[-1].params["note"])


def test_fallback_list_offers_the_pickers_models_and_stores_the_choice(qtbot, make_window) -> None:
    window = make_window()
    combo = window.chat_view.fallback
    combo.about_to_open.emit()
    items = [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count())]
    assert items[0] == ("no fallback", "")
    assert [data for _, data in items[1:]] == [c for _, c in window.picker.choices()]
    assert all("Open GGUF" not in text for text, _ in items)
    combo.activated.emit(1)
    assert window.chat.conversation_id is not None
    assert window.services.conversations.fallback(window.chat.conversation_id) == (
        items[1][1],
        items[1][0],
    )
