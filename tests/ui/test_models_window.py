"""The Models window end to end on a loopback Hub: discover, download with progress, quit and
resume, find it in the library, delete it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.library import ModelLibrary
from app.paths import app_paths
from app.settings import Settings
from tests.integration.test_hub_search import PROFILE
from tests.servers.hf_server import Fault, HFServer, HubRepo
from ui.models_window import ModelsWindow

pytestmark = pytest.mark.integration
REPO = "org/smol-GGUF"
FILE = "smol-Q4_1.gguf"


def _window(qtbot, cache: Path, endpoint: str) -> ModelsWindow:  # type: ignore[no-untyped-def]
    """A Models window on the Hub cache at `cache` (downloads land where the library looks:
    HF_HUB_CACHE, as for other tools)."""
    paths = app_paths().ensure()
    settings = Settings.load(paths.settings_file)
    assert os.environ["HF_HUB_CACHE"] == str(cache)
    window = ModelsWindow(paths, ModelLibrary(paths), settings, lambda: PROFILE, endpoint=endpoint)
    qtbot.addWidget(window)
    window.show()
    return window


def _pick_and_download(qtbot, window: ModelsWindow) -> None:  # type: ignore[no-untyped-def]
    discover = window.discover_view
    discover.query.setText("smol")
    discover.search_button.click()
    qtbot.waitUntil(
        lambda: any(
            discover.models.item(i).data(Qt.ItemDataRole.UserRole) == REPO
            for i in range(discover.models.count())
        ),
        timeout=20_000,
    )
    hit = next(
        discover.models.item(i) for i in range(discover.models.count())
        if discover.models.item(i).data(Qt.ItemDataRole.UserRole) == REPO
    )  # fmt: skip
    discover.models.setCurrentItem(hit)
    qtbot.waitUntil(lambda: discover.files.rowCount() == 1, timeout=20_000)
    assert discover.files.item(0, 2).text() == "CPU only"
    discover.files.selectRow(0)
    discover.download_button.click()
    assert window.tabs.currentWidget() is window.downloads_view


def test_download_quit_resume_then_chat_ready_in_the_library(
    qtbot,
    hf_server: HFServer,
    smollm2_path: Path,
    workbench_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # type: ignore[no-untyped-def]
    hf_server.add(HubRepo(REPO, {FILE: smollm2_path}, downloads=3))
    hf_server.fault(REPO, FILE, Fault(bytes_per_second=8_000_000))
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    window = _window(qtbot, cache, hf_server.endpoint)
    _pick_and_download(qtbot, window)
    downloads = window.downloads_view
    bar = downloads.table.cellWidget(0, 1)
    qtbot.waitUntil(lambda: bar.value() > 50, timeout=30_000)  # more than 5 % arrived
    window.wait_for_workers()  # quitting the app pauses it; the partial file stays
    assert downloads.queue.entries[0].state == "paused"
    assert list(cache.glob("models--org--smol-GGUF/blobs/*.incomplete"))
    window.close()

    hf_server.fault(REPO, FILE, None)
    again = _window(qtbot, cache, hf_server.endpoint)  # a new start reads the queue
    assert again.downloads_view.queue.entries[0].state == "paused"
    again.downloads_view.resume_button.click()
    with qtbot.waitSignal(again.downloads_view.model_downloaded, timeout=60_000) as done:
        pass
    path = Path(done.args[0])
    assert path.read_bytes() == smollm2_path.read_bytes()
    ranges = [r.range for r in hf_server.requests if r.method == "GET" and r.range]
    assert any(r.startswith("bytes=") and not r.startswith("bytes=0-") for r in ranges)
    library = again.library_view
    qtbot.waitUntil(lambda: any(m.source == "huggingface" for m in library._models), timeout=10_000)
    model = next(m for m in library._models if m.source == "huggingface")
    assert model.owned and model.repo == REPO
    again.wait_for_workers()


def test_deleting_an_owned_download_frees_the_disk(
    qtbot,
    hf_server: HFServer,
    smollm2_path: Path,
    workbench_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # type: ignore[no-untyped-def]
    hf_server.add(HubRepo(REPO, {FILE: smollm2_path}))
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    window = _window(qtbot, cache, hf_server.endpoint)
    window.library_view._confirm = lambda _question: True
    _pick_and_download(qtbot, window)
    with qtbot.waitSignal(window.downloads_view.model_downloaded, timeout=60_000):
        pass
    window.tabs.setCurrentWidget(window.library_view)
    rows = window.library_view._models
    row = next(i for i, m in enumerate(rows) if m.source == "huggingface")
    window.library_view.table.selectRow(row)
    window.library_view.delete_button.click()
    assert "freed" in window.library_view.status.text()
    assert not list(cache.glob("models--org--smol-GGUF/blobs/*"))
    window.wait_for_workers()
