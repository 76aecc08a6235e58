"""Fit badges in the toolbar's model picker: the same verdicts as everywhere, with numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.fit_types import FitVerdict, MemoryBreakdown, SpeedEstimate
from app.library import LocalModel
from ui.main import build_services
from ui.main_window import MainWindow
from ui.model_picker import ModelPicker

GIB = 1 << 30


def _local(path: str, name: str) -> LocalModel:
    return LocalModel(name=name, path=Path(path), size_bytes=4_700_000_000, source="models-folder")


def _verdict(kind: str, layers: int = 0) -> FitVerdict:
    memory = MemoryBreakdown(
        weights_bytes=int(4.4 * GIB),
        weights_gpu_bytes=0,
        kv_cache_bytes=GIB // 2,
        kv_gpu_bytes=0,
        compute_bytes=GIB // 4,
        compute_gpu_bytes=0,
        output_bytes=0,
        overhead_bytes=GIB // 8,
        overhead_gpu_bytes=0,
        source="formula",
    )
    return FitVerdict(
        verdict=kind,  # type: ignore[arg-type]
        gpu_layers=layers,
        n_layers=28,
        context_length=4096,
        kv_cache_type="f16",
        flash_attn=False,
        memory=memory,
        budget_bytes=16 * GIB,
        headroom_bytes=10 * GIB,
        tight=False,
        speed=SpeedEstimate(12.5, 60.0, "estimated", "4.6 GB read per token"),
        explanation="needs 5.3 GiB: 4.4 weights + 0.50 KV at 4k; 16.0 GiB RAM available",
    )


def test_fits_add_the_badge_and_the_numbers_without_changing_names(qtbot) -> None:
    picker = ModelPicker()
    qtbot.addWidget(picker)
    picker.set_models([_local("/m/qwen.gguf", "Qwen 2.5 7B"), _local("/m/big.gguf", "Big")], "")
    picker.set_fits({"/m/qwen.gguf": _verdict("cpu_only"), "/m/big.gguf": _verdict("wont_fit")})
    assert picker.combo.itemText(0) == "Qwen 2.5 7B  ·  4.7 GB  ·  CPU only"
    assert picker.combo.itemText(1) == "Big  ·  4.7 GB  ·  Won't fit"
    tip = picker.combo.itemData(0, Qt.ItemDataRole.ToolTipRole)
    assert "CPU only: needs 5.3 GiB" in tip
    assert "~12 tok/s (estimated; 4.6 GB read per token)" in tip
    assert "tok/s" not in picker.combo.itemData(1, Qt.ItemDataRole.ToolTipRole)
    assert picker.model_name() == "Qwen 2.5 7B"
    assert picker.choices()[:2] == [("Qwen 2.5 7B", "/m/qwen.gguf"), ("Big", "/m/big.gguf")]
    assert picker.fit_of("/m/big.gguf") is not None


@pytest.mark.integration
def test_the_window_badges_the_demo_model_after_the_probe(qtbot, workbench_home: Path) -> None:
    window = MainWindow(build_services())
    qtbot.addWidget(window)
    window.show()
    try:
        window.start_hardware_probe()
        demo = window.picker.selected_path()
        qtbot.waitUntil(lambda: window.picker.fit_of(demo) is not None, timeout=60_000)
        verdict = window.picker.fit_of(demo)
        assert verdict is not None and verdict.memory is not None
        assert verdict.memory.source == "llama.cpp dry run"
        assert window.picker.combo.currentText().endswith(f"  ·  {verdict.badge}")
    finally:
        window.close()
