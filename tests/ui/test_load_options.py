"""The Load options dialog: saved per model, used on the next load, reset, reload offered."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QDialogButtonBox, QLabel, QMessageBox

from app.model_options import model_key
from ui.main import build_services
from ui.main_window import MainWindow
from ui.model_controller import choice_key

pytestmark = pytest.mark.integration


@pytest.fixture()
def make_window(qtbot, workbench_home: Path):
    """A main window on fresh services; closed (every model unloaded) afterwards."""
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


def test_saved_options_are_used_on_the_next_load_and_survive_a_restart(qtbot, make_window) -> None:
    window = make_window()
    choice = window.picker.selected_path()
    dialog = window.models.edit_load_options()
    assert dialog is not None
    assert "Defaults for this machine" in dialog.findChild(QLabel, "defaults_explanation").text()
    assert dialog.context.value() == 4096  # the planner's default context
    dialog.context.setValue(1024)
    dialog.kv_type.setCurrentText("q8_0")
    dialog.flash_attn.setChecked(True)
    dialog.keep_mode.setCurrentIndex(1)
    dialog.keep_minutes.setValue(5)
    dialog.buttons.button(QDialogButtonBox.StandardButton.Save).click()
    assert window.models.options is not None
    saved = window.models.options.get(model_key("llamacpp", choice))
    assert saved is not None
    assert (saved.n_ctx, saved.kv_cache_type, saved.flash_attn) == (1024, "q8_0", True)
    assert saved.keep_alive_s == 300
    assert window.models.reload_prompt is None  # nothing was loaded: nothing to reload

    with qtbot.waitSignal(window.models.model_loaded, timeout=60_000) as loaded:
        window.picker.load_button.click()
    info = loaded.args[0].info
    assert info.n_ctx == 1024
    assert "KV cache q8_0" in info.notice
    assert "Flash attention on" in info.notice
    assert "ctx 1024" in window.picker.state.text()
    window.close()

    reopened = make_window()
    assert reopened.models.plan_for(choice).options.n_ctx == 1024
    again = reopened.models.edit_load_options()
    assert again is not None
    assert again.context.value() == 1024
    assert again.kv_type.currentText() == "q8_0"
    again.reject()


def test_reset_forgets_the_saved_options_and_offers_to_reload_a_loaded_model(
    qtbot, make_window
) -> None:
    window = make_window()
    choice = window.picker.selected_path()
    assert window.models.options is not None
    dialog = window.models.edit_load_options()
    assert dialog is not None
    dialog.context.setValue(512)
    dialog.accept()
    with qtbot.waitSignal(window.models.model_loaded, timeout=60_000) as first:
        window.picker.load_button.click()
    assert first.args[0].info.n_ctx == 512
    first_pid = first.args[0].pid

    dialog = window.models.edit_load_options()
    assert dialog is not None
    assert dialog.context.value() == 512
    dialog.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).click()
    assert dialog.context.value() == 4096
    assert dialog.is_default()
    dialog.accept()
    assert window.models.options.get(choice_key(choice)) is None
    prompt = window.models.reload_prompt
    assert prompt is not None and prompt.isVisible()
    with qtbot.waitSignal(window.models.model_loaded, timeout=60_000) as reloaded:
        prompt.button(QMessageBox.StandardButton.Yes).click()
    assert reloaded.args[0].info.n_ctx == 4096
    assert reloaded.args[0].pid != first_pid
    assert window.models.loaded_keys() == [choice_key(choice)]


def test_declining_the_reload_keeps_the_model_as_it_was(qtbot, make_window) -> None:
    window = make_window()
    with qtbot.waitSignal(window.models.model_loaded, timeout=60_000) as loaded:
        window.picker.load_button.click()
    dialog = window.models.edit_load_options()
    assert dialog is not None
    dialog.context.setValue(2048)
    dialog.accept()
    prompt = window.models.reload_prompt
    assert prompt is not None
    prompt.button(QMessageBox.StandardButton.No).click()
    model = window.models.loaded_model(window.picker.selected_path())
    assert model is not None
    assert model.pid == loaded.args[0].pid
    assert model.info.n_ctx == 4096
    assert window.models.plan_for(window.picker.selected_path()).options.n_ctx == 2048
