"""The Ollama panel of the Runtimes page: server models, loaded models, pull, unload, delete."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.errors import WorkbenchError
from runtimes.base import CancelToken, RemoteModel
from runtimes.ollama import OllamaRuntime, PullProgress, RunningModel
from ui.workers import WorkerThread, start_worker, wait_all

log = logging.getLogger(__name__)

OllamaTask = Callable[[OllamaRuntime, Callable[[object], None], CancelToken], object]
_MODEL_COLUMNS = ["Name", "Family", "Parameters", "Quantization", "Size", ""]
_LOADED_COLUMNS = ["Name", "Size", "Where", "Expires", ""]


def human_size(n_bytes: int) -> str:
    """`n_bytes` for people: "91.7 MB", "4.9 GB" (decimal units, as Ollama shows them)."""
    size = float(n_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # pragma: no cover - the loop always returns


def expires_text(expires_at: datetime | None, now: datetime | None = None) -> str:
    """When a loaded model leaves memory: "in 4 min", "never" (kept forever), "—" (unknown)."""
    if expires_at is None:
        return "—"
    now = now or datetime.now(UTC)
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    seconds = (expires_at - now).total_seconds()
    if seconds > 365 * 24 * 3600:
        return "never"
    if seconds < 60:
        return "in under a minute"
    return f"in {round(seconds / 60)} min"


class OllamaWorker(QObject):
    """Runs one request against the Ollama server off the GUI thread.

    The task gets a fresh `OllamaRuntime` (short timeouts), a `report` callable for progress
    and the worker's cancel token; the runtime is closed afterwards.

    Signals:
        progressed(object): what the task reported (e.g. a `PullProgress`).
        succeeded(object): the task's result.
        failed(str): one sentence on what went wrong.
        finished(): always last.
    """

    progressed = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str)
    finished = Signal()

    def __init__(self, make_runtime: Callable[[], OllamaRuntime], task: OllamaTask) -> None:
        super().__init__()
        self._make_runtime = make_runtime
        self._task = task
        self.cancel = CancelToken()

    @Slot()
    def run(self) -> None:
        """Run the task; emits `succeeded` or `failed`, then `finished`."""
        try:
            runtime = self._make_runtime()
            try:
                result = self._task(runtime, self.progressed.emit, self.cancel)
            finally:
                runtime.close()
        except WorkbenchError as exc:
            self.failed.emit(exc.message)
        except Exception as exc:
            log.exception("unexpected error talking to Ollama")
            self.failed.emit(f"Unexpected error ({type(exc).__name__}: {exc}); see the log.")
        else:
            self.succeeded.emit(result)
        finally:
            self.finished.emit()


def _list(
    runtime: OllamaRuntime, _report: Callable[[object], None], _cancel: CancelToken
) -> object:
    return runtime.list_models(), runtime.running()


class OllamaPanel(QWidget):
    """The server's models and loaded models, with Unload, Delete and Pull.

    Args:
        make_runtime: builds an `OllamaRuntime` for the current server (called on workers).

    Signals:
        refreshed(): the tables show the server's current models.
        failed(str): a request failed; the sentence is shown on the panel too.
        pull_progressed(object): a `PullProgress` of the running pull.
        pull_finished(str): the model name, pulled completely.
    """

    refreshed = Signal()
    failed = Signal(str)
    pull_progressed = Signal(object)
    pull_finished = Signal(str)

    def __init__(
        self, make_runtime: Callable[[], OllamaRuntime], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.make_runtime = make_runtime
        self.message = QLabel("", self)
        self.message.setWordWrap(True)
        self.models_table = _table(_MODEL_COLUMNS, self)
        self.loaded_table = _table(_LOADED_COLUMNS, self)
        self.pull_name = QLineEdit(self)
        self.pull_name.setPlaceholderText("model to pull, e.g. llama3.2:3b")
        self.pull_button = QPushButton("Pull", self)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setEnabled(False)
        self.pull_bar = QProgressBar(self)
        self.pull_bar.setRange(0, 1)
        self.pull_bar.setValue(0)
        self.pull_status = QLabel("", self)
        self.pull_button.clicked.connect(self._on_pull_button_clicked)
        self.pull_name.returnPressed.connect(self._on_pull_button_clicked)
        self.cancel_button.clicked.connect(self._on_cancel_button_clicked)
        pull_row = QHBoxLayout()
        pull_row.addWidget(self.pull_name, 1)
        pull_row.addWidget(self.pull_button)
        pull_row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.message)
        layout.addWidget(QLabel("<b>Models on the server</b>", self))
        layout.addWidget(self.models_table)
        layout.addWidget(QLabel("<b>Loaded now</b>", self))
        layout.addWidget(self.loaded_table)
        layout.addLayout(pull_row)
        layout.addWidget(self.pull_bar)
        layout.addWidget(self.pull_status)
        self._tasks: list[WorkerThread] = []
        self._pull: OllamaWorker | None = None

    # ---------------------------------------------------------------- public

    def set_unavailable(self, detail: str) -> None:
        """Ollama is not there: say so, with what to do, and leave the tables empty."""
        self.models_table.setRowCount(0)
        self.loaded_table.setRowCount(0)
        self.message.setText(f"Ollama is not available. {detail}")
        self.pull_button.setEnabled(False)

    def refresh(self) -> None:
        """Ask the server for its models and what is loaded."""
        self.pull_button.setEnabled(self._pull is None)
        self._start(_list, self._on_list_succeeded)

    def unload(self, name: str) -> None:
        """Make the server free `name`'s memory, then refresh."""
        self._start(lambda rt, _r, _c: rt.unload(name), self._on_action_succeeded)

    def delete(self, name: str, confirm: bool = True) -> None:
        """Delete `name` from the server's disk (after asking, unless `confirm` is False)."""
        if confirm:
            answer = QMessageBox.question(
                self,
                "Delete model",
                f"Delete {name} from the Ollama server's disk? Pulling it again downloads it.",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        self._start(lambda rt, _r, _c: rt.delete(name), self._on_action_succeeded)

    def pull(self, name: str) -> None:
        """Pull `name` into the server, with progress; Cancel stops it."""
        name = name.strip()
        if not name or self._pull is not None:
            return
        self.pull_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.pull_bar.setRange(0, 0)
        self.pull_status.setText(f"Pulling {name}…")

        def task(rt: OllamaRuntime, report: Callable[[object], None], cancel: CancelToken) -> str:
            rt.pull(name, report, cancel)
            return name if not cancel.cancelled else ""

        self._pull = self._start(
            task, self._on_pull_succeeded, self._on_pull_progressed, self._on_pull_failed
        )

    def cancel_pull(self) -> None:
        """Stop the running pull (the server keeps partial layers to resume)."""
        if self._pull is not None:
            self._pull.cancel.cancel()

    def wait_for_tasks(self, msecs: int = 10_000) -> None:
        """Cancel a pull and block until running requests end (window close, tests)."""
        self.cancel_pull()
        wait_all(self._tasks, msecs)

    # --------------------------------------------------------------- workers

    def _start(
        self,
        task: OllamaTask,
        on_succeeded: Callable[[object], None],
        on_progressed: Callable[[object], None] | None = None,
        on_failed: Callable[[str], None] | None = None,
    ) -> OllamaWorker:
        worker = OllamaWorker(self.make_runtime, task)

        def connect() -> None:
            worker.succeeded.connect(on_succeeded)
            worker.failed.connect(on_failed or self._on_worker_failed)
            if on_progressed is not None:
                worker.progressed.connect(on_progressed)

        self._tasks = [t for t in self._tasks if t.running()]
        self._tasks.append(start_worker(worker, connect, self))
        return worker

    @Slot(object)
    def _on_list_succeeded(self, result: object) -> None:
        models, running = cast(tuple[list[RemoteModel], list[RunningModel]], result)
        self.message.setText("")
        self._fill_models(models)
        self._fill_loaded(running)
        self.refreshed.emit()

    @Slot(object)
    def _on_action_succeeded(self, _result: object) -> None:
        self.refresh()

    @Slot(object)
    def _on_pull_progressed(self, progress: object) -> None:
        if not isinstance(progress, PullProgress):
            return
        if progress.total > 0:
            self.pull_bar.setRange(0, 1000)
            self.pull_bar.setValue(round(progress.fraction * 1000))
            self.pull_status.setText(
                f"{progress.status} · {human_size(progress.completed)} of "
                f"{human_size(progress.total)}"
            )
        else:
            self.pull_status.setText(progress.status)
        if progress.status == "success":
            self.pull_bar.setRange(0, 1000)
            self.pull_bar.setValue(1000)
        self.pull_progressed.emit(progress)

    @Slot(object)
    def _on_pull_succeeded(self, name: object) -> None:
        self._end_pull()
        if name:
            self.pull_status.setText(f"Pulled {name}.")
            self.pull_finished.emit(str(name))
        else:
            self.pull_bar.setRange(0, 1)
            self.pull_bar.setValue(0)
            self.pull_status.setText("Pull cancelled; pulling again resumes it.")
        self.refresh()

    @Slot(str)
    def _on_pull_failed(self, message: str) -> None:
        self._end_pull()
        self.pull_bar.setRange(0, 1)
        self.pull_bar.setValue(0)
        self.pull_status.setText("")
        self._on_worker_failed(message)

    @Slot(str)
    def _on_worker_failed(self, message: str) -> None:
        self.message.setText(f"<span style='color:#b3541e'>{html.escape(message)}</span>")
        self.failed.emit(message)

    @Slot()
    def _on_pull_button_clicked(self) -> None:
        self.pull(self.pull_name.text())

    @Slot()
    def _on_cancel_button_clicked(self) -> None:
        self.cancel_pull()

    def _end_pull(self) -> None:
        self._pull = None
        self.pull_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    # ---------------------------------------------------------------- tables

    def _fill_models(self, models: list[RemoteModel]) -> None:
        table = self.models_table
        table.setRowCount(len(models))
        for row, model in enumerate(models):
            cells = [
                model.name,
                model.family,
                model.parameter_size,
                model.quantization,
                human_size(model.size_bytes),
            ]
            for column, text in enumerate(cells):
                table.setItem(row, column, QTableWidgetItem(text))
            button = QPushButton("Delete", table)
            button.clicked.connect(lambda _=False, n=model.name: self.delete(n))
            table.setCellWidget(row, len(cells), button)
        table.resizeColumnsToContents()

    def _fill_loaded(self, running: list[RunningModel]) -> None:
        table = self.loaded_table
        table.setRowCount(len(running))
        for row, model in enumerate(running):
            cells = [
                model.name,
                human_size(model.size_bytes),
                model.where,
                expires_text(model.expires_at),
            ]
            for column, text in enumerate(cells):
                table.setItem(row, column, QTableWidgetItem(text))
            button = QPushButton("Unload", table)
            button.clicked.connect(lambda _=False, n=model.name: self.unload(n))
            table.setCellWidget(row, len(cells), button)
        table.resizeColumnsToContents()

    def model_names(self) -> list[str]:
        """The names in the models table (for tests and the picker)."""
        return _column(self.models_table)

    def loaded_names(self) -> list[str]:
        """The names in the loaded table."""
        return _column(self.loaded_table)


def _table(columns: list[str], parent: QWidget) -> QTableWidget:
    table = QTableWidget(0, len(columns), parent)
    table.setHorizontalHeaderLabels(columns)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
    table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    return table


def _column(table: QTableWidget) -> list[str]:
    names = []
    for row in range(table.rowCount()):
        item = table.item(row, 0)
        if item is not None:
            names.append(item.text())
    return names
