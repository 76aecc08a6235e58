"""About (versions, paths, Copy, Open Logs Folder) and Preferences (theme, new-chat defaults)."""

from __future__ import annotations

import importlib.metadata
import sqlite3
from pathlib import Path

import pytest
from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

from app import __version__
from app.paths import AppPaths
from app.settings import Settings
from ui import about_dialog
from ui.about_dialog import AboutDialog, about_text, version_facts
from ui.preferences_dialog import PreferencesDialog
from ui.theme import set_theme_choice


def _paths(tmp_path: Path) -> AppPaths:
    return AppPaths(
        data_dir=tmp_path / "data",
        models_dir=tmp_path / "models",
        log_dir=tmp_path / "logs",
        config_dir=tmp_path / "config",
    )


def test_version_facts_name_the_real_versions() -> None:
    facts = dict(version_facts())
    assert facts["LLM Workbench"] == __version__
    assert facts["SQLite"] == sqlite3.sqlite_version
    assert facts["llama-cpp-python"] == importlib.metadata.version("llama-cpp-python")
    assert "worker process" in facts["llama.cpp"]


def test_about_shows_paths_and_copy_puts_them_on_the_clipboard(qtbot, tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    dialog = AboutDialog(paths)
    qtbot.addWidget(dialog)
    shown = dialog.details.toPlainText()
    assert str(paths.database) in shown and str(paths.log_dir) in shown
    dialog.copy_button.click()
    copied = QGuiApplication.clipboard().text()
    assert copied == about_text(paths)
    assert f"Logs: {paths.log_dir}" in copied


def test_open_logs_folder_opens_the_log_dir(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[QUrl] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    paths = _paths(tmp_path)
    dialog = AboutDialog(paths)
    qtbot.addWidget(dialog)
    dialog.logs_button.click()
    assert [Path(u.toLocalFile()) for u in opened] == [paths.log_dir]
    assert paths.log_dir.is_dir()
    assert about_dialog.open_folder(paths.models_dir)


def test_preferences_save_theme_and_new_chat_defaults(qtbot, tmp_path: Path) -> None:
    settings = Settings(tmp_path / "settings.json")
    dialog = PreferencesDialog(settings)
    qtbot.addWidget(dialog)
    dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))
    dialog.preset.setCurrentIndex(dialog.preset.findText("Precise"))
    dialog.system_prompt.setPlainText("  Answer in French.  ")
    try:
        assert dialog.apply()
        reread = Settings.load(tmp_path / "settings.json")
        assert (reread.theme, reread.default_preset) == ("dark", "Precise")
        assert reread.default_system_prompt == "Answer in French."
        app = QApplication.instance()
        assert isinstance(app, QApplication)
        window = app.palette().color(QPalette.ColorRole.Window)
        assert window.lightness() < 100  # the dark palette is on now
    finally:
        app = QApplication.instance()
        assert isinstance(app, QApplication)
        set_theme_choice(app, "system")


def test_preferences_say_why_saving_failed(qtbot, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    settings = Settings(blocker / "settings.json")
    dialog = PreferencesDialog(settings)
    qtbot.addWidget(dialog)
    assert not dialog.apply()
    assert "Could not save the settings" in dialog.message.text()


def test_settings_reject_an_unknown_theme(tmp_path: Path) -> None:
    settings = Settings(tmp_path / "s.json", {"theme": "purple"})
    assert settings.theme == "system"
    with pytest.raises(Exception, match="Unknown theme"):
        settings.theme = "purple"
