"""The Models window: Library (what is here), Discover (find and pick by fit), Downloads."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QInputDialog,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.downloads import DownloadedFile, DownloadQueue
from app.errors import WorkbenchError
from app.fit_types import FitRequest, FitVerdict, Recommendation
from app.hardware import HardwareProfile
from app.hf_cache import default_cache_dir, hf_token
from app.hub_search import HubModel, HubRepoInfo, fit_quants, repo_files, search_hub
from app.library import LocalModel, ModelLibrary, mark_owned
from app.paths import AppPaths
from app.recommend import recommend
from app.secrets import store_hf_token
from app.settings import Settings
from ui.discover_view import DiscoverView, DownloadChoice
from ui.downloads_view import DownloadsView
from ui.library_view import LibraryView, delete_and_describe
from ui.workers import FitWorker, WorkerThread, start_worker, wait_all

log = logging.getLogger(__name__)
FIT_CONTEXT = 8192


class ModelsWindow(QWidget):
    """Library, Discover and Downloads in one window.

    Signals:
        models_changed(): the local models changed (a download finished, a delete, a
            folder was added): the main window refreshes its picker.
    """

    models_changed = Signal()

    def __init__(
        self,
        paths: AppPaths,
        library: ModelLibrary,
        settings: Settings,
        profile: Callable[[], HardwareProfile | None],
        *,
        cache_dir: Path | None = None,
        endpoint: str | None = None,
        last_used: Callable[[], dict[str, datetime]] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models — LLM Workbench")
        self._paths, self._library, self._settings = paths, library, settings
        self._profile = profile
        self._endpoint = endpoint
        self._last_used = last_used or dict
        self._fit_threads: list[WorkerThread] = []
        self.library_view = LibraryView(parent=self)
        self.discover_view = DiscoverView(self._search, self._files, self._catalog, self)
        self.downloads_view = DownloadsView(
            DownloadQueue(paths.data_dir / "downloads.json"),
            cache_dir or default_cache_dir(),
            hf_token,
            self._mark_downloaded,
            endpoint,
            self,
        )
        self.tabs = QTabWidget(self)
        self.tabs.addTab(self.library_view, "Library")
        self.tabs.addTab(self.discover_view, "Discover")
        self.tabs.addTab(self.downloads_view, "Downloads")
        self.token_button = QPushButton("Hugging Face Token…", self)
        self.token_button.setToolTip(
            "Gated models (Llama, Gemma, …) need a token of an account that accepted the "
            "model's license; it is kept in the system keyring."
        )
        self.token_button.clicked.connect(self._on_token_button_clicked)
        box = QVBoxLayout(self)
        box.addWidget(self.tabs)
        box.addWidget(self.token_button, 0, Qt.AlignmentFlag.AlignRight)
        self.library_view.rescan_requested.connect(self.rescan)
        self.library_view.folder_added.connect(self._on_library_view_folder_added)
        self.library_view.delete_requested.connect(self._on_library_view_delete_requested)
        self.discover_view.download_requested.connect(self._on_discover_view_download_requested)
        self.downloads_view.model_downloaded.connect(self._on_downloads_view_model_downloaded)
        self.rescan()

    # -------------------------------------------------------------- estimators

    def _request(self) -> FitRequest:
        return FitRequest(n_ctx=FIT_CONTEXT)

    def _search(self, text: str, sort: str) -> Sequence[HubModel]:
        return search_hub(text, sort=sort, token=hf_token(), endpoint=self._endpoint)

    def _files(self, repo: str) -> tuple[HubRepoInfo, dict[str, FitVerdict]]:
        token = hf_token()
        info = repo_files(repo, token=token, endpoint=self._endpoint)
        verdicts = fit_quants(
            info, self._profile(), self._request(), token=token, endpoint=self._endpoint
        )
        return info, verdicts

    def _catalog(self) -> Sequence[Recommendation]:
        return recommend(self._profile(), self._request())

    # -------------------------------------------------------------- library

    @Slot()
    def rescan(self) -> None:
        """Read the local models again and judge them for this machine."""
        models = self._library.scan()
        try:
            used = self._last_used()
        except WorkbenchError as exc:  # a locked history database: the dates wait
            log.warning("last-use times not read: %s", exc)
            used = {}
        self.library_view.set_models(models, used)
        profile = self._profile()
        if profile is None:
            return
        worker = FitWorker([str(m.path) for m in models if m.usable], profile, FIT_CONTEXT)

        def connect() -> None:
            worker.fitted.connect(self.library_view.set_fits)

        self._fit_threads = [t for t in self._fit_threads if t.running()]
        self._fit_threads.append(start_worker(worker, connect, self))

    @Slot(str)
    def _on_library_view_folder_added(self, folder: str) -> None:
        if folder not in self._settings.model_folders:
            self._settings.model_folders.append(folder)
            try:
                self._settings.save()
            except WorkbenchError as exc:
                self.library_view.show_result(exc.message)
        self._library.add_folder(Path(folder))
        self.rescan()
        self.models_changed.emit()

    @Slot(object)
    def _on_library_view_delete_requested(self, model: LocalModel) -> None:
        result = delete_and_describe(self._library.delete, model)
        self.rescan()
        self.library_view.show_result(result)
        self.models_changed.emit()

    # -------------------------------------------------------------- downloads

    @Slot(object)
    def _on_discover_view_download_requested(self, choice: DownloadChoice) -> None:
        try:
            self.downloads_view.enqueue(choice.repo_id, choice.files)
        except WorkbenchError as exc:
            self.discover_view.status.setText(exc.message)
            return
        self.tabs.setCurrentWidget(self.downloads_view)

    def _mark_downloaded(self, files: Sequence[DownloadedFile]) -> None:
        for downloaded in files:
            mark_owned(self._paths, downloaded.path)

    @Slot(str)
    def _on_downloads_view_model_downloaded(self, _path: str) -> None:
        self.rescan()
        self.models_changed.emit()

    @Slot()
    def _on_token_button_clicked(self) -> None:
        token, accepted = QInputDialog.getText(
            self,
            "Hugging Face token",
            "A read token from huggingface.co/settings/tokens (empty removes it):",
            QLineEdit.EchoMode.Password,
        )
        if not accepted:
            return
        try:
            store_hf_token(token.strip())
        except WorkbenchError as exc:
            QMessageBox.warning(self, "Token not stored", exc.message)
            return
        self.discover_view.status.setText("Token stored." if token.strip() else "Token removed.")

    def wait_for_workers(self) -> None:
        """Stop and wait for background work (at close)."""
        if not self.downloads_view.wait_for_worker():
            log.error("the download did not stop in time")
        self.discover_view.wait_for_workers()
        wait_all(self._fit_threads, 30_000)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing the window keeps downloads going (they run on); quitting the app stops
        them (`wait_for_workers`)."""
        super().closeEvent(event)
