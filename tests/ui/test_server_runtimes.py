"""The window with server runtimes: Ollama and a saved OpenAI-compatible endpoint on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.endpoints import EndpointStore
from app.paths import app_paths
from app.settings import Settings
from runtimes.base import GenerationParams
from ui.main import build_services
from ui.main_window import MainWindow
from ui.model_picker import split_choice

pytestmark = pytest.mark.integration


@pytest.fixture()
def window(
    qtbot,
    workbench_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    ollama_server,
    llama_cpp_server,
    memory_keyring,
):
    """A window whose Ollama is the loopback protocol server, with one saved endpoint."""
    monkeypatch.setenv("OLLAMA_HOST", ollama_server.url)
    paths = app_paths().ensure()
    settings = Settings.load(paths.settings_file)
    EndpointStore(settings).add("local llama-server", llama_cpp_server.base_url)
    settings.save()
    win = MainWindow(build_services())
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()


def _choices(window: MainWindow) -> list[str]:
    combo = window.picker.combo
    return [str(combo.itemData(i)) for i in range(combo.count()) if combo.itemData(i)]


def test_server_models_appear_in_the_picker(qtbot, window: MainWindow) -> None:
    window.start_server_discovery()
    qtbot.waitUntil(
        lambda: (
            {split_choice(c)[0] for c in _choices(window)}
            >= {"llamacpp", "ollama", "openai:local llama-server"}
        ),
        timeout=20_000,
    )
    assert "ollama::smollm2:135m" in _choices(window)


@pytest.mark.parametrize("runtime_key", ["ollama", "openai:local llama-server"])
def test_chat_through_a_server_runtime(qtbot, window: MainWindow, runtime_key: str) -> None:
    window.start_server_discovery()
    qtbot.waitUntil(
        lambda: any(split_choice(c)[0] == runtime_key for c in _choices(window)), timeout=20_000
    )
    choice = next(c for c in _choices(window) if split_choice(c)[0] == runtime_key)
    window.picker.select_path(choice)
    window.chat.params = GenerationParams(temperature=0.0, seed=1, max_tokens=12)
    qtbot.keyClicks(window.chat_view.input, "Say hello.")
    with qtbot.waitSignal(window.chat.reply_finished, timeout=60_000):
        qtbot.keyClick(window.chat_view.input, Qt.Key.Key_Return)
    messages = window.services.conversations.messages(window.chat.conversation_id)
    assert messages[-1].role == "assistant"
    assert messages[-1].status == "complete"
    assert messages[-1].runtime == runtime_key
    assert messages[-1].content.strip()
    assert messages[-1].stats is not None
    assert messages[-1].stats.decode_tps > 0
    assert "loaded" in window.picker.state.text()


def test_runtimes_page_shows_each_state(qtbot, window: MainWindow) -> None:
    page = window.show_runtimes()
    seen: dict[str, str] = {}
    page.status_changed.connect(lambda entry: seen.__setitem__(entry.key, entry.status.state))
    qtbot.waitUntil(lambda: len(seen) == 3, timeout=20_000)
    assert seen == {
        "llamacpp": "available",
        "ollama": "available",
        "openai:local llama-server": "available",
    }
    text = page.rows["ollama"][1].text()
    assert "Ollama" in text
    assert "available" in text
