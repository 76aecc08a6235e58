"""Bar chart and scatter plot: geometry, labels, legend, empty state, light and dark."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QColor, QImage, QPalette
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from ui.charts import (
    EMPTY_TEXT,
    BarChart,
    ScatterPlot,
    ScatterPoint,
    format_value,
    nice_ticks,
    series_colour,
)
from ui.theme import THEME_ENV, apply_theme


def _render(widget: BarChart | ScatterPlot) -> QImage:
    return widget.grab().toImage()


def _colours(image: QImage) -> set[str]:
    return {
        image.pixelColor(x, y).name()
        for x in range(0, image.width(), 3)
        for y in range(0, image.height(), 3)
    }


def test_nice_ticks_are_round_and_cover_the_range() -> None:
    assert nice_ticks(0, 38.2) == [0, 10, 20, 30, 40]
    assert nice_ticks(0, 1) == [0, 0.25, 0.5, 0.75, 1.0]
    ticks = nice_ticks(12.0, 97.0)
    assert ticks[0] <= 12 and ticks[-1] >= 97
    assert nice_ticks(5, 5)[0] <= 5 <= nice_ticks(5, 5)[-1]


def test_values_are_formatted_short() -> None:
    assert format_value(1234.0) == "1,234"
    assert format_value(38.25) == "38.2"
    assert format_value(2.5) == "2.5"
    assert format_value(0.123) == "0.12"
    assert format_value(40.0) == "40"


def test_bars_are_as_long_as_their_values(qtbot: QtBot) -> None:
    chart = BarChart()
    qtbot.addWidget(chart)
    chart.resize(500, 240)
    chart.set_data(["SmolLM2 Q4_1", "Gemma 3 Q4_K_M"], [("decode", [80.0, 40.0])], unit="tok/s")
    layout = chart.chart_layout()
    assert not layout.empty
    fast, slow = layout.bars
    assert fast.category == "SmolLM2 Q4_1" and slow.category == "Gemma 3 Q4_K_M"
    assert fast.rect.width() == pytest.approx(2 * slow.rect.width())
    assert fast.label == "80 tok/s" and slow.label == "40 tok/s"
    assert fast.rect.top() < slow.rect.top()  # categories top to bottom, in order
    assert [t.text for t in layout.ticks] == ["0", "20", "40", "60", "80"]
    assert layout.ticks[-1].position == pytest.approx(fast.rect.right())
    assert layout.axis_label == "tok/s"
    assert [item.text for item in layout.legend] == ["decode"]
    assert layout.plot.right() <= chart.width() and layout.plot.bottom() <= chart.height()
    last = chart._tick_box(layout.ticks[-1], layout.plot.bottom())
    assert last.right() <= chart.width()  # the last value label is not cut off


def test_grouped_series_get_their_own_colours_and_a_missing_value_no_bar(
    qtbot: QtBot,
) -> None:
    chart = BarChart()
    qtbot.addWidget(chart)
    chart.resize(400, 300)
    chart.set_data(["a", "b"], [("run 1", [3.0, None]), ("run 2", [1.5, 2.0])])
    layout = chart.chart_layout()
    assert len(layout.bars) == 4
    missing = next(bar for bar in layout.bars if bar.value is None)
    assert missing.rect.width() == 0 and missing.label == "—"
    colours = {bar.series: bar.colour.name() for bar in layout.bars}
    assert colours["run 1"] != colours["run 2"]
    a_bars = [bar for bar in layout.bars if bar.category == "a"]
    assert a_bars[0].rect.bottom() <= a_bars[1].rect.top() + 1e-6  # side by side, not stacked


def test_empty_chart_says_no_data_yet(qtbot: QtBot) -> None:
    chart = BarChart()
    qtbot.addWidget(chart)
    chart.resize(300, 150)
    assert chart.chart_layout().empty
    chart.set_data(["a"], [("x", [None])])
    assert chart.chart_layout().empty
    plot = ScatterPlot()
    qtbot.addWidget(plot)
    assert plot.chart_layout().empty
    assert EMPTY_TEXT == "No data yet"
    _render(chart)  # paints without error


def test_scatter_places_points_by_value(qtbot: QtBot) -> None:
    plot = ScatterPlot()
    qtbot.addWidget(plot)
    plot.resize(500, 320)
    points = [
        ScatterPoint("Q4_K_M", x=40.0, y=0.7, size=1.0),
        ScatterPoint("Q8_0", x=25.0, y=0.9, size=2.0),
    ]
    plot.set_points(points, "decode tok/s", "score")
    layout = plot.chart_layout()
    q4, q8 = layout.points
    assert q4.centre.x() > q8.centre.x()  # faster: further right
    assert q8.centre.y() < q4.centre.y()  # better: higher up
    assert q8.radius > q4.radius  # bigger size: bigger dot
    assert layout.x_label == "decode tok/s" and layout.y_label == "score"
    assert layout.x_ticks[0].value <= 25 and layout.x_ticks[-1].value >= 40
    assert [item.text for item in layout.legend] == ["Q4_K_M", "Q8_0"]
    for placed in layout.points:
        assert layout.plot.contains(placed.centre)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_charts_paint_readably_in_light_and_dark(
    qtbot: QtBot, qapp: QApplication, monkeypatch: pytest.MonkeyPatch, theme: str
) -> None:
    monkeypatch.setenv(THEME_ENV, theme)
    apply_theme(qapp)
    try:
        chart = BarChart()
        qtbot.addWidget(chart)
        chart.resize(400, 200)
        chart.set_data(["a", "b"], [("speed", [10.0, 20.0])], "tok/s")
        dark = theme == "dark"
        assert (chart.palette().color(QPalette.ColorRole.Window).lightness() < 128) is dark
        colours = _colours(_render(chart))
        assert series_colour(0, dark).name() in colours
        bar = QColor(series_colour(0, dark))
        window = chart.palette().color(QPalette.ColorRole.Window)
        assert abs(bar.lightness() - window.lightness()) > 40  # bars stand out of the page
        plot = ScatterPlot()
        qtbot.addWidget(plot)
        plot.resize(300, 200)
        plot.set_points([ScatterPoint("x", 1, 2)], "a", "b")
        _render(plot)
    finally:
        monkeypatch.setenv(THEME_ENV, "light")
        apply_theme(qapp)
