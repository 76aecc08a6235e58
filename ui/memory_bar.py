"""Memory bars: the machine's RAM (in use / free / GPU limit) and a load's breakdown."""

from __future__ import annotations

import html

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import (
    QApplication,
    QSizePolicy,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from app.fit_types import GIB, MIB, FitVerdict, MemoryBreakdown
from ui.fit_badge import VERDICT_ROLE

USED_COLOUR = "#5c6bc0"
LIMIT_COLOUR = "#e65100"
# Weights, KV cache, compute (+ output), overhead: distinct hues that read on light and dark.
SEGMENT_COLOURS = ("#3f7fbf", "#8e5cc2", "#d08400", "#8a8a8a")
SEGMENT_NAMES = ("weights", "KV cache", "compute", "overhead")


def gb(value: int) -> str:
    """Bytes as binary gigabytes with one decimal, the unit the whole page uses."""
    return f"{value / GIB:.1f} GB"


def size_text(value: int) -> str:
    """A download or file size: "98 MB" under 1 GB, else "4.7 GB"."""
    return f"{value / MIB:.0f} MB" if value < GIB else gb(value)


def breakdown_legend() -> str:
    """Rich text naming the breakdown bar's colours and the budget tick."""
    swatches = " ".join(
        f"<span style='color:{colour}'>■</span> {name}"
        for name, colour in zip(SEGMENT_NAMES, SEGMENT_COLOURS, strict=True)
    )
    return f"{swatches} <span style='color:{LIMIT_COLOUR}'>┃</span> budget"


def breakdown_segments(memory: MemoryBreakdown) -> tuple[int, int, int, int]:
    """Weights, KV cache, compute + output, overhead bytes (the bar's four segments)."""
    return (
        memory.weights_bytes,
        memory.kv_cache_bytes,
        memory.compute_bytes + memory.output_bytes,
        memory.overhead_bytes,
    )


def breakdown_tooltip(verdict: FitVerdict) -> str:
    """The numbers behind a breakdown bar, as rich text."""
    memory = verdict.memory
    if memory is None:
        return html.escape(verdict.reason or "no estimate")
    rows = [
        f"<tr><td><span style='color:{colour}'>■</span> {name}</td>"
        f"<td align='right'>&nbsp;&nbsp;{gb(value)}</td></tr>"
        for name, colour, value in zip(
            SEGMENT_NAMES, SEGMENT_COLOURS, breakdown_segments(memory), strict=True
        )
    ]
    rows.append(f"<tr><td><b>total</b></td><td align='right'><b>{gb(memory.total_bytes)}</b></td>")
    if verdict.budget_bytes is not None:
        rows.append(f"<tr><td>budget</td><td align='right'>{gb(verdict.budget_bytes)}</td></tr>")
    return f"<table>{''.join(rows)}</table>"


def paint_breakdown(painter: QPainter, rect: QRect, verdict: FitVerdict) -> None:
    """Draw the four segments scaled to max(total, budget), with a budget tick."""
    memory = verdict.memory
    if memory is None:
        return
    budget = verdict.budget_bytes or 0
    scale_to = max(memory.total_bytes, budget, 1)
    bar = QRectF(rect).adjusted(0.5, 0.5, -0.5, -0.5)
    painter.save()
    painter.setPen(Qt.PenStyle.NoPen)
    x = bar.left()
    for value, colour in zip(breakdown_segments(memory), SEGMENT_COLOURS, strict=True):
        width = bar.width() * value / scale_to
        painter.fillRect(QRectF(x, bar.top(), width, bar.height()), QColor(colour))
        x += width
    painter.setPen(QPen(QColor("#808080"), 1))
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawRect(bar)
    if budget:
        tick = bar.left() + bar.width() * budget / scale_to
        painter.setPen(QPen(QColor(LIMIT_COLOUR), 2))
        painter.drawLine(int(tick), rect.top() - 2, int(tick), rect.bottom() + 2)
    painter.restore()


class BreakdownDelegate(QStyledItemDelegate):
    """Paints the cell's verdict (under `VERDICT_ROLE`) as a memory breakdown bar."""

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        """Selection background from the style, then the bar."""
        verdict = index.data(VERDICT_ROLE)
        widget = option.widget
        style = widget.style() if widget is not None else QApplication.style()
        plain = QStyleOptionViewItem(option)
        self.initStyleOption(plain, index)
        plain.text = ""
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, plain, painter, widget)
        if isinstance(verdict, FitVerdict) and verdict.memory is not None:
            cell: QRect = option.rect
            height = min(12, cell.height() - 8)
            top = cell.top() + (cell.height() - height) // 2
            paint_breakdown(
                painter, QRect(cell.left() + 6, top, cell.width() - 12, height), verdict
            )

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        """A bar wants some width to be readable."""
        return QSize(140, super().sizeHint(option, index).height())


class MemoryBar(QWidget):
    """The machine's memory as one stacked bar: in use, free, and the GPU limit marker.

    Labels under the bar give the figures in GB. Call `set_memory` with fresh numbers.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.total_bytes = 0
        self.available_bytes = 0
        self.gpu_limit_bytes: int | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_memory(self, total: int, available: int, gpu_limit: int | None = None) -> None:
        """Show `total` bytes of which `available` are free, and the GPU limit if any."""
        self.total_bytes = max(0, total)
        self.available_bytes = min(max(0, available), self.total_bytes)
        self.gpu_limit_bytes = gpu_limit
        self.setToolTip(self.caption())
        self.update()

    @property
    def used_bytes(self) -> int:
        """Memory in use now."""
        return self.total_bytes - self.available_bytes

    def caption(self) -> str:
        """The figures in words: "in use 14.2 GB · free 17.8 GB of 32.0 GB · GPU limit …"."""
        if not self.total_bytes:
            return "Memory not measured yet"
        text = (
            f"in use {gb(self.used_bytes)} · free {gb(self.available_bytes)}"
            f" of {gb(self.total_bytes)}"
        )
        if self.gpu_limit_bytes:
            text += f" · GPU limit {gb(self.gpu_limit_bytes)}"
        return text

    def sizeHint(self) -> QSize:
        """A bar of 14 px and a line of text."""
        return QSize(360, 22 + self.fontMetrics().height())

    def paintEvent(self, _event: QPaintEvent) -> None:
        """Used in indigo, free in the palette's base colour, the GPU limit as an orange tick."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        bar = QRectF(1, 3, self.width() - 2, 14)
        palette = self.palette()
        painter.setPen(QPen(palette.color(QPalette.ColorRole.Mid), 1))
        painter.setBrush(palette.color(QPalette.ColorRole.Base))
        painter.drawRoundedRect(bar, 4, 4)
        if self.total_bytes:
            used = QRectF(
                bar.left(), bar.top(), bar.width() * self.used_bytes / self.total_bytes, 14
            )
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(USED_COLOUR))
            painter.drawRoundedRect(used, 4, 4)
            if self.gpu_limit_bytes:
                share = min(1.0, self.gpu_limit_bytes / self.total_bytes)
                x = bar.left() + bar.width() * share
                painter.setPen(QPen(QColor(LIMIT_COLOUR), 3))
                painter.drawLine(int(x), 0, int(x), int(bar.bottom()) + 3)
        painter.setPen(palette.color(QPalette.ColorRole.WindowText))
        text_rect = QRect(0, int(bar.bottom()) + 4, self.width(), self.fontMetrics().height())
        painter.drawText(text_rect, int(Qt.AlignmentFlag.AlignLeft), self.caption())
        painter.end()
