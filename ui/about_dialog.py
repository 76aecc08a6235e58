"""Help ▸ About: the versions of everything the workbench runs on, and where its files are."""

from __future__ import annotations

import html
import importlib.metadata
import platform
import sqlite3
import sys
from pathlib import Path

import PySide6
from PySide6.QtCore import QUrl, Slot, qVersion
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app import __version__
from app.paths import AppPaths
from app.runtimes import llamacpp_status

_PACKAGES = (
    ("llama-cpp-python", "llama-cpp-python"),
    ("SQLAlchemy", "sqlalchemy"),
    ("Alembic", "alembic"),
    ("huggingface_hub", "huggingface_hub"),
    ("ollama (client)", "ollama"),
    ("openai (client)", "openai"),
    ("Pygments", "pygments"),
    ("psutil", "psutil"),
)


def package_version(distribution: str) -> str:
    """An installed distribution's version, or "not installed"."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def version_facts() -> list[tuple[str, str]]:
    """(name, version) of the workbench and what it runs on, without loading llama.cpp."""
    llama = llamacpp_status()
    facts = [
        ("LLM Workbench", __version__),
        ("Python", f"{platform.python_version()} ({sys.executable})"),
        ("Qt / PySide6", f"{qVersion()} / {PySide6.__version__}"),
        ("SQLite", sqlite3.sqlite_version),
        ("Operating system", f"{platform.system()} {platform.release()} ({platform.machine()})"),
    ]
    facts += [(label, package_version(dist)) for label, dist in _PACKAGES]
    facts.append(("llama.cpp", llama.detail))
    return facts


def path_facts(paths: AppPaths) -> list[tuple[str, Path]]:
    """(name, path) of every file and folder the workbench writes."""
    return [
        ("History database", paths.database),
        ("Settings", paths.settings_file),
        ("Models folder", paths.models_dir),
        ("Logs", paths.log_dir),
        ("Data folder", paths.data_dir),
    ]


def about_text(paths: AppPaths) -> str:
    """The facts as plain text (what "Copy" puts on the clipboard for a bug report)."""
    lines = [f"{name}: {value}" for name, value in version_facts()]
    lines += [f"{name}: {value}" for name, value in path_facts(paths)]
    return "\n".join(lines)


def open_folder(path: Path) -> bool:
    """Open a folder in the platform's file manager (created first if missing)."""
    path.mkdir(parents=True, exist_ok=True)
    return bool(QDesktopServices.openUrl(QUrl.fromLocalFile(str(path))))


class AboutDialog(QDialog):
    """Versions and paths, with Copy and Open Logs Folder."""

    def __init__(self, paths: AppPaths, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About LLM Workbench")
        self.setObjectName("about_dialog")
        self._paths = paths
        title = QLabel(
            f"<h2>LLM Workbench {html.escape(__version__)}</h2>"
            "<p>Run open-weight LLMs on your own machine: see what fits, download it, "
            "chat, compare.</p>",
            self,
        )
        title.setWordWrap(True)
        self.details = QTextBrowser(self)
        self.details.setObjectName("about_details")
        self.details.setOpenLinks(False)
        self.details.anchorClicked.connect(self._on_details_anchor_clicked)
        self.details.setHtml(self._details_html())
        self.details.setMinimumSize(560, 320)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.copy_button = QPushButton("Copy", self)
        self.copy_button.setToolTip("Copy versions and paths (for a bug report)")
        self.logs_button = QPushButton("Open Logs Folder", self)
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.logs_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        self.copy_button.clicked.connect(self._on_copy_button_clicked)
        self.logs_button.clicked.connect(self._on_logs_button_clicked)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(self.details, 1)
        layout.addWidget(buttons)

    def _details_html(self) -> str:
        rows = "".join(
            f"<tr><td><b>{html.escape(name)}</b></td><td>{html.escape(value)}</td></tr>"
            for name, value in version_facts()
        )
        for name, path in path_facts(self._paths):
            url = QUrl.fromLocalFile(str(path)).toString()
            rows += (
                f"<tr><td><b>{html.escape(name)}</b></td>"
                f"<td><a href='{html.escape(url)}'>{html.escape(str(path))}</a></td></tr>"
            )
        return f"<table cellspacing='4'>{rows}</table>"

    @Slot()
    def _on_copy_button_clicked(self) -> None:
        QGuiApplication.clipboard().setText(about_text(self._paths))

    @Slot()
    def _on_logs_button_clicked(self) -> None:
        open_folder(self._paths.log_dir)

    @Slot(QUrl)
    def _on_details_anchor_clicked(self, url: QUrl) -> None:
        path = Path(url.toLocalFile())
        open_folder(path if path.is_dir() else path.parent)
