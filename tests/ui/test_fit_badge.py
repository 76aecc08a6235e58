"""Fit badges: text and colour per verdict (UI.md's table), hover breakdown, delegate."""

from __future__ import annotations

import dataclasses

import pytest
from PySide6.QtGui import QColor, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QTableView

from app.fit_types import GIB, MIB, FitVerdict, MemoryBreakdown, SpeedEstimate, unknown_verdict
from ui.fit_badge import VERDICT_ROLE, FitBadge, FitBadgeDelegate, badge_style, badge_tooltip

GREEN, AMBER, BLUE_GREY, RED, GREY = "#2e7d32", "#f2a900", "#546e7a", "#c62828", "#808080"


def make_verdict(
    kind: str = "full_gpu",
    *,
    tight: bool = False,
    gpu_layers: int = 81,
    n_layers: int = 80,
    basis: str = "estimated",
) -> FitVerdict:
    """A verdict with round figures: 39.5 GB weights, 2.5 GB KV at 8k, 48 GB budget."""
    memory = MemoryBreakdown(
        weights_bytes=int(39.5 * GIB),
        weights_gpu_bytes=int(39.5 * GIB),
        kv_cache_bytes=int(2.5 * GIB),
        kv_gpu_bytes=int(2.5 * GIB),
        compute_bytes=300 * MIB,
        compute_gpu_bytes=300 * MIB,
        output_bytes=0,
        overhead_bytes=500 * MIB,
        overhead_gpu_bytes=200 * MIB,
        source="formula",
    )
    return FitVerdict(
        verdict=kind,  # type: ignore[arg-type]
        gpu_layers=gpu_layers,
        n_layers=n_layers,
        context_length=8192,
        kv_cache_type="f16",
        flash_attn=False,
        memory=memory,
        budget_bytes=48 * GIB,
        headroom_bytes=int(5.2 * GIB),
        tight=tight,
        speed=SpeedEstimate(12.345, 150.0, basis, "400 GB/s ÷ 39.5 GB × 0.75"),  # type: ignore[arg-type]
        explanation="needs 42.8 GB: 39.5 weights + 2.5 KV at 8k; GPU limit 48.0 GB",
    )


@pytest.mark.parametrize(
    ("kind", "layers", "text", "background"),
    [
        ("full_gpu", 81, "Full GPU", GREEN),
        ("partial", 38, "Partial 38/81", AMBER),
        ("cpu_only", 0, "CPU only", BLUE_GREY),
        ("wont_fit", 0, "Won't fit", RED),
    ],
)
def test_each_verdict_has_its_text_and_fill(
    kind: str, layers: int, text: str, background: str
) -> None:
    shown, foreground, fill, outline = badge_style(make_verdict(kind, gpu_layers=layers))
    assert shown == text
    assert fill == QColor(background)
    assert outline == QColor(background)
    assert foreground != fill


def test_tight_fit_is_an_amber_outline_with_no_fill() -> None:
    text, foreground, fill, outline = badge_style(make_verdict("full_gpu", tight=True))
    assert text == "Full GPU · tight"
    assert fill.alpha() == 0
    assert outline == QColor("#e69500")
    assert foreground.alpha() == 255


def test_unknown_is_grey_and_its_tooltip_gives_the_reason() -> None:
    verdict = unknown_verdict("the remote header is truncated at 1.2 MB")
    text, _fg, fill, _outline = badge_style(verdict)
    assert (text, fill) == ("?", QColor(GREY))
    tooltip = badge_tooltip(verdict)
    assert "Unknown: the remote header is truncated at 1.2 MB" in tooltip


def test_tooltip_shows_the_breakdown_against_the_budget() -> None:
    tooltip = badge_tooltip(make_verdict("full_gpu"))
    for part in (
        "Weights",
        "39.5 GB",
        "KV cache at 8k (f16)",
        "2.5 GB",
        "Compute + output",
        "300 MB",
        "Overhead",
        "Budget",
        "48.0 GB",
        "Headroom",
        "5.2 GB",
        "On the GPU",
        "On the host",
        "12.3 tok/s est.",
        "needs 42.8 GB: 39.5 weights + 2.5 KV at 8k; GPU limit 48.0 GB",
        "formula",
    ):
        assert part in tooltip, part


def test_tooltip_says_measured_when_this_machine_measured_it() -> None:
    assert "12.3 tok/s measured" in badge_tooltip(make_verdict(basis="measured"))


def test_badge_widget_paints_its_pill_and_shows_the_breakdown_on_hover(qtbot) -> None:
    badge = FitBadge(make_verdict("wont_fit", gpu_layers=0))
    qtbot.addWidget(badge)
    badge.show()
    assert badge.text() == "Won't fit"
    assert "Budget" in badge.toolTip()
    size = badge.sizeHint()
    assert size.width() > badge.fontMetrics().horizontalAdvance("Won't fit")
    badge.resize(size)
    image = badge.grab().toImage()
    # Inside the pill, left of the text: the red fill.
    assert image.pixelColor(5, size.height() // 2) == QColor(RED)

    badge.set_verdict(None)
    assert badge.text() == "" and badge.toolTip() == ""


def test_delegate_paints_the_badge_in_a_table_cell(qtbot) -> None:
    model = QStandardItemModel(1, 2)
    item = QStandardItem()
    item.setData(make_verdict("full_gpu"), VERDICT_ROLE)
    model.setItem(0, 1, item)
    model.setItem(0, 0, QStandardItem("Llama 3.3 70B"))
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(model)
    delegate = FitBadgeDelegate(view)
    view.setItemDelegateForColumn(1, delegate)
    view.resize(400, 120)
    view.show()
    view.resizeColumnToContents(1)
    assert view.columnWidth(1) >= view.fontMetrics().horizontalAdvance("Full GPU") + 16

    cell = view.visualRect(model.index(0, 1))
    image = view.viewport().grab().toImage()
    colours = {
        image.pixelColor(x, y).name()
        for x in range(cell.left(), cell.right())
        for y in range(cell.top(), cell.bottom())
    }
    assert GREEN in colours


def test_tooltip_gives_the_largest_context_that_keeps_the_placement() -> None:
    verdict = dataclasses.replace(make_verdict("full_gpu"), max_context=32768)
    assert "Largest context" in badge_tooltip(verdict)
    assert "32k (32768)" in badge_tooltip(verdict)
    assert "Largest context" not in badge_tooltip(make_verdict("full_gpu"))
