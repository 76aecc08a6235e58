"""The This Machine page: hardware card, memory bar, Recommended table that follows the controls."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from app.fit_types import (
    GIB,
    MIB,
    SIZE_CLASS_LABELS,
    FitRequest,
    FitVerdict,
    MemoryBreakdown,
    Recommendation,
    SpeedEstimate,
    unknown_verdict,
)
from app.hardware import GPU, AppleSilicon, CPUInfo, HardwareProfile, MemoryInfo, OSInfo
from app.hardware.profile import MemoryBandwidth
from ui.machine_page import MachinePage
from ui.recommend_table import CONTEXT_STEPS, FIT_COLUMN

LINUX = OSInfo("Linux", "6.1", "x86_64")
RAM = MemoryInfo(64 * GIB, 60 * GIB, 8 * GIB, 6 * GIB)
NVIDIA = HardwareProfile(
    LINUX,
    CPUInfo("AMD Ryzen 9 7950X 16-Core Processor", 16, 16, 0, 32, ("AVX2", "AVX-512")),
    RAM,
    models_dir="/models",
    disk_free_bytes=500 * GIB,
    gpus=(GPU("NVIDIA", "NVIDIA GeForce RTX 4090", 24 * GIB, 23 * GIB, "550.54", "8.9", "nvml"),),
    notes=("nvidia-smi not found",),
    bandwidth=(MemoryBandwidth("gpu:0", 1_008_000_000_000, "NVML: 2 x 10501 MHz x 384 bit / 8"),),
    other_gpus=(GPU("AMD", "Radeon 780M", 0, None, "", "", "nvml"),),
)
APPLE = HardwareProfile(
    OSInfo("macOS", "14.5", "arm64"),
    CPUInfo("Apple M2 Pro", 12, 8, 4, 12, ("NEON",)),
    MemoryInfo(32 * GIB, 20 * GIB, 0, 0),
    apple=AppleSilicon("Apple M2 Pro", 8, 4, 19, 32 * GIB, int(21.3 * GIB), "metal", 0),
)
CPU_ONLY = HardwareProfile(LINUX, CPUInfo("AMD EPYC", 2, 2, 0, 2, ()), RAM)

BUDGET = 24 * GIB
# (model id, name, size class, params, quant, weights GiB, KV MiB per 1k tokens)
CATALOG = [
    ("smollm2-135m", "SmolLM2 135M", "tiny", "135M", "Q8_0", 0.14, 10),
    ("smollm2-135m", "SmolLM2 135M", "tiny", "135M", "Q4_K_M", 0.1, 10),
    ("qwen2.5-7b", "Qwen 2.5 7B", "small", "7.6B", "Q8_0", 8.1, 56),
    ("qwen2.5-7b", "Qwen 2.5 7B", "small", "7.6B", "Q4_K_M", 4.7, 56),
    ("llama3.3-70b", "Llama 3.3 70B", "large", "70.6B", "Q4_K_M", 42.5, 320),
]


def _verdict(weights_gib: float, kv_mib_per_k: int, request: FitRequest) -> FitVerdict:
    kv_scale = {"f16": 1.0, "q8_0": 0.53, "q4_0": 0.28}[request.kv_cache_type]
    kv = int(kv_mib_per_k * MIB * request.n_ctx / 1024 * kv_scale)
    weights = int(weights_gib * GIB)
    memory = MemoryBreakdown(weights, weights, kv, kv, 300 * MIB, 300 * MIB, 0, 0, 0, "formula")
    headroom = BUDGET - memory.total_bytes
    kind = "full_gpu" if headroom >= 0 else "wont_fit"
    return FitVerdict(
        verdict=kind,
        gpu_layers=28 if kind == "full_gpu" else 0,
        n_layers=28,
        context_length=request.n_ctx,
        kv_cache_type=request.kv_cache_type,
        flash_attn=request.flash_attn,
        memory=memory,
        budget_bytes=BUDGET,
        headroom_bytes=headroom,
        tight=0 <= headroom < BUDGET // 10,
        speed=SpeedEstimate(1000 / weights_gib, None, "estimated", "1 TB/s ÷ weights"),
        explanation=f"needs {memory.total_bytes / GIB:.1f} GB at {request.n_ctx}",
    )


class FakeRecommender:
    """A recommend function over `CATALOG` whose verdicts depend on the context and KV type;
    it records every request (from the worker thread) and can be held to simulate slowness."""

    def __init__(self) -> None:
        self.requests: list[FitRequest] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, request: FitRequest) -> list[Recommendation]:
        self.requests.append(request)
        self.gate.wait(10)
        recs = []
        fitted: set[str] = set()
        for model_id, name, size, params, quant, weights, kv in CATALOG:
            verdict = _verdict(weights, kv, request)
            # The first (best-quality) quant that fits with headroom is the best.
            best = model_id not in fitted and verdict.verdict != "wont_fit" and not verdict.tight
            if best:
                fitted.add(model_id)
            recs.append(
                Recommendation(
                    model_id, name, size, params, quant,  # type: ignore[arg-type]
                    f"org/{model_id}-GGUF", f"{model_id}-{quant}.gguf", int(weights * GIB),
                    f"{quant} quality note", verdict, best,
                    f"/models/{model_id}-{quant}.gguf" if model_id.startswith("smollm2") else "",
                )
            )  # fmt: skip
        return recs


@pytest.fixture()
def recommender() -> FakeRecommender:
    return FakeRecommender()


@pytest.fixture()
def page(qtbot, recommender: FakeRecommender) -> Iterator[MachinePage]:
    page = MachinePage(NVIDIA, recommender)
    qtbot.addWidget(page)
    page.resize(1100, 900)
    with qtbot.waitSignal(page.recommendations_shown, timeout=10_000):
        page.show()
    yield page
    recommender.gate.set()
    page.wait_for_workers()


def _rows(page: MachinePage) -> list[str]:
    model = page.table.table_model
    return [
        f"{model.index(r, 0).data()} | {model.index(r, 1).data()}" if model.index(r, 1).data()
        else str(model.index(r, 0).data())
        for r in range(model.rowCount())
    ]  # fmt: skip


def _rec(page: MachinePage, model_id: str, quant: str) -> Recommendation:
    for row in page.table.table_model.rows:
        if isinstance(row, Recommendation) and (row.model_id, row.quant) == (model_id, quant):
            return row
    raise AssertionError(f"no row {model_id} {quant}")


def _row_of(page: MachinePage, model_id: str, quant: str) -> int:
    return page.table.table_model.rows.index(_rec(page, model_id, quant))


def _move_context(qtbot, page: MachinePage, n_ctx: int) -> None:
    with qtbot.waitSignal(
        page.recommendations_shown,
        timeout=10_000,
        check_params_cb=lambda request: request.n_ctx == n_ctx,
    ):
        page.context_slider.setValue(CONTEXT_STEPS.index(n_ctx))


def test_card_shows_the_facts_of_an_nvidia_machine(page: MachinePage) -> None:
    text = "\n".join(page.card.texts())
    for part in (
        "AMD Ryzen 9 7950X · 16 cores · 32 threads · AVX2 AVX-512",
        "NVIDIA GeForce RTX 4090 · 24.0 GB VRAM (23.0 GB free) · driver 550.54 · compute 8.9",
        "64.0 GB · 60.0 GB available at probe",
        "8.0 GB (6.0 GB free)",
        "500.0 GB free in /models",
        "Linux 6.1 (x86_64)",
        "nvidia-smi not found",
        "24.0 GB of VRAM for models",
        "GPU memory 1008 GB/s (NVML: 2 x 10501 MHz x 384 bit / 8)",
        "AMD Radeon 780M: not usable by llama.cpp here",
    ):
        assert part in text, part
    assert page.vram_bar.isVisible()
    assert page.vram_bar.total_bytes == 24 * GIB and page.vram_bar.available_bytes == 23 * GIB


def test_card_shows_unified_memory_and_the_gpu_limit_on_apple(qtbot) -> None:
    page = MachinePage(APPLE, None)
    qtbot.addWidget(page)
    page.show()
    text = "\n".join(page.card.texts())
    assert "Apple M2 Pro · 8 performance + 4 efficiency cores · 19-core GPU" in text
    assert "32.0 GB · GPU working-set limit 21.3 GB (from Metal recommendedMaxWorkingSetSize)" in (
        text
    )
    assert "Swap" in text and "none" in text
    assert "GPU budget" not in text  # the working-set limit is the budget, said once
    assert page.memory_title.text().startswith("<b>Unified memory</b>")
    assert not page.vram_bar.isVisible()
    # The live bar is this machine's RAM now, with the profile's GPU limit marked on it.
    assert page.memory_bar.total_bytes == psutil.virtual_memory().total
    assert page.memory_bar.gpu_limit_bytes == int(21.3 * GIB)
    assert "GPU limit 21.3 GB" in page.memory_bar.caption()


def test_without_a_probe_it_says_probing_then_fills_in(qtbot, recommender) -> None:
    page = MachinePage(None, None)
    qtbot.addWidget(page)
    page.show()
    assert page.card.texts() == ["Probing hardware…"]
    assert page.status.text().startswith("Probing hardware…")
    assert recommender.requests == []

    with qtbot.waitSignal(page.recommendations_shown, timeout=10_000):
        page.set_profile(CPU_ONLY, recommender)
    assert any("none found: models run on the CPU" in t for t in page.card.texts())
    assert recommender.requests == [FitRequest(n_ctx=8192)]
    page.wait_for_workers()


def test_table_groups_by_size_class_and_marks_the_best_quant(page: MachinePage) -> None:
    assert _rows(page) == [
        SIZE_CLASS_LABELS["tiny"],
        "SmolLM2 135M · 135M | ★ Q8_0",
        "SmolLM2 135M · 135M | Q4_K_M",
        SIZE_CLASS_LABELS["small"],
        "Qwen 2.5 7B · 7.6B | ★ Q8_0",
        "Qwen 2.5 7B · 7.6B | Q4_K_M",
        SIZE_CLASS_LABELS["large"],
        "Llama 3.3 70B · 70.6B | Q4_K_M",
    ]
    assert page.table.columnSpan(0, 0) == page.table.table_model.columnCount()
    model = page.table.table_model
    best = model.index(_row_of(page, "qwen2.5-7b", "Q8_0"), 1)
    other = model.index(_row_of(page, "qwen2.5-7b", "Q4_K_M"), 1)
    assert best.data(Qt.ItemDataRole.FontRole).bold()
    assert other.data(Qt.ItemDataRole.FontRole) is None
    fit = model.index(_row_of(page, "llama3.3-70b", "Q4_K_M"), FIT_COLUMN)
    assert "Won't fit" in fit.data(Qt.ItemDataRole.ToolTipRole)
    assert model.index(best.row(), 5).data() == "123 tok/s est."
    assert model.index(best.row(), 2).data() == "8.1 GB"
    local = model.index(_row_of(page, "smollm2-135m", "Q8_0"), 2)
    assert local.data() == "143 MB ✓"  # already on this machine
    assert local.data(Qt.ItemDataRole.ToolTipRole) == (
        "On this machine: /models/smollm2-135m-Q8_0.gguf"
    )


def test_context_slider_recomputes_every_verdict_in_place(
    qtbot, page: MachinePage, recommender: FakeRecommender
) -> None:
    resets: list[bool] = []
    page.table.table_model.modelReset.connect(lambda: resets.append(True))
    assert _rec(page, "qwen2.5-7b", "Q8_0").verdict.verdict == "full_gpu"

    _move_context(qtbot, page, 131072)
    assert page.controls.context_label.text() == "128k"
    assert recommender.requests[-1] == FitRequest(n_ctx=131072)
    # 8.1 GB weights + 7 GB KV at 128k: fits, but the 70B and a second look change.
    assert _rec(page, "qwen2.5-7b", "Q8_0").verdict.context_length == 131072
    assert _rec(page, "smollm2-135m", "Q8_0").verdict.memory.kv_cache_bytes == 1280 * MIB
    assert resets == []  # same rows: updated in place, no flicker

    _move_context(qtbot, page, 512)
    assert _rec(page, "qwen2.5-7b", "Q8_0").verdict.context_length == 512


def test_kv_type_implies_flash_attention_and_recomputes(
    qtbot, page: MachinePage, recommender: FakeRecommender
) -> None:
    before = _rec(page, "qwen2.5-7b", "Q4_K_M").verdict.memory.kv_cache_bytes
    with qtbot.waitSignal(page.recommendations_shown, timeout=10_000):
        page.kv_combo.setCurrentText("q8_0")
    assert page.flash_check.isChecked() and not page.flash_check.isEnabled()
    assert recommender.requests[-1] == FitRequest(8192, "q8_0", flash_attn=True)
    after = _rec(page, "qwen2.5-7b", "Q4_K_M").verdict
    assert after.kv_cache_type == "q8_0" and after.memory.kv_cache_bytes < before

    with qtbot.waitSignal(page.recommendations_shown, timeout=10_000):
        page.kv_combo.setCurrentText("f16")
    assert page.flash_check.isEnabled()
    with qtbot.waitSignal(page.recommendations_shown, timeout=10_000):
        page.flash_check.setChecked(False)
    assert recommender.requests[-1] == FitRequest(8192, "f16", flash_attn=False)


def test_quick_moves_are_debounced_and_the_latest_request_wins(
    qtbot, page: MachinePage, recommender: FakeRecommender
) -> None:
    calls = len(recommender.requests)
    recommender.gate.clear()  # the first estimate hangs while the slider keeps moving
    page.context_slider.setValue(CONTEXT_STEPS.index(16384))
    qtbot.waitUntil(lambda: len(recommender.requests) == calls + 1, timeout=5_000)
    for n_ctx in (32768, 65536, 4096):
        page.context_slider.setValue(CONTEXT_STEPS.index(n_ctx))
    qtbot.wait(300)
    assert len(recommender.requests) == calls + 1  # one estimate at a time
    with qtbot.waitSignal(
        page.recommendations_shown, timeout=10_000, check_params_cb=lambda r: r.n_ctx == 4096
    ):
        recommender.gate.set()
    # The 16k result was stale when it came and never shown; 4k was asked once, last.
    assert [r.n_ctx for r in recommender.requests[calls:]] == [16384, 4096]
    assert page.shown_request == FitRequest(n_ctx=4096)


def test_fits_only_hides_what_will_not_fit_and_its_empty_heading(page: MachinePage) -> None:
    llama = _row_of(page, "llama3.3-70b", "Q4_K_M")
    assert not page.table.isRowHidden(llama)
    page.fits_only_check.setChecked(True)
    assert page.table.isRowHidden(llama)
    assert page.table.isRowHidden(llama - 1)  # the "large" heading has nothing left
    visible = [(r.model_id, r.quant) for r in page.table.visible_recommendations()]
    assert ("qwen2.5-7b", "Q8_0") in visible and len(visible) == 4
    page.fits_only_check.setChecked(False)
    assert not page.table.isRowHidden(llama)


def test_filter_box_matches_model_and_quant(page: MachinePage) -> None:
    page.filter_edit.setText("qwen")
    assert [r.model_id for r in page.table.visible_recommendations()] == ["qwen2.5-7b"] * 2
    page.filter_edit.setText("q4_k_m")
    assert len(page.table.visible_recommendations()) == 3
    page.filter_edit.setText("no such model")
    assert page.table.visible_recommendations() == []
    assert "Nothing matches" in page.status.text() and page.status.isVisible()


def test_download_button_and_double_click_ask_for_the_file(qtbot, page: MachinePage) -> None:
    wanted: list[Recommendation] = []
    page.download_requested.connect(wanted.append)
    assert not page.download_button.isEnabled()
    row = _row_of(page, "qwen2.5-7b", "Q4_K_M")
    page.table.selectRow(row)
    assert page.download_button.isEnabled()
    page.download_button.click()
    assert [(r.model_id, r.quant) for r in wanted] == [("qwen2.5-7b", "Q4_K_M")]
    notice = page.download_notice
    assert isinstance(notice, QMessageBox) and notice.isVisible()
    assert "org/qwen2.5-7b-GGUF" in notice.text()
    assert "qwen2.5-7b-Q4_K_M.gguf" in notice.text()
    assert "Downloads come with the Models (library) page" in notice.text()
    notice.close()

    index = page.table.table_model.index(_row_of(page, "smollm2-135m", "Q8_0"), 0)
    page.table.scrollTo(index)
    cell = page.table.visualRect(index)
    assert cell.isValid()
    # An item view only takes a double click on the index it saw pressed.
    qtbot.mouseClick(page.table.viewport(), Qt.MouseButton.LeftButton, pos=cell.center())
    qtbot.mouseDClick(page.table.viewport(), Qt.MouseButton.LeftButton, pos=cell.center())
    assert wanted[-1].model_id == "smollm2-135m"
    page.download_notice.close()


def test_check_file_shows_the_files_badge_and_reason(qtbot, page: MachinePage) -> None:
    seen: list[tuple[str, FitRequest]] = []

    def fit_fn(path: str, request: FitRequest) -> FitVerdict:
        seen.append((path, request))
        return unknown_verdict("not a GGUF file (bad magic)", request)

    page.set_profile(NVIDIA, fit_fn=fit_fn)
    assert page.check_file_button.isVisibleTo(page)
    page.check_file("/tmp/notes.txt")
    qtbot.waitUntil(lambda: page.file_badge.text() == "?", timeout=10_000)
    assert "not a GGUF file (bad magic)" in page.file_result.text()
    assert "not a GGUF file (bad magic)" in page.file_badge.toolTip()
    assert seen[-1] == ("/tmp/notes.txt", FitRequest(n_ctx=8192))


def test_file_checks_run_one_at_a_time_and_the_latest_file_wins(qtbot, page: MachinePage) -> None:
    gate = threading.Event()
    seen: list[str] = []

    def slow_fit(path: str, request: FitRequest) -> FitVerdict:
        seen.append(path)
        gate.wait(10)
        return unknown_verdict(f"checked {path}", request)

    page.set_profile(NVIDIA, fit_fn=slow_fit)
    page.check_file("/models/a.gguf")
    qtbot.waitUntil(lambda: seen == ["/models/a.gguf"], timeout=5_000)
    page.check_file("/models/b.gguf")
    page.check_file("/models/c.gguf")
    gate.set()
    qtbot.waitUntil(lambda: "checked /models/c.gguf" in page.file_result.text(), timeout=10_000)
    assert seen == ["/models/a.gguf", "/models/c.gguf"]


def test_a_failing_estimate_is_reported_not_shown_as_figures(qtbot) -> None:
    def broken(_request: FitRequest) -> list[Recommendation]:
        raise ValueError("catalog entry without layers")

    page = MachinePage(CPU_ONLY, broken)
    qtbot.addWidget(page)
    page.show()
    qtbot.waitUntil(lambda: "estimate failed" in page.status.text(), timeout=10_000)
    assert "catalog entry without layers" in page.status.text()
    assert page.table.table_model.rows == []
    page.wait_for_workers()


def test_closing_while_estimating_waits_for_the_worker(qtbot, recommender) -> None:
    recommender.gate.clear()
    page = MachinePage(NVIDIA, recommender)
    qtbot.addWidget(page)
    page.show()
    qtbot.waitUntil(lambda: len(recommender.requests) == 1, timeout=5_000)
    threading.Timer(0.3, recommender.gate.set).start()
    page.close()  # blocks until the estimate ends: no thread destroyed while running
    assert not any(job.running() for job in page._jobs)
    page.context_slider.setValue(0)
    qtbot.wait(300)
    assert len(recommender.requests) == 1  # closed: nothing new starts

    with qtbot.waitSignal(page.recommendations_shown, timeout=10_000):
        page.show()  # reopened: estimated again, at the slider's context
    assert recommender.requests[-1].n_ctx == 512
    page.wait_for_workers()


def test_view_menu_opens_the_page_and_the_probe_fills_it(
    qtbot, workbench_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ui import main_window, secondary_windows
    from ui.main import build_services

    recommender = FakeRecommender()
    monkeypatch.setattr(
        secondary_windows,
        "bind_estimators",
        lambda _profile, _local, _calibration: (recommender, lambda p, r: unknown_verdict("x")),
    )
    window = main_window.MainWindow(build_services())
    qtbot.addWidget(window)
    actions = {a.text(): a for a in window.menuBar().actions()}
    view = {a.text(): a for a in actions["&View"].menu().actions()}
    machine = view["This &Machine…"]
    assert machine.shortcut().toString() == "Ctrl+Shift+M"
    machine.trigger()
    page = window.machine_page
    assert page is not None and page.isVisible()
    assert page.card.texts() == ["Probing hardware…"]

    with qtbot.waitSignal(page.recommendations_shown, timeout=10_000):
        window._on_hardware_probed(APPLE)
    assert any("Apple M2 Pro" in t for t in page.card.texts())
    assert window.show_machine() is page
    window.close()
    assert not page.isVisible()


def test_the_real_recommendations_fill_the_table(qtbot) -> None:
    from app.recommend import recommend

    page = MachinePage(APPLE, lambda request: recommend(APPLE, request))
    qtbot.addWidget(page)
    with qtbot.waitSignal(page.recommendations_shown, timeout=30_000):
        page.show()
    rows = page.table.table_model.rows
    headings = [r for r in rows if isinstance(r, str)]
    assert headings and [SIZE_CLASS_LABELS[h] for h in headings]
    assert headings == [c for c in SIZE_CLASS_LABELS if c in headings]  # classes in order
    recs = [r for r in rows if isinstance(r, Recommendation)]
    assert any(r.best for r in recs)
    assert {r.verdict.context_length for r in recs} == {8192}
    page.wait_for_workers()
