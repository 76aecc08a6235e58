"""The Downloads tab: a queue with a progress bar per file (bytes, rate, ETA), pause, resume.

One download runs at a time on a worker thread (`app.downloads.download_model`, which resumes
from the partial file, retries with backoff, checks disk space and verifies the sha256). The
queue is a JSON file (`app.downloads.DownloadQueue`), so downloads interrupted by quitting or
a crash continue at the next start from the bytes already on disk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import (
    QProgressBar,
    QTableWidgetItem,
    QWidget,
)

from app.downloads import (
    DownloadedFile,
    DownloadPaused,
    DownloadProgress,
    DownloadQueue,
    QueueEntry,
    download_model,
)
from app.errors import WorkbenchError
from runtimes.base import CancelToken
from ui.table_panel import lay_out_panel, read_only_table
from ui.workers import WorkerThread, start_worker

log = logging.getLogger(__name__)
COLUMNS = ("Model file", "Progress", "Rate", "ETA", "State")


class DownloadWorker(QObject):
    """Downloads one queue entry.

    Signals:
        progressed(object): a `DownloadProgress` (at most ~10 a second).
        completed(object): the list of `DownloadedFile`.
        failed(str, bool): the message, and whether it was a pause (partial file kept).
        finished(): always last.
    """

    progressed = Signal(object)
    completed = Signal(object)
    failed = Signal(str, bool)
    finished = Signal()

    def __init__(
        self, entry: QueueEntry, cache_dir: Path, token: str | None, endpoint: str | None
    ) -> None:
        super().__init__()
        self.entry = entry
        self.cancel = CancelToken()
        self._cache_dir, self._token, self._endpoint = cache_dir, token, endpoint

    @Slot()
    def run(self) -> None:
        """Download; `completed` or `failed`, then `finished`."""
        try:
            files = download_model(
                self.entry.repo_id,
                self.entry.files,
                revision=self.entry.revision,
                cache_dir=self._cache_dir,
                token=self._token,
                progress=self.progressed.emit,
                cancel=self.cancel,
                endpoint=self._endpoint,
            )
            self.completed.emit(files)
        except DownloadPaused as exc:
            self.failed.emit(exc.message, True)
        except WorkbenchError as exc:
            self.failed.emit(exc.message, False)
        except Exception as exc:
            log.exception("download failed with a bug")
            self.failed.emit(f"{type(exc).__name__}: {exc}", False)
        finally:
            self.finished.emit()


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    return (
        f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
        if minutes >= 60
        else f"{minutes}:{secs:02d}"
    )


class DownloadsView(QWidget):
    """The queue, its progress, and the buttons to pause, resume and remove.

    Signals:
        model_downloaded(str): the path of a model that finished and verified.
    """

    model_downloaded = Signal(str)

    def __init__(
        self,
        queue: DownloadQueue,
        cache_dir: Path,
        token: Callable[[], str | None],
        on_downloaded: Callable[[Sequence[DownloadedFile]], None],
        endpoint: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.queue = queue
        self._cache_dir, self._token, self._endpoint = cache_dir, token, endpoint
        self._on_downloaded = on_downloaded
        self._running: tuple[DownloadWorker, WorkerThread] | None = None
        self._bars: dict[tuple[str, tuple[str, ...], str], QProgressBar] = {}
        self.table = read_only_table(self, COLUMNS)
        self.table.setColumnWidth(1, 260)
        self.table.setColumnWidth(2, 100)
        (self.pause_button, self.resume_button, self.remove_button), self.status = lay_out_panel(
            self, self.table, ("Pause", "Resume", "Remove")
        )
        self.pause_button.clicked.connect(self.pause)
        self.resume_button.clicked.connect(self._on_resume_button_clicked)
        self.remove_button.clicked.connect(self._on_remove_button_clicked)
        self._refresh()
        self.start_next()

    # ------------------------------------------------------------------ queue

    def enqueue(self, repo_id: str, files: Sequence[str], revision: str = "main") -> None:
        """Queue a download and start it when nothing else runs.

        Raises:
            UserFacingError: an unsafe file name or repository id (nothing queued).
        """
        self.queue.add(repo_id, files, revision)
        self._refresh()
        self.start_next()

    def start_next(self) -> None:
        """Start the oldest queued (not paused) entry, if nothing is running."""
        if self._running is not None:
            return
        entry = next((e for e in self.queue.pending() if e.state == "queued"), None)
        if entry is None:
            return
        worker = DownloadWorker(entry, self._cache_dir, self._token(), self._endpoint)

        def connect() -> None:
            worker.progressed.connect(self._on_worker_progressed)
            worker.completed.connect(self._on_worker_completed)
            worker.failed.connect(self._on_worker_failed)
            worker.finished.connect(self._on_worker_finished)

        self._running = (worker, start_worker(worker, connect, self))
        self._set_cell(entry, 4, "downloading")

    @Slot()
    def pause(self) -> None:
        """Pause the running download (the partial file stays for a resume)."""
        if self._running is not None:
            self._running[0].cancel.cancel()

    def running_entry(self) -> QueueEntry | None:
        """The entry downloading now, if any."""
        return self._running[0].entry if self._running is not None else None

    def wait_for_worker(self, timeout_ms: int = 15_000) -> bool:
        """Pause and wait for the running download to stop (at close); False on timeout."""
        if self._running is None:
            return True
        self.pause()
        return self._running[1].wait(timeout_ms)

    # ------------------------------------------------------------------ worker

    @Slot(object)
    def _on_worker_progressed(self, progress: DownloadProgress) -> None:
        entry = self.running_entry()
        if entry is None:
            return
        bar = self._bars.get(entry.key)
        if bar is not None and progress.total_bytes:
            bar.setValue(int(progress.done_bytes * 1000 / progress.total_bytes))
            bar.setFormat(
                f"{progress.done_bytes / 1e6:,.0f} / {progress.total_bytes / 1e6:,.0f} MB"
            )
        self._set_cell(entry, 2, f"{progress.bytes_per_second / 1e6:.1f} MB/s")
        self._set_cell(entry, 3, _eta(progress.eta_seconds))
        state = (
            f"{progress.state} (try {progress.attempt})" if progress.attempt > 1 else progress.state
        )
        self._set_cell(entry, 4, state)

    @Slot(object)
    def _on_worker_completed(self, files: list[DownloadedFile]) -> None:
        entry = self.running_entry()
        if entry is not None:
            self.queue.set_state(entry, "done")
        self._on_downloaded(files)
        self.status.setText(f"Downloaded and verified {files[0].filename}.")
        self.model_downloaded.emit(str(files[0].path))

    @Slot(str, bool)
    def _on_worker_failed(self, message: str, paused: bool) -> None:
        entry = self.running_entry()
        if entry is not None:
            self.queue.set_state(entry, "paused" if paused else "failed", "" if paused else message)
        self.status.setText(message)

    @Slot()
    def _on_worker_finished(self) -> None:
        self._running = None
        self._refresh()
        self.start_next()

    # ------------------------------------------------------------------ rows

    def _selected(self) -> QueueEntry | None:
        rows = self.table.selectionModel().selectedRows()
        entries = self.queue.entries
        return entries[rows[0].row()] if rows and rows[0].row() < len(entries) else None

    @Slot()
    def _on_resume_button_clicked(self) -> None:
        entry = self._selected()
        targets = (
            [entry]
            if entry is not None
            else [e for e in self.queue.entries if e.state in ("paused", "failed")]
        )
        for target in targets:
            if target.state in ("paused", "failed"):
                self.queue.set_state(target, "queued")
        self._refresh()
        self.start_next()

    @Slot()
    def _on_remove_button_clicked(self) -> None:
        entry = self._selected()
        if entry is None:
            return
        if self.running_entry() is not None and self.running_entry() == entry:
            self.status.setText("Pause the download first, then remove it.")
            return
        self.queue.remove(entry)
        self._refresh()

    def _refresh(self) -> None:
        running = self.running_entry()
        self.table.setRowCount(0)
        self._bars.clear()
        for entry in self.queue.entries:
            row = self.table.rowCount()
            self.table.insertRow(row)
            parts = f" ({len(entry.files)} parts)" if len(entry.files) > 1 else ""
            self.table.setItem(
                row, 0, QTableWidgetItem(f"{entry.repo_id} · {entry.files[0]}{parts}")
            )
            bar = QProgressBar(self.table)
            bar.setRange(0, 1000)
            bar.setValue(1000 if entry.state == "done" else 0)
            self.table.setCellWidget(row, 1, bar)
            self._bars[entry.key] = bar
            state = (
                "downloading" if running is not None and running.key == entry.key else entry.state
            )
            for column, text in ((2, ""), (3, ""), (4, state)):
                self.table.setItem(row, column, QTableWidgetItem(text))
            state_item = self.table.item(row, 4)
            if entry.error and state_item is not None:
                state_item.setToolTip(entry.error)

    def _set_cell(self, entry: QueueEntry, column: int, text: str) -> None:
        for row, queued in enumerate(self.queue.entries):
            if queued.key == entry.key:
                item = self.table.item(row, column)
                if item is not None:
                    item.setText(text)
