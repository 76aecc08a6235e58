"""The Ollama panel against the Ollama-protocol test server: list, pull, unload, delete, errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtWidgets import QMessageBox, QPushButton

from app.runtimes import RuntimeRegistry
from runtimes.base import (
    CancelToken,
    ChatMessage,
    ChatRequest,
    GenerationParams,
    LoadOptions,
    join_text,
)
from runtimes.ollama import OllamaRuntime, PullProgress
from tests.servers.fixtures_ollama import COPY, PULLABLE, SMOLLM2, OllamaTestServer
from ui.ollama_panel import OllamaPanel, expires_text, human_size
from ui.runtimes_page import RuntimesPage

pytestmark = pytest.mark.integration


@pytest.fixture()
def server(ollama_server: OllamaTestServer) -> Iterator[OllamaTestServer]:
    """The session's server, its pulls, deletions and loaded models undone afterwards."""
    yield ollama_server
    ollama_server.reset()


@pytest.fixture()
def panel(qtbot, server: OllamaTestServer) -> Iterator[OllamaPanel]:
    panel = OllamaPanel(lambda: OllamaRuntime(server.url, timeout_s=3.0))
    qtbot.addWidget(panel)
    panel.show()
    with qtbot.waitSignal(panel.refreshed, timeout=10_000):
        panel.refresh()
    yield panel
    panel.wait_for_tasks()


def _row(panel: OllamaPanel, name: str) -> list[str]:
    table = panel.models_table
    row = panel.model_names().index(name)
    return [table.item(row, c).text() for c in range(table.columnCount() - 1)]


def _button(table, name: str) -> QPushButton:
    names = [table.item(r, 0).text() for r in range(table.rowCount())]
    button = table.cellWidget(names.index(name), table.columnCount() - 1)
    assert isinstance(button, QPushButton)
    return button


def test_the_panel_lists_the_server_models_with_their_details(panel: OllamaPanel) -> None:
    assert SMOLLM2 in panel.model_names()
    name, family, params, quant, size = _row(panel, SMOLLM2)
    assert name == SMOLLM2
    assert family == "llama"
    assert params.endswith("M")
    assert quant == "Q4_1"
    assert size.endswith("MB")
    assert panel.loaded_names() == []
    assert panel.message.text() == ""


def test_pull_shows_progress_up_to_100_percent_and_lists_the_model(
    qtbot, panel: OllamaPanel
) -> None:
    steps: list[PullProgress] = []
    panel.pull_progressed.connect(steps.append)
    qtbot.keyClicks(panel.pull_name, PULLABLE)
    with (
        qtbot.waitSignal(panel.refreshed, timeout=20_000),
        qtbot.waitSignal(panel.pull_finished, timeout=20_000) as finished,
    ):
        panel.pull_button.click()
        assert not panel.pull_button.isEnabled()
        assert panel.cancel_button.isEnabled()
    assert finished.args == [PULLABLE]
    assert steps[0].status == "pulling manifest"
    assert steps[-1].status == "success"
    layers = [s for s in steps if s.total > 0]
    assert layers and layers[-1].completed == layers[-1].total
    assert panel.pull_bar.value() == panel.pull_bar.maximum() > 0
    assert PULLABLE in panel.model_names()
    assert panel.pull_button.isEnabled() and not panel.cancel_button.isEnabled()


def test_cancel_stops_a_pull_part_way(qtbot, panel: OllamaPanel) -> None:
    steps: list[PullProgress] = []

    def on_progress(progress: PullProgress) -> None:
        steps.append(progress)
        if progress.total > 0:
            panel.cancel_button.click()

    panel.pull_progressed.connect(on_progress)
    with qtbot.waitSignal(panel.refreshed, timeout=20_000):
        panel.pull(PULLABLE)
    assert "cancelled" in panel.pull_status.text()
    assert all(s.status != "success" for s in steps)
    assert PULLABLE not in panel.model_names()
    assert panel.pull_bar.value() == 0
    assert panel.pull_button.isEnabled() and not panel.cancel_button.isEnabled()


def test_pulling_an_unknown_name_shows_the_servers_error(qtbot, panel: OllamaPanel) -> None:
    with qtbot.waitSignal(panel.failed, timeout=10_000) as failed:
        panel.pull("no-such-model:1b")
    message = failed.args[0]
    assert "could not pull no-such-model:1b" in message
    assert "file does not exist" in message
    assert "could not pull" in panel.message.text()
    assert panel.pull_bar.value() == 0
    assert panel.pull_button.isEnabled() and not panel.cancel_button.isEnabled()


def test_a_model_loaded_by_a_chat_is_shown_and_unloads(
    qtbot, panel: OllamaPanel, server: OllamaTestServer
) -> None:
    runtime = OllamaRuntime(server.url)
    try:
        model = runtime.load(SMOLLM2, LoadOptions(n_ctx=512))
        request = ChatRequest(
            (ChatMessage("user", "Say hi."),), GenerationParams(temperature=0.0, max_tokens=4)
        )
        assert join_text(list(model.chat(request, CancelToken())))
    finally:
        runtime.close()
    with qtbot.waitSignal(panel.refreshed, timeout=10_000):
        panel.refresh()
    assert panel.loaded_names() == [SMOLLM2]
    row = [panel.loaded_table.item(0, c).text() for c in range(4)]
    assert row[1].endswith("MB")
    assert row[2] in {"GPU", "CPU"} or row[2].endswith("% GPU")
    assert row[3].startswith("in ")

    with qtbot.waitSignal(panel.refreshed, timeout=10_000):
        _button(panel.loaded_table, SMOLLM2).click()
    assert panel.loaded_names() == []


def test_delete_asks_first_then_removes_the_model(
    qtbot, panel: OllamaPanel, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = [QMessageBox.StandardButton.No]
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *_a, **_k: answer[0]))
    _button(panel.models_table, COPY).click()
    assert COPY in panel.model_names()
    answer[0] = QMessageBox.StandardButton.Yes
    with qtbot.waitSignal(panel.refreshed, timeout=10_000):
        _button(panel.models_table, COPY).click()
    assert COPY not in panel.model_names()
    assert SMOLLM2 in panel.model_names()


def test_the_runtimes_page_shows_the_panel_under_a_running_ollama(
    qtbot, server: OllamaTestServer
) -> None:
    page = RuntimesPage(RuntimeRegistry(ollama_host=server.url))
    qtbot.addWidget(page)
    page.show()
    with qtbot.waitSignal(page.ollama_panel.refreshed, timeout=15_000):
        page.check("ollama")
    assert page.ollama_panel.isVisible()
    assert SMOLLM2 in page.ollama_panel.model_names()
    page.wait_for_checks()


def test_sizes_and_expiry_read_as_people_say_them() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert human_size(91_700_000) == "91.7 MB"
    assert human_size(4_900_000_000) == "4.9 GB"
    assert human_size(512) == "512 B"
    assert expires_text(None, now) == "—"
    assert expires_text(now + timedelta(minutes=4, seconds=50), now) == "in 5 min"
    assert expires_text(now + timedelta(seconds=20), now) == "in under a minute"
    assert expires_text(now + timedelta(days=100_000), now) == "never"
