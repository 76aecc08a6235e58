"""A .gguf opened from outside: Finder's FileOpen event (macOS) and command-line arguments."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent, QObject
from PySide6.QtGui import QFileOpenEvent
from PySide6.QtWidgets import QApplication

from ui.file_open import FileOpenFilter, gguf_arguments


def test_a_file_open_event_for_a_gguf_opens_it(qtbot, tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    opened: list[Path] = []
    holder = QObject()
    file_filter = FileOpenFilter(opened.append, holder)
    app = QApplication.instance()
    assert app is not None
    app.installEventFilter(file_filter)
    try:
        QCoreApplication.sendEvent(app, QFileOpenEvent(str(model)))
        QCoreApplication.sendEvent(app, QFileOpenEvent(str(tmp_path / "notes.txt")))
        QCoreApplication.sendEvent(app, QEvent(QEvent.Type.User))
    finally:
        app.removeEventFilter(file_filter)
    assert opened == [model]


def test_only_existing_gguf_arguments_are_models(tmp_path: Path) -> None:
    model = tmp_path / "a.GGUF"
    model.write_bytes(b"GGUF")
    assert gguf_arguments([str(model), str(tmp_path / "missing.gguf"), "--flag", "x.txt"]) == [
        model.resolve()
    ]
