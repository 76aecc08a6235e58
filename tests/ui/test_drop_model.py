"""Dropping .gguf files on the main window opens them; other files are refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from ui.main import build_services
from ui.main_window import MainWindow

pytestmark = pytest.mark.integration


def _mime(*paths: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def _drop(window: MainWindow, mime: QMimeData) -> tuple[bool, bool]:
    """(drag accepted, drop accepted) as Qt's event loop would deliver them."""
    point = QPointF(window.width() / 2, window.height() / 2)
    actions = Qt.DropAction.CopyAction
    enter = QDragEnterEvent(point.toPoint(), actions, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)  # fmt: skip
    QApplication.sendEvent(window, enter)
    drop = QDropEvent(point, actions, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)  # fmt: skip
    if enter.isAccepted():
        QApplication.sendEvent(window, drop)
    return enter.isAccepted(), drop.isAccepted()


def test_a_dropped_gguf_is_opened_and_chosen(
    qtbot, workbench_home: Path, smollm2_path: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    copy = tmp_path / "dropped-smol.Q4_1.gguf"
    shutil.copy(smollm2_path, copy)
    window = MainWindow(build_services())
    qtbot.addWidget(window)
    window.show()
    assert _drop(window, _mime(copy)) == (True, True)
    assert window.picker.selected_path() == str(copy)
    assert str(copy) in window.services.settings.opened_model_files
    window.close()


def test_other_files_are_not_taken(qtbot, workbench_home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    window = MainWindow(build_services())
    qtbot.addWidget(window)
    window.show()
    before = window.picker.combo.count()
    assert _drop(window, _mime(text)) == (False, False)
    assert window.picker.combo.count() == before
    window.close()
