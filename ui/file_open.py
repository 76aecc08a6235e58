"""Models opened from outside the window: a .gguf double-clicked in Finder (macOS sends the app
a FileOpen event, not an argument) or given on the command line (the Linux .desktop entry's %f)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QFileOpenEvent


def gguf_arguments(argv: Sequence[str]) -> list[Path]:
    """The existing .gguf files named on the command line, resolved."""
    return [
        Path(arg).resolve() for arg in argv if arg.lower().endswith(".gguf") and Path(arg).is_file()
    ]


class FileOpenFilter(QObject):
    """An application event filter that hands FileOpen events for .gguf files to `open_model`.

    Install it on the QApplication before the event loop starts: macOS delivers the file a
    user double-clicked (CFBundleDocumentTypes in Info.plist) as such an event at launch, and
    again for each file opened while the app runs.

    Args:
        open_model: opens one model file (the main window's `open_model_file`).
    """

    def __init__(self, open_model: Callable[[Path], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._open_model = open_model

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Open a .gguf FileOpen event's file; let every other event through."""
        if event.type() == QEvent.Type.FileOpen and isinstance(event, QFileOpenEvent):
            path = Path(event.file())
            if path.suffix.lower() == ".gguf":
                self._open_model(path)
                return True
        return super().eventFilter(watched, event)
