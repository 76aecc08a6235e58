"""Small QPainter charts (bars, scatter) in the palette's colours, light and dark alike.

No chart library: two widgets that compute their geometry in a pure `chart_layout()` (what
the tests check) and paint it. Empty data shows a quiet "No data yet".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetricsF, QPainter, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

EMPTY_TEXT = "No data yet"
_HUES = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#9c755f")
_PAD = 8.0
_SWATCH = 10.0


@dataclass(frozen=True)
class ScatterPoint:
    """One point of a scatter plot; `size` (any positive scale) sets its radius."""

    label: str
    x: float
    y: float
    size: float | None = None


def series_colour(index: int, dark: bool) -> QColor:
    """The colour of series (or point) `index`: distinct hues, lighter on a dark palette."""
    colour = QColor(_HUES[index % len(_HUES)])
    return colour.lighter(125) if dark else colour


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round axis ticks covering [low, high] (steps of 1, 2, 2.5 or 5 times a power of 10)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0, 1.0]
    if high < low:
        low, high = high, low
    if high == low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * 0.999)
    start = math.floor(low / step + 1e-9) * step
    ticks = [start]
    while ticks[-1] < high - 1e-9 * step:
        ticks.append(start + len(ticks) * step)
    return [round(t, 10) for t in ticks]


def format_value(value: float) -> str:
    """A short, readable number: 1234 → "1,234", 38.25 → "38.2", 0.123 → "0.12"."""
    size = abs(value)
    if size >= 100 or value == int(value):
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.2g}"


@dataclass(frozen=True)
class Bar:
    """One drawn bar: its category, series, value (None: no figure), rectangle and label."""

    category: str
    series: str
    value: float | None
    rect: QRectF
    label: str
    colour: QColor


@dataclass(frozen=True)
class Tick:
    """An axis tick: its value, its position along the axis (pixels) and its text."""

    value: float
    position: float
    text: str


@dataclass(frozen=True)
class LegendItem:
    """A legend entry: a colour swatch and its text."""

    text: str
    colour: QColor
    rect: QRectF


@dataclass(frozen=True)
class BarChartLayout:
    """Where everything of a horizontal bar chart goes (widget coordinates)."""

    empty: bool
    plot: QRectF = field(default_factory=QRectF)
    bars: tuple[Bar, ...] = ()
    ticks: tuple[Tick, ...] = ()
    category_labels: tuple[tuple[str, QRectF], ...] = ()
    legend: tuple[LegendItem, ...] = ()
    axis_label: str = ""


@dataclass(frozen=True)
class PlacedPoint:
    """A scatter point placed: centre, radius, colour and label."""

    point: ScatterPoint
    centre: QPointF
    radius: float
    colour: QColor


@dataclass(frozen=True)
class ScatterLayout:
    """Where everything of a scatter plot goes (widget coordinates)."""

    empty: bool
    plot: QRectF = field(default_factory=QRectF)
    points: tuple[PlacedPoint, ...] = ()
    x_ticks: tuple[Tick, ...] = ()
    y_ticks: tuple[Tick, ...] = ()
    x_label: str = ""
    y_label: str = ""
    legend: tuple[LegendItem, ...] = ()


class _Chart(QWidget):
    """What both charts share: palette colours, the empty state, a minimum size."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.empty_text = EMPTY_TEXT
        """What an empty chart says (quietly)."""

    def sizeHint(self) -> QSize:
        """Room for a few bars or points with their labels."""
        return QSize(360, 200)

    def minimumSizeHint(self) -> QSize:
        """Small, but the labels still fit."""
        return QSize(200, 120)

    def _dark(self) -> bool:
        return self.palette().color(QPalette.ColorRole.Window).lightness() < 128

    def _metrics(self) -> QFontMetricsF:
        return QFontMetricsF(self.font())

    def _quiet(self) -> QColor:
        colour = self.palette().color(QPalette.ColorRole.WindowText)
        colour.setAlphaF(0.6)
        return colour

    def _grid(self) -> QColor:
        colour = self.palette().color(QPalette.ColorRole.WindowText)
        colour.setAlphaF(0.15)
        return colour

    def _paint_empty(self, painter: QPainter) -> None:
        painter.setPen(self._quiet())
        painter.drawText(QRectF(self.rect()), Qt.AlignmentFlag.AlignCenter, self.empty_text)

    def _tick_box(self, tick: Tick, top: float) -> QRectF:
        """Where an x tick's label goes: centred under the tick, kept inside the widget."""
        metrics = self._metrics()
        width = metrics.horizontalAdvance(tick.text) + 2
        left = min(max(tick.position - width / 2, 0.0), self.width() - width)
        return QRectF(left, top, width, metrics.height())

    def _paint_legend(self, painter: QPainter, legend: tuple[LegendItem, ...]) -> None:
        text = self.palette().color(QPalette.ColorRole.WindowText)
        height = self._metrics().height()
        for item in legend:
            swatch = QRectF(
                item.rect.left(), item.rect.center().y() - _SWATCH / 2, _SWATCH, _SWATCH
            )
            painter.fillRect(swatch, item.colour)
            painter.setPen(text)
            label = QRectF(swatch.right() + 4, item.rect.top(), item.rect.width(), height)
            painter.drawText(label, Qt.AlignmentFlag.AlignVCenter, item.text)

    def _legend_row(self, texts: list[str], top: float) -> tuple[LegendItem, ...]:
        metrics, x, items = self._metrics(), _PAD, []
        for i, text in enumerate(texts):
            width = _SWATCH + 4 + metrics.horizontalAdvance(text)
            rect = QRectF(x, top, width, metrics.height())
            items.append(LegendItem(text, series_colour(i, self._dark()), rect))
            x += width + 14
        return tuple(items)


class BarChart(_Chart):
    """Horizontal grouped bars: categories down the side, one bar per series in each."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._categories: list[str] = []
        self._series: list[tuple[str, list[float | None]]] = []
        self._unit = ""

    def set_data(
        self, categories: list[str], series: list[tuple[str, list[float | None]]], unit: str = ""
    ) -> None:
        """Show `series` (name, one value per category; None for "no figure") in `unit`."""
        self._categories = list(categories)
        self._series = [(name, list(values)) for name, values in series]
        self._unit = unit
        self.update()

    def chart_layout(self) -> BarChartLayout:
        """The geometry for the current size and data (pure: no painting)."""
        values = [v for _, vs in self._series for v in vs if v is not None and math.isfinite(v)]
        if not self._categories or not self._series or not values:
            return BarChartLayout(empty=True)
        metrics = self._metrics()
        line = metrics.height()
        legend = self._legend_row([name for name, _ in self._series], _PAD)
        label_width = min(max(metrics.horizontalAdvance(c) for c in self._categories),
                          self.width() * 0.35)  # fmt: skip
        plot = QRectF(
            _PAD + label_width + _PAD,
            _PAD + line + _PAD,
            max(self.width() - label_width - 3 * _PAD, 10.0),
            max(self.height() - 2 * line - 3 * _PAD - _PAD, 10.0),
        )
        ticks = nice_ticks(0.0, max(*values, 0.0) or 1.0)
        top_value = ticks[-1] or 1.0

        def x_of(value: float) -> float:
            return plot.left() + plot.width() * max(value, 0.0) / top_value

        band = plot.height() / len(self._categories)
        bar_height = band * 0.72 / len(self._series)
        bars, labels = [], []
        for c, category in enumerate(self._categories):
            band_top = plot.top() + c * band
            labels.append((category, QRectF(_PAD, band_top, label_width, band)))
            first = band_top + band * 0.14
            for s, (name, series_values) in enumerate(self._series):
                value = series_values[c] if c < len(series_values) else None
                top = first + s * bar_height
                width = 0.0 if value is None else x_of(value) - plot.left()
                text = "—" if value is None else _with_unit(format_value(value), self._unit)
                rect = QRectF(plot.left(), top, width, bar_height)
                bars.append(Bar(category, name, value, rect, text, legend[s].colour))
        axis = tuple(Tick(t, x_of(t), format_value(t)) for t in ticks)
        return BarChartLayout(False, plot, tuple(bars), axis, tuple(labels), legend, self._unit)

    def paintEvent(self, event: object) -> None:
        """Draw the layout."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        layout = self.chart_layout()
        if layout.empty:
            self._paint_empty(painter)
            return
        text = self.palette().color(QPalette.ColorRole.WindowText)
        metrics, plot = self._metrics(), layout.plot
        for tick in layout.ticks:
            painter.setPen(QPen(self._grid(), 1))
            painter.drawLine(
                QPointF(tick.position, plot.top()), QPointF(tick.position, plot.bottom())
            )
            painter.setPen(self._quiet())
            painter.drawText(self._tick_box(tick, plot.bottom() + 2), 0, tick.text)
        if layout.axis_label:
            box = QRectF(plot.left(), plot.bottom() + metrics.height() + 2, plot.width(),
                         metrics.height())  # fmt: skip
            painter.drawText(box, Qt.AlignmentFlag.AlignHCenter, layout.axis_label)
        painter.setPen(text)
        for category, rect in layout.category_labels:
            elided = metrics.elidedText(category, Qt.TextElideMode.ElideMiddle, rect.width())
            painter.drawText(rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                             elided)  # fmt: skip
        for bar in layout.bars:
            painter.fillRect(bar.rect, bar.colour)
            painter.setPen(text)
            room = plot.right() - bar.rect.right()
            width = metrics.horizontalAdvance(bar.label) + 4
            if room >= width:
                box = QRectF(bar.rect.right() + 4, bar.rect.top(), width, bar.rect.height())
            else:  # no room after the bar: write inside its end
                box = QRectF(bar.rect.right() - width, bar.rect.top(), width, bar.rect.height())
                painter.setPen(self.palette().color(QPalette.ColorRole.Base))
            painter.drawText(box, Qt.AlignmentFlag.AlignVCenter, bar.label)
        self._paint_legend(painter, layout.legend)


class ScatterPlot(_Chart):
    """Labelled points on two value axes (e.g. score against decode speed)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._points: list[ScatterPoint] = []
        self._x_label = ""
        self._y_label = ""

    def set_points(self, points: list[ScatterPoint], x_label: str, y_label: str) -> None:
        """Show `points`, with the axes' titles."""
        self._points = [p for p in points if math.isfinite(p.x) and math.isfinite(p.y)]
        self._x_label, self._y_label = x_label, y_label
        self.update()

    def chart_layout(self) -> ScatterLayout:
        """The geometry for the current size and points (pure: no painting)."""
        if not self._points:
            return ScatterLayout(empty=True)
        metrics = self._metrics()
        line = metrics.height()
        legend = self._legend_row([p.label for p in self._points], _PAD)
        xs = nice_ticks(min(p.x for p in self._points), max(p.x for p in self._points))
        ys = nice_ticks(min(p.y for p in self._points), max(p.y for p in self._points))
        y_text_width = max(metrics.horizontalAdvance(format_value(v)) for v in ys)
        left = _PAD + line + _PAD + y_text_width + 4
        plot = QRectF(left, _PAD + line + _PAD + 6, max(self.width() - left - 2 * _PAD, 10.0),
                      max(self.height() - 3 * line - 4 * _PAD - 6, 10.0))  # fmt: skip

        def x_of(value: float) -> float:
            return plot.left() + plot.width() * (value - xs[0]) / ((xs[-1] - xs[0]) or 1.0)

        def y_of(value: float) -> float:
            return plot.bottom() - plot.height() * (value - ys[0]) / ((ys[-1] - ys[0]) or 1.0)

        sizes = [p.size for p in self._points if p.size is not None and p.size > 0]
        biggest = max(sizes) if sizes else 1.0
        placed = []
        for i, point in enumerate(self._points):
            radius = 5.0
            if point.size is not None and point.size > 0:
                radius = 4.0 + 10.0 * math.sqrt(point.size / biggest)
            centre = QPointF(x_of(point.x), y_of(point.y))
            placed.append(PlacedPoint(point, centre, radius, legend[i].colour))
        return ScatterLayout(
            False,
            plot,
            tuple(placed),
            tuple(Tick(v, x_of(v), format_value(v)) for v in xs),
            tuple(Tick(v, y_of(v), format_value(v)) for v in ys),
            self._x_label,
            self._y_label,
            legend,
        )

    def paintEvent(self, event: object) -> None:
        """Draw the layout."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        layout = self.chart_layout()
        if layout.empty:
            self._paint_empty(painter)
            return
        metrics, plot = self._metrics(), layout.plot
        self._paint_axes(painter, layout)
        text = self.palette().color(QPalette.ColorRole.WindowText)
        for placed in layout.points:
            fill = QColor(placed.colour)
            fill.setAlphaF(0.8)
            painter.setPen(QPen(placed.colour.darker(130), 1))
            painter.setBrush(fill)
            painter.drawEllipse(placed.centre, placed.radius, placed.radius)
            painter.setPen(text)
            width = metrics.horizontalAdvance(placed.point.label)
            x = placed.centre.x() + placed.radius + 3
            if x + width > plot.right():  # keep the label inside: put it on the left
                x = placed.centre.x() - placed.radius - 3 - width
            painter.drawText(QPointF(x, placed.centre.y() + metrics.ascent() / 2 - 1),
                             placed.point.label)  # fmt: skip
        self._paint_legend(painter, layout.legend)

    def _paint_axes(self, painter: QPainter, layout: ScatterLayout) -> None:
        plot, line = layout.plot, self._metrics().height()
        for tick in layout.x_ticks:
            painter.setPen(QPen(self._grid(), 1))
            painter.drawLine(
                QPointF(tick.position, plot.top()), QPointF(tick.position, plot.bottom())
            )
            painter.setPen(self._quiet())
            painter.drawText(self._tick_box(tick, plot.bottom() + 2), 0, tick.text)
        for tick in layout.y_ticks:
            painter.setPen(QPen(self._grid(), 1))
            painter.drawLine(
                QPointF(plot.left(), tick.position), QPointF(plot.right(), tick.position)
            )
            painter.setPen(self._quiet())
            box = QRectF(0, tick.position - line / 2, plot.left() - 4, line)
            painter.drawText(box, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                             tick.text)  # fmt: skip
        painter.setPen(self.palette().color(QPalette.ColorRole.WindowText))
        x_box = QRectF(plot.left(), plot.bottom() + line + 4, plot.width(), line)
        painter.drawText(x_box, Qt.AlignmentFlag.AlignHCenter, layout.x_label)
        painter.save()
        painter.translate(_PAD, plot.center().y())
        painter.rotate(-90)
        painter.drawText(QRectF(-plot.height() / 2, 0, plot.height(), line),
                         Qt.AlignmentFlag.AlignHCenter, layout.y_label)  # fmt: skip
        painter.restore()


def _with_unit(text: str, unit: str) -> str:
    return f"{text} {unit}" if unit else text
