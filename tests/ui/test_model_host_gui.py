"""Several models at once in the window: side by side, refused with numbers, unloaded when idle."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from app.engine import ModelHost
from ui.main import build_services
from ui.main_window import MainWindow
from ui.model_controller import IDLE_SWEEP_MS, choice_key

pytestmark = pytest.mark.integration


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def make_window(qtbot, workbench_home: Path):
    """A main window whose llama.cpp host is built by the test (clock, free memory)."""
    windows: list[MainWindow] = []

    def make(host: ModelHost | None = None) -> MainWindow:
        services = build_services()
        if host is not None:
            services = dataclasses.replace(services, host=host)
        window = MainWindow(services)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()


def _load(qtbot, window: MainWindow, choice: str) -> None:
    window.picker.select_path(choice)
    with qtbot.waitSignal(window.models.model_loaded, timeout=60_000):
        window.picker.load_button.click()


def _gone(pid: int) -> Callable[[], bool]:
    def check() -> bool:
        if not psutil.pid_exists(pid):
            return True
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE

    return check


def test_a_second_model_loads_beside_the_first(
    qtbot, make_window, workbench_home: Path, smollm2_path: Path
) -> None:
    second = workbench_home / "models" / "second-smollm2.gguf"
    second.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(smollm2_path, second)
    window = make_window()
    first = window.picker.selected_path()
    assert first != str(second)
    assert window.picker.combo.findData(str(second)) >= 0
    _load(qtbot, window, first)
    _load(qtbot, window, str(second))
    one = window.models.loaded_model(first)
    two = window.models.loaded_model(str(second))
    assert one is not None and two is not None
    assert one.alive and two.alive
    assert one.pid != two.pid
    assert "● loaded" in window.picker.state.text()
    assert window.picker.loaded_count.text() == "2 loaded"
    assert "second-smollm2.gguf" in window.picker.loaded_count.toolTip()
    # Choosing the other model shows its own state; Unload ends only the chosen one.
    window.picker.select_path(first)
    assert "● loaded" in window.picker.state.text()
    window.picker.load_button.click()  # Unload
    assert "not loaded" in window.picker.state.text()
    qtbot.waitUntil(_gone(one.pid), timeout=10_000)
    assert two.alive
    assert window.models.loaded_keys() == [choice_key(str(second))]
    window.close()
    qtbot.waitUntil(_gone(two.pid), timeout=10_000)


def test_a_load_that_would_not_fit_shows_the_numbers(qtbot, make_window) -> None:
    host = ModelHost(available_memory=lambda: 64 * 1024**2)
    window = make_window(host)
    with qtbot.waitSignal(window.models.load_failed, timeout=30_000) as failed:
        window.picker.load_button.click()
    assert type(failed.args[0]).__name__ == "WontFit"
    banner = window.chat_view.banner
    assert banner.isVisible()
    text = banner.message.text()
    assert "needs ~" in text and "MiB" in text and "is free" in text
    assert "failed to load" in window.picker.state.text()
    assert window.models.loaded_keys() == []


def test_an_idle_model_is_unloaded_after_its_keep_alive_unless_kept_warm(
    qtbot, make_window
) -> None:
    clock = FakeClock()
    window = make_window(ModelHost(clock=clock))
    models = window.models
    assert models.idle_timer.isActive() and models.idle_timer.interval() == IDLE_SWEEP_MS
    choice = window.picker.selected_path()
    dialog = models.edit_load_options()
    assert dialog is not None
    dialog.keep_mode.setCurrentIndex(1)
    dialog.keep_minutes.setValue(2)
    dialog.accept()
    _load(qtbot, window, choice)
    model = models.loaded_model(choice)
    assert model is not None
    clock.now += 100
    assert models.sweep_idle() == []
    # A streaming reply keeps its model however long it runs.
    models.reply_running = lambda: True
    clock.now += 1000
    assert models.sweep_idle() == []
    models.reply_running = lambda: False
    clock.now += 121
    assert models.sweep_idle() == [choice_key(choice)]
    assert window.picker.state.text() == "○ unloaded after 2 min idle"
    qtbot.waitUntil(_gone(model.pid), timeout=10_000)
    assert not models.keep_warm_action.isEnabled()

    # Kept warm, it stays however long it idles.
    _load(qtbot, window, choice)
    warm = models.loaded_model(choice)
    assert warm is not None
    assert models.keep_warm_action.isEnabled()
    models.keep_warm_action.trigger()
    assert models.keep_warm_action.isChecked()
    clock.now += 10_000
    assert models.sweep_idle() == []
    assert warm.alive
    assert "● loaded" in window.picker.state.text()
    # Let go again, it idles out on the next sweep.
    models.keep_warm_action.trigger()
    assert models.sweep_idle() == [choice_key(choice)]
