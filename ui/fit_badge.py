"""Fit badges: the pill that says Full GPU / Partial / CPU only / Tight / Won't fit / ?."""

from __future__ import annotations

import html

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from app.fit_types import GIB, MIB, FitVerdict

VERDICT_ROLE = Qt.ItemDataRole.UserRole + 1
"""Item data role under which a table or list cell holds its `FitVerdict` for the delegate."""

# Saturated fills with a text colour chosen for contrast: readable on light and dark palettes
# alike. Tight is an outline only, so it takes the window's own background.
_FILLS: dict[str, tuple[str, str]] = {
    "full_gpu": ("#ffffff", "#2e7d32"),
    "partial": ("#2b1d00", "#f2a900"),
    "cpu_only": ("#ffffff", "#546e7a"),
    "wont_fit": ("#ffffff", "#c62828"),
    "unknown": ("#ffffff", "#808080"),
}
_TIGHT_OUTLINE = "#e69500"
_TIGHT_TEXT = "#d08400"
_PAD_X = 8
_PAD_Y = 2


def badge_style(verdict: FitVerdict) -> tuple[str, QColor, QColor, QColor]:
    """The badge of UI.md's table for a verdict.

    Args:
        verdict: the fit verdict to show.

    Returns:
        (text, foreground, background, outline); the background is transparent for a
        tight fit, which is drawn as an amber outline.
    """
    text = verdict.badge
    if verdict.tight and verdict.verdict in ("full_gpu", "partial", "cpu_only"):
        return text, QColor(_TIGHT_TEXT), QColor(0, 0, 0, 0), QColor(_TIGHT_OUTLINE)
    foreground, background = _FILLS[verdict.verdict]
    return text, QColor(foreground), QColor(background), QColor(background)


def _gb(value: int | None) -> str:
    if value is None:
        return "—"
    if abs(value) < GIB:
        return f"{value / MIB:.0f} MB"
    return f"{value / GIB:.1f} GB"


def _context(n_ctx: int) -> str:
    return f"{n_ctx // 1024}k" if n_ctx >= 1024 and n_ctx % 1024 == 0 else str(n_ctx)


def speed_text(verdict: FitVerdict) -> str:
    """Decode speed with its basis: "38.2 tok/s est.", "41.0 tok/s measured", or ""."""
    speed = verdict.speed
    if speed is None or speed.decode_tokens_per_second is None:
        return ""
    basis = "measured" if speed.basis == "measured" else "est."
    value = speed.decode_tokens_per_second
    return f"{value:.0f} tok/s {basis}" if value >= 100 else f"{value:.1f} tok/s {basis}"


def esc(text: str) -> str:
    """HTML-escape text for a rich-text label (quotes kept: they are not in attributes)."""
    return html.escape(text, quote=False)


def badge_tooltip(verdict: FitVerdict) -> str:
    """Rich-text hover for a badge: the memory breakdown against the budget, GPU vs host,
    headroom, the speed and the one-line explanation; for "?" the reason."""
    title = f"<b>{esc(verdict.badge)}</b>"
    memory = verdict.memory
    if verdict.verdict == "unknown" or memory is None:
        reason = verdict.reason or verdict.explanation or "no estimate"
        return f"{title}<br>Unknown: {esc(reason)}"
    ctx = _context(verdict.context_length)
    kv = f"KV cache at {ctx} ({esc(verdict.kv_cache_type)}"
    kv += ", flash attention)" if verdict.flash_attn else ")"
    rows = [
        ("Weights", _gb(memory.weights_bytes)),
        (kv, _gb(memory.kv_cache_bytes)),
        ("Compute + output", _gb(memory.compute_bytes + memory.output_bytes)),
        ("Overhead", _gb(memory.overhead_bytes)),
        ("<b>Total</b>", f"<b>{_gb(memory.total_bytes)}</b>"),
        ("Budget", _gb(verdict.budget_bytes)),
        ("Headroom", _gb(verdict.headroom_bytes)),
        ("On the GPU", _gb(memory.gpu_bytes)),
        ("On the host", _gb(memory.host_bytes)),
    ]
    if verdict.n_layers:
        rows.append(("GPU layers", f"{verdict.gpu_layers} of {verdict.n_layers}"))
    if verdict.max_context:
        rows.append(("Largest context", f"{_context(verdict.max_context)} ({verdict.max_context})"))
    speed = speed_text(verdict)
    if speed:
        rows.append(("Speed", esc(speed)))
    cells = "".join(
        f"<tr><td>{name}</td><td align='right'>&nbsp;&nbsp;{value}</td></tr>"
        for name, value in rows
    )
    parts = [title, f"<table>{cells}</table>", esc(verdict.explanation)]
    if verdict.reason:
        parts.append(esc(verdict.reason))
    parts.append(f"<i>Figures from the {esc(memory.source)}</i>")
    return "<br>".join(parts)


def badge_size(verdict: FitVerdict, metrics: QFontMetrics) -> QSize:
    """The size a badge of this verdict needs in a font."""
    text = badge_style(verdict)[0]
    return QSize(metrics.horizontalAdvance(text) + 2 * _PAD_X, metrics.height() + 2 * _PAD_Y)


def paint_badge(painter: QPainter, rect: QRect, verdict: FitVerdict) -> None:
    """Draw the pill for `verdict` left-aligned and vertically centred in `rect`."""
    text, foreground, background, outline = badge_style(verdict)
    size = badge_size(verdict, painter.fontMetrics())
    width = min(size.width(), rect.width())
    top = rect.top() + max(0, (rect.height() - size.height()) // 2)
    pill = QRectF(rect.left() + 0.5, top + 0.5, width - 1, size.height() - 1)
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QPen(outline, 1.2))
    painter.setBrush(background)
    radius = pill.height() / 2
    painter.drawRoundedRect(pill, radius, radius)
    painter.setPen(foreground)
    painter.drawText(pill, int(Qt.AlignmentFlag.AlignCenter), text)
    painter.restore()


class FitBadge(QLabel):
    """A rounded pill showing one verdict, with the breakdown on hover.

    Args:
        verdict: the verdict to show; None shows nothing until `set_verdict`.
    """

    def __init__(self, verdict: FitVerdict | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.verdict: FitVerdict | None = None
        self.set_verdict(verdict)

    def set_verdict(self, verdict: FitVerdict | None) -> None:
        """Show `verdict` (None clears the badge)."""
        self.verdict = verdict
        self.setText(badge_style(verdict)[0] if verdict is not None else "")
        self.setToolTip(badge_tooltip(verdict) if verdict is not None else "")
        self.updateGeometry()
        self.update()

    def sizeHint(self) -> QSize:
        """Just big enough for the pill."""
        if self.verdict is None:
            return QSize(0, 0)
        return badge_size(self.verdict, self.fontMetrics())

    def minimumSizeHint(self) -> QSize:
        """The pill never shrinks below its text."""
        return self.sizeHint()

    def paintEvent(self, _event: QPaintEvent) -> None:
        """Paint the pill instead of the plain label text."""
        if self.verdict is None:
            return
        painter = QPainter(self)
        paint_badge(painter, self.rect(), self.verdict)
        painter.end()


class FitBadgeDelegate(QStyledItemDelegate):
    """Paints the cell's `FitVerdict` (data under `VERDICT_ROLE`) as a badge."""

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        """Selection background from the style, then the pill with a small margin."""
        verdict = index.data(VERDICT_ROLE)
        if not isinstance(verdict, FitVerdict):
            super().paint(painter, option, index)
            return
        widget = option.widget
        style = widget.style() if widget is not None else QApplication.style()
        plain = QStyleOptionViewItem(option)
        self.initStyleOption(plain, index)
        plain.text = ""
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, plain, painter, widget)
        painter.save()
        painter.setFont(option.font)
        paint_badge(painter, option.rect.adjusted(4, 2, -4, -2), verdict)
        painter.restore()

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        """The pill plus the margin."""
        verdict = index.data(VERDICT_ROLE)
        if not isinstance(verdict, FitVerdict):
            return super().sizeHint(option, index)
        size = badge_size(verdict, option.fontMetrics)
        return size + QSize(8, 4)
