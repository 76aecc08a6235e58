"""The status bar's live resource strip: memory in use, the models' own share, a sparkline.

Samples once a second while the strip is visible (`app.resources.sample_resources`: psutil and
NVML, a millisecond or two) and stops when hidden, so a minimized window costs nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from PySide6.QtCore import QPointF, QSize, QTimer, Slot
from PySide6.QtGui import QHideEvent, QPainter, QPaintEvent, QPen, QShowEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from app.resources import ResourceSample, sample_resources, strip_text

INTERVAL_MS = 1000
HISTORY = 60


class Sparkline(QWidget):
    """A small line of the last fractions (0..1) of memory in use."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.values: deque[float] = deque(maxlen=HISTORY)
        self.setFixedSize(QSize(90, 18))

    def add(self, fraction: float) -> None:
        """Append one reading and repaint."""
        self.values.append(min(1.0, max(0.0, fraction)))
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        """Draw the line, newest at the right edge."""
        if len(self.values) < 2:
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(self.palette().highlight().color(), 1.5))
        width, height = self.width() - 2, self.height() - 2
        step = width / (HISTORY - 1)
        start = width - step * (len(self.values) - 1)
        points = [
            QPointF(1 + start + i * step, 1 + height * (1 - value))
            for i, value in enumerate(self.values)
        ]
        painter.drawPolyline(points)
        painter.end()


class ResourceStrip(QWidget):
    """Memory in use now, with a sparkline of the last minute."""

    def __init__(
        self,
        model_pids: Callable[[], Iterable[int]] = tuple,
        sampler: Callable[[Iterable[int]], ResourceSample] = sample_resources,
        apple: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._model_pids, self._sampler, self.apple = model_pids, sampler, apple
        self.label = QLabel("", self)
        self.sparkline = Sparkline(self)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.sparkline)
        self.timer = QTimer(self)
        self.timer.setInterval(INTERVAL_MS)
        self.timer.timeout.connect(self._on_timer_timeout)
        self.last: ResourceSample | None = None

    @Slot()
    def _on_timer_timeout(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Take one sample and show it."""
        sample = self._sampler(self._model_pids())
        self.last = sample
        self.label.setText(strip_text(sample, self.apple))
        if sample.ram_total_bytes:
            self.sparkline.add(sample.ram_used_bytes / sample.ram_total_bytes)
        self.label.setToolTip(
            "Memory in use on this machine; “models” is what the loaded models' worker "
            "processes hold. Updated every second while the window is visible."
        )

    def showEvent(self, event: QShowEvent) -> None:
        """Start sampling."""
        super().showEvent(event)
        self.refresh()
        self.timer.start()

    def hideEvent(self, event: QHideEvent) -> None:
        """Stop sampling while not visible."""
        self.timer.stop()
        super().hideEvent(event)
