"""Composition root: builds the services, the application object and the main window."""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QCoreApplication, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from app import __version__
from app.chat import ConversationService
from app.engine import ModelHost
from app.errors import WorkbenchError
from app.library import ModelLibrary
from app.logs import setup_logging
from app.paths import AppPaths, app_paths
from app.runtimes import registry_for
from app.settings import Settings
from app.store import open_database
from ui.file_open import FileOpenFilter, gguf_arguments
from ui.main_window import MainWindow, Services
from ui.theme import apply_theme, set_theme_choice

log = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parents[1] / "resources"


def build_services(paths: AppPaths | None = None) -> Services:
    """Open the database (migrating it), recover interrupted replies, read the settings."""
    paths = (paths or app_paths()).ensure()
    log_file = setup_logging(paths.log_dir)
    database = open_database(paths.database)
    conversations = ConversationService(database)
    recovered = conversations.recover_interrupted()
    if recovered:
        log.warning("%d reply(ies) were cut off by a crash; marked interrupted", recovered)
    # Conversations deleted in a session that ended before its Undo expired (a crash).
    purged = conversations.purge_deleted()
    if purged:
        log.info("%d deleted conversation(s) purged", purged)
    settings = Settings.load(paths.settings_file)
    extra = [Path(p) for p in settings.opened_model_files]
    folders = tuple(Path(p) for p in settings.model_folders)
    library = ModelLibrary(paths, extra_files=extra, folders=folders)
    return Services(
        paths=paths,
        conversations=conversations,
        settings=settings,
        library=library,
        host=ModelHost(),
        log_file=log_file,
        registry=registry_for(settings),
        database=database,
    )


def _install_crash_handler(log_file: Path) -> None:
    """Anything that escapes is a bug: log it and say where the log is."""

    def handle(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        text = "".join(traceback.format_exception(kind, value, tb))
        log.critical("unhandled exception\n%s", text)
        if QApplication.instance() is not None:
            box = QMessageBox(
                QMessageBox.Icon.Critical,
                "LLM Workbench hit a bug",
                f"Something went wrong inside the workbench. Your conversations "
                f"are saved. The log has the details:\n{log_file}",
            )
            box.setDetailedText(text)
            box.exec()

    sys.excepthook = handle


def create_application(argv: Sequence[str] = ()) -> QApplication:
    """The QApplication (created once) with the workbench's names, style and icon."""
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(["llm-workbench", *argv])
    QCoreApplication.setApplicationName("LLM Workbench")
    QCoreApplication.setOrganizationName("LLM Workbench")
    QCoreApplication.setApplicationVersion(__version__)
    if sys.platform != "darwin":
        app.setStyle("Fusion")
    apply_theme(app)
    icon = RESOURCES / "icon.svg"
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    else:
        log.debug("no icon at %s", icon)
    return app


def run_gui(argv: Sequence[str] = ()) -> int:
    """Open the main window and run the event loop; returns the exit code."""
    app = create_application(argv)
    try:
        services = build_services()
    except WorkbenchError as exc:
        QMessageBox.critical(None, "LLM Workbench cannot start", exc.message)
        return 1
    _install_crash_handler(services.log_file)
    if services.settings.theme != "system":
        set_theme_choice(app, services.settings.theme)
    window = MainWindow(services)
    # A .gguf double-clicked in Finder arrives as a FileOpen event (macOS).
    app.installEventFilter(FileOpenFilter(window.open_model_file, window))
    window.show()
    for path in gguf_arguments(argv):  # the Linux .desktop entry's %f
        window.open_model_file(path)
    window.start_hardware_probe()
    window.start_server_discovery()
    started = float(getattr(sys.modules.get("ui.entry"), "STARTED", time.monotonic()))
    QTimer.singleShot(
        0, lambda: log.info("window shown %.2f s after start", time.monotonic() - started)
    )
    return int(app.exec())
