"""Replies whose last write failed (database locked, disk full), kept until they are saved."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Slot

from app.chat import ReplyRecorder
from app.errors import DatabaseUnavailable
from ui.banner import Banner

RETRY_SAVE_MS = 3000


class UnsavedReplies(QObject):
    """Holds replies that could not be written and writes them again every few seconds.

    Args:
        banner: where the reason is shown (and cleared once everything is saved).
    """

    def __init__(self, banner: Banner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._banner = banner
        self._recorders: list[ReplyRecorder] = []
        self.timer = QTimer(self)
        self.timer.setInterval(RETRY_SAVE_MS)
        self.timer.timeout.connect(self._on_timer_timeout)

    def __len__(self) -> int:
        return len(self._recorders)

    def keep(self, recorder: ReplyRecorder, error: DatabaseUnavailable) -> None:
        """Keep `recorder` in memory, say why, and retry on the timer."""
        self._recorders.append(recorder)
        self._banner.show_message(
            f"{error.message} The reply is kept in memory and will be saved as soon as "
            "the database can be written.",
            warning=True,
        )
        self.timer.start()

    @Slot()
    def _on_timer_timeout(self) -> None:
        self.save()

    def save(self) -> bool:
        """Try to write every kept reply; True when none is left."""
        still: list[ReplyRecorder] = []
        for recorder in self._recorders:
            try:
                recorder.retry()
            except DatabaseUnavailable:
                still.append(recorder)
        self._recorders = still
        if not still:
            self.timer.stop()
            self._banner.clear()
        return not still
