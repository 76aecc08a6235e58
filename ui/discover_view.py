"""Discover: the curated catalog (offline) and Hugging Face search, each file with its fit badge.

Left, the models: the curated catalog first (it needs no network), then search hits. Right,
the chosen model's GGUF files by quantization with size and the fit badge for this machine;
Download hands the choice on (`download_requested`). Hub requests and fit estimates run on
worker threads; only the latest request's answer is shown.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.fit_types import FitVerdict, Recommendation
from app.hub_search import SORTS, HubModel, HubQuantFile, HubRepoInfo
from ui.fit_badge import VERDICT_ROLE, FitBadgeDelegate, badge_tooltip
from ui.workers import CallWorker, WorkerThread, start_worker, wait_all

log = logging.getLogger(__name__)

SearchFn = Callable[[str, str], Sequence[HubModel]]
FilesFn = Callable[[str], tuple[HubRepoInfo, dict[str, FitVerdict]]]
CatalogFn = Callable[[], Sequence[Recommendation]]


@dataclass(frozen=True, slots=True)
class DownloadChoice:
    """What the user asked to download: a repository's file (all parts of a split set)."""

    repo_id: str
    quant: str
    files: tuple[str, ...]
    size_bytes: int


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.0f} MB"


class DiscoverView(QWidget):
    """Find models and pick a file by its fit badge.

    Signals:
        download_requested(object): a `DownloadChoice`.
    """

    download_requested = Signal(object)

    def __init__(
        self,
        search_fn: SearchFn,
        files_fn: FilesFn,
        catalog_fn: CatalogFn,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._search_fn, self._files_fn, self._catalog_fn = search_fn, files_fn, catalog_fn
        self._threads: list[WorkerThread] = []
        self._latest: dict[str, object] = {}
        self._catalog: dict[str, list[Recommendation]] = {}
        self.query = QLineEdit(self)
        self.query.setPlaceholderText("Search Hugging Face for GGUF models…")
        self.sort = QComboBox(self)
        self.sort.addItems(list(SORTS))
        self.search_button = QPushButton("Search", self)
        self.models = QListWidget(self)
        self.files = QTableWidget(0, 4, self)
        self.files.setHorizontalHeaderLabels(["Quant", "Size", "Fit", "File"])
        self.files.setItemDelegateForColumn(2, FitBadgeDelegate(self.files))
        self.files.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.files.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.files.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.download_button = QPushButton("Download", self)
        self.download_button.setEnabled(False)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self._layout()
        self.search_button.clicked.connect(self._on_search_button_clicked)
        self.query.returnPressed.connect(self._on_search_button_clicked)
        self.models.currentItemChanged.connect(self._on_models_current_item_changed)
        self.files.itemSelectionChanged.connect(self._on_files_item_selection_changed)
        self.files.itemDoubleClicked.connect(self._on_download_button_clicked)
        self.download_button.clicked.connect(self._on_download_button_clicked)
        self._run("catalog", self._catalog_fn, self._on_catalog_loaded)

    def _layout(self) -> None:
        bar = QHBoxLayout()
        bar.addWidget(self.query, 1)
        bar.addWidget(self.sort)
        bar.addWidget(self.search_button)
        right = QWidget(self)
        right_box = QVBoxLayout(right)
        right_box.setContentsMargins(0, 0, 0, 0)
        right_box.addWidget(self.files, 1)
        right_box.addWidget(self.download_button, 0, Qt.AlignmentFlag.AlignRight)
        split = QSplitter(self)
        split.addWidget(self.models)
        split.addWidget(right)
        split.setSizes([340, 560])
        box = QVBoxLayout(self)
        box.addLayout(bar)
        box.addWidget(split, 1)
        box.addWidget(self.status)

    # ----------------------------------------------------------------- requests

    def _run(self, kind: str, call: Callable[[], object], done: Callable[..., None]) -> None:
        """Run `call` on a worker; only the latest request of each kind is shown."""
        token = object()
        self._latest[kind] = token
        worker = CallWorker(call, (kind, token))

        def connect() -> None:
            worker.returned.connect(done)
            worker.failed.connect(self._on_worker_failed)

        self._threads = [t for t in self._threads if t.running()]
        self._threads.append(start_worker(worker, connect, self))

    def _current(self, tag: object) -> bool:
        kind, token = cast(tuple[str, object], tag)
        return self._latest.get(kind) is token

    @Slot(object, str)
    def _on_worker_failed(self, tag: object, message: str) -> None:
        if self._current(tag):
            self.status.setText(message)

    @Slot(object, object)
    def _on_catalog_loaded(self, tag: object, rows: object) -> None:
        if not self._current(tag):
            return
        for row in cast(Sequence[Recommendation], rows):
            self._catalog.setdefault(row.repo, []).append(row)
        for repo, entries in self._catalog.items():
            item = QListWidgetItem(f"★ {entries[0].model_name}  ·  curated", self.models)
            item.setData(Qt.ItemDataRole.UserRole, repo)
            item.setToolTip(repo)

    @Slot()
    def _on_search_button_clicked(self) -> None:
        text, sort = self.query.text().strip(), self.sort.currentText()
        self.status.setText(f"Searching Hugging Face for “{text}”…" if text else "Searching…")
        self._run("search", lambda: self._search_fn(text, sort), self._on_search_done)

    @Slot(object, object)
    def _on_search_done(self, tag: object, hits: object) -> None:
        if not self._current(tag):
            return
        found = cast(Sequence[HubModel], hits)
        self.status.setText(
            f"{len(found)} repositories" if found else "No GGUF repositories match."
        )
        for row in reversed(range(self.models.count())):
            item = self.models.item(row)
            if item is not None and item.data(Qt.ItemDataRole.UserRole + 1):
                self.models.takeItem(row)
        for hit in found:
            gated = "  ·  gated" if hit.gated else ""
            item = QListWidgetItem(f"{hit.repo_id}  ·  {hit.downloads:,} downloads{gated}")
            item.setData(Qt.ItemDataRole.UserRole, hit.repo_id)
            item.setData(Qt.ItemDataRole.UserRole + 1, True)
            self.models.addItem(item)

    @Slot(QListWidgetItem, QListWidgetItem)
    def _on_models_current_item_changed(
        self, current: QListWidgetItem | None, _previous: QListWidgetItem | None
    ) -> None:
        if current is None:
            return
        repo = str(current.data(Qt.ItemDataRole.UserRole))
        if repo in self._catalog and not current.data(Qt.ItemDataRole.UserRole + 1):
            self._show_catalog(repo)
            return
        self.status.setText(f"Reading {repo}…")
        self._run("files", lambda: (repo, self._files_fn(repo)), self._on_files_listed)

    def _show_catalog(self, repo: str) -> None:
        self.files.setRowCount(0)
        for entry in self._catalog[repo]:
            files = (entry.file_name,)
            self._add_row(repo, HubQuantFile(entry.quant, files, entry.file_size_bytes, (None,)),
                          entry.verdict)  # fmt: skip
        self.status.setText(f"{repo} · curated: sizes and fit computed offline")

    @Slot(object, object)
    def _on_files_listed(self, tag: object, result: object) -> None:
        if not self._current(tag):
            return
        repo, (info, verdicts) = cast(tuple[str, tuple[HubRepoInfo, dict[str, FitVerdict]]], result)
        self.files.setRowCount(0)
        for entry in info.quants:
            self._add_row(repo, entry, verdicts.get(entry.files[0]))
        count = f"{len(info.quants)} GGUF files" if info.quants else "no GGUF model files"
        self.status.setText(f"{repo} · {info.summary} · {count}")

    def _add_row(self, repo: str, entry: HubQuantFile, verdict: FitVerdict | None) -> None:
        row = self.files.rowCount()
        self.files.insertRow(row)
        quant = QTableWidgetItem(entry.quant or "?")
        quant.setData(Qt.ItemDataRole.UserRole, DownloadChoice(repo, entry.quant, entry.files,
                                                               entry.size_bytes))  # fmt: skip
        parts = f" ({len(entry.files)} parts)" if len(entry.files) > 1 else ""
        fit = QTableWidgetItem(verdict.badge if verdict is not None else "")
        if verdict is not None:
            fit.setData(VERDICT_ROLE, verdict)
            fit.setToolTip(badge_tooltip(verdict))
        for column, item in enumerate(
            (quant, QTableWidgetItem(_size(entry.size_bytes)), fit,
             QTableWidgetItem(entry.files[0] + parts))
        ):  # fmt: skip
            self.files.setItem(row, column, item)

    @Slot()
    def _on_files_item_selection_changed(self) -> None:
        self.download_button.setEnabled(self.selected_choice() is not None)

    def selected_choice(self) -> DownloadChoice | None:
        """The file selected in the table, if any."""
        rows = self.files.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.files.item(rows[0].row(), 0)
        data = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        return data if isinstance(data, DownloadChoice) else None

    @Slot()
    def _on_download_button_clicked(self) -> None:
        choice = self.selected_choice()
        if choice is not None:
            self.download_requested.emit(choice)

    def wait_for_workers(self, timeout_ms: int = 30_000) -> None:
        """Wait for Hub requests still running (at close)."""
        wait_all(self._threads, timeout_ms)
