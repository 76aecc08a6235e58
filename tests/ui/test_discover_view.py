"""The Discover view: curated catalog offline, Hub search, files with fit badges, download."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.fit_types import FitRequest
from app.hub_search import fit_quants, repo_files, search_hub
from app.recommend import recommend
from tests.integration.test_hub_search import PROFILE
from tests.servers.hf_server import HFServer, HubRepo
from ui.discover_view import DiscoverView, DownloadChoice
from ui.fit_badge import VERDICT_ROLE

pytestmark = pytest.mark.integration


def _view(qtbot, server_endpoint: str) -> DiscoverView:  # type: ignore[no-untyped-def]
    def files(repo: str):  # type: ignore[no-untyped-def]
        info = repo_files(repo, endpoint=server_endpoint)
        return info, fit_quants(info, PROFILE, FitRequest(n_ctx=2048),
                                       endpoint=server_endpoint)  # fmt: skip

    view = DiscoverView(
        lambda text, sort: search_hub(text, sort=sort, endpoint=server_endpoint),
        files,
        lambda: recommend(PROFILE, FitRequest(n_ctx=4096)),
    )
    qtbot.addWidget(view)
    view.show()
    return view


def _labels(view: DiscoverView) -> list[str]:
    return [view.models.item(i).text() for i in range(view.models.count())]


def test_the_curated_catalog_shows_first_without_the_network(qtbot) -> None:  # type: ignore[no-untyped-def]
    view = _view(qtbot, "http://127.0.0.1:9")
    qtbot.waitUntil(lambda: view.models.count() >= 30, timeout=20_000)
    assert any("SmolLM2 135M Instruct  ·  curated" in label for label in _labels(view))
    smol = next(
        view.models.item(i) for i in range(view.models.count())
        if "SmolLM2 135M" in view.models.item(i).text()
    )  # fmt: skip
    view.models.setCurrentItem(smol)
    assert view.files.rowCount() >= 2
    verdict = view.files.item(0, 2).data(VERDICT_ROLE)
    assert verdict is not None and verdict.verdict in ("cpu_only", "full_gpu")
    view.wait_for_workers()


def test_search_then_pick_a_file_by_its_badge_and_download(
    qtbot, hf_server: HFServer, smollm2_path: Path
) -> None:  # type: ignore[no-untyped-def]
    hf_server.add(HubRepo("org/smol-GGUF", {"smol-Q4_1.gguf": smollm2_path}, downloads=7))
    view = _view(qtbot, hf_server.endpoint)
    view.query.setText("smol")
    view.search_button.click()
    qtbot.waitUntil(lambda: any("org/smol-GGUF" in t for t in _labels(view)), timeout=20_000)
    hit = next(
        view.models.item(i) for i in range(view.models.count())
        if view.models.item(i).data(Qt.ItemDataRole.UserRole) == "org/smol-GGUF"
    )  # fmt: skip
    view.models.setCurrentItem(hit)
    qtbot.waitUntil(lambda: view.files.rowCount() == 1, timeout=20_000)
    assert view.files.item(0, 0).text() == "Q4_1"
    assert view.files.item(0, 2).text() == "CPU only"
    view.files.selectRow(0)
    assert view.download_button.isEnabled()
    with qtbot.waitSignal(view.download_requested) as signal:
        view.download_button.click()
    assert signal.args == [
        DownloadChoice("org/smol-GGUF", "Q4_1", ("smol-Q4_1.gguf",), smollm2_path.stat().st_size)
    ]
    view.wait_for_workers()


def test_an_unreachable_hub_is_said_in_one_line(qtbot) -> None:  # type: ignore[no-untyped-def]
    view = _view(qtbot, "http://127.0.0.1:9")
    view.query.setText("qwen")
    view.search_button.click()
    qtbot.waitUntil(lambda: "Could not reach Hugging Face" in view.status.text(), timeout=20_000)
    view.wait_for_workers()
