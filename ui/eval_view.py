"""The Compare window's Eval tab: sets and cases, a run across models, and its results."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.choices import choice_label
from app.errors import WorkbenchError
from app.eval_report import build_report, compare, export_rows, write_csv, write_json
from app.eval_runner import EvalProgress, EvalRunner
from app.eval_store import EvalStore, ResultView, RunView
from app.model_session import SessionOpener
from runtimes.base import GenerationParams
from ui.eval_editor import EvalEditor
from ui.eval_results import EvalResults, GridCase, GridData
from ui.eval_worker import EvalWorker, GuiThreadWrites
from ui.workers import WorkerThread, start_worker

log = logging.getLogger(__name__)

DEFAULT_SEED = 42
REFRESH_MS = 250  # results re-read at most this often while a run streams in


class EvalServices(Protocol):
    """What the Eval tab uses of the Compare window's services."""

    @property
    def opener(self) -> SessionOpener: ...
    @property
    def choices(self) -> Callable[[], list[tuple[str, str]]]: ...
    @property
    def eval_store(self) -> EvalStore | None: ...


def eta_text(seconds: float | None) -> str:
    """ "ETA 1 min 20 s", "ETA 9 s", or "" when unknown."""
    if seconds is None or seconds < 0:
        return ""
    whole = round(seconds)
    if whole < 60:
        return f"ETA {whole} s"
    minutes, rest = divmod(whole, 60)
    if minutes < 60:
        return f"ETA {minutes} min {rest} s" if rest else f"ETA {minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"ETA {hours} h {minutes} min"


def make_eval_tab(services: EvalServices, parent: QWidget | None = None) -> QWidget:
    """The Eval tab: an `EvalView`, or a line saying why evals are unavailable (no database)."""
    if services.eval_store is not None:
        return EvalView(services, parent)
    label = QLabel(
        "Eval sets are kept in the history database, which could not be opened; "
        "see the banner in the main window, then reopen this window.",
        parent,
    )
    label.setWordWrap(True)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    return label


class EvalView(QWidget):
    """Eval sets and their cases on top; models, parameters and Run below, then the results.

    Signals:
        run_finished(int): an eval run ended (complete, cancelled or failed): its id.
    """

    run_finished = Signal(int)

    def __init__(self, services: EvalServices, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.services = services
        if services.eval_store is None:
            raise ValueError("EvalView needs an EvalStore; use make_eval_tab for the fallback")
        self.store: EvalStore = services.eval_store
        self.editor = EvalEditor(self.store, self)
        self.models = QListWidget(self)
        self.temperature = QDoubleSpinBox(self)
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setValue(0.0)
        self.seed = QSpinBox(self)
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setValue(DEFAULT_SEED)
        self.max_tokens = QSpinBox(self)
        self.max_tokens.setRange(1, 32768)
        self.max_tokens.setValue(256)
        self.run_button = QPushButton("Run", self)
        self.cancel_button = QPushButton("Cancel", self)
        self.resume_button = QPushButton("Resume", self)
        self.progress = QProgressBar(self)
        self.progress_label = QLabel("", self)
        self.progress_label.setWordWrap(True)
        self.results = EvalResults(self)
        self.run_id: int | None = None  # the run shown in the results
        self.compare_id = 0
        self._handle: WorkerThread | None = None
        self._run_models: tuple[str, ...] = ()
        self._running_id: int | None = None
        self._refresh = QTimer(self)
        self._refresh.setSingleShot(True)
        self._refresh.setInterval(REFRESH_MS)
        self._lay_out()
        self._connect()
        self.refresh_models()
        self._on_editor_set_selected(self.editor.current_set_id or 0)

    def _lay_out(self) -> None:
        params = QFormLayout()
        params.addRow("Temperature", self.temperature)
        params.addRow("Seed", self.seed)
        params.addRow("Max tokens", self.max_tokens)
        buttons = QHBoxLayout()
        for button in (self.run_button, self.cancel_button, self.resume_button):
            buttons.addWidget(button)
        controls = QWidget(self)
        column = QVBoxLayout(controls)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(QLabel("Models", self))
        column.addWidget(self.models, 1)
        column.addLayout(params)
        column.addLayout(buttons)
        column.addWidget(self.progress)
        column.addWidget(self.progress_label)
        lower = QSplitter(Qt.Orientation.Horizontal, self)
        lower.addWidget(controls)
        lower.addWidget(self.results)
        lower.setStretchFactor(1, 3)
        self.splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.splitter.addWidget(self.editor)
        self.splitter.addWidget(lower)
        self.splitter.setStretchFactor(1, 2)
        box = QVBoxLayout(self)
        box.addWidget(self.splitter)

    def _connect(self) -> None:
        self.editor.set_selected.connect(self._on_editor_set_selected)
        self.editor.cases_changed.connect(self._on_editor_cases_changed)
        self.models.itemChanged.connect(self._on_models_item_changed)
        self.run_button.clicked.connect(self._on_run_button_clicked)
        self.cancel_button.clicked.connect(self._on_cancel_button_clicked)
        self.resume_button.clicked.connect(self._on_resume_button_clicked)
        self.results.run_selected.connect(self._on_results_run_selected)
        self.results.compare_selected.connect(self._on_results_compare_selected)
        self.results.judged.connect(self._on_results_judged)
        self.results.export_requested.connect(self._on_results_export_requested)
        self._refresh.timeout.connect(self._on_refresh_timeout)

    # -- dialogs (tests replace these) -----------------------------------------------------

    def ask_results_path(self, kind: str) -> Path | None:
        """Ask where to export the shown run's results as `kind` ("csv"/"json")."""
        start = str(Path.home() / f"eval-run-{self.run_id}.{kind}")
        filters = "CSV (*.csv)" if kind == "csv" else "JSON (*.json)"
        filename, _ = QFileDialog.getSaveFileName(self, "Export results", start, filters)
        if not filename:
            return None
        path = Path(filename)
        return path if path.suffix.lower() == f".{kind}" else path.with_name(f"{path.name}.{kind}")

    # -- models and parameters -------------------------------------------------------------

    def refresh_models(self) -> None:
        """Reload the checkable list of models from the services' choices (keeps checks)."""
        checked = set(self.checked_models())
        self.models.clear()
        for label, choice in self.services.choices():
            item = QListWidgetItem(label, self.models)
            item.setData(Qt.ItemDataRole.UserRole, choice)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            state = Qt.CheckState.Checked if choice in checked else Qt.CheckState.Unchecked
            item.setCheckState(state)
        self._update_buttons()

    def checked_models(self) -> list[str]:
        """The choices checked for the next run, in list order."""
        return [
            str(item.data(Qt.ItemDataRole.UserRole))
            for row in range(self.models.count())
            if (item := self.models.item(row)).checkState() == Qt.CheckState.Checked
        ]

    def set_checked_models(self, choices: list[str]) -> None:
        """Check exactly `choices` (for the window's "evaluate these" and for tests)."""
        for row in range(self.models.count()):
            item = self.models.item(row)
            wanted = item.data(Qt.ItemDataRole.UserRole) in choices
            item.setCheckState(Qt.CheckState.Checked if wanted else Qt.CheckState.Unchecked)
        self._update_buttons()

    def params(self) -> GenerationParams:
        """The generation parameters of the next run (greedy and seeded by default)."""
        return GenerationParams(
            temperature=self.temperature.value(),
            seed=self.seed.value(),
            max_tokens=self.max_tokens.value(),
        )

    # -- running ---------------------------------------------------------------------------

    def running(self) -> bool:
        """Whether a run is in progress (from start until its worker said it finished)."""
        return self._running_id is not None

    def start_run(self) -> int | None:
        """Make a new run of the chosen set on the checked models and start it (its id)."""
        set_id = self.editor.current_set_id
        models = self.checked_models()
        if set_id is None or not models or self.running():
            return None
        try:
            run = self.store.start_run(set_id, models, self.params())
        except WorkbenchError as exc:
            self._say(exc.message)
            return None
        self._start(run.id)
        return int(run.id)

    def resume_run(self) -> bool:
        """Resume the shown run where it stopped (recorded cases are not redone)."""
        if self.run_id is None or self.running():
            return False
        self._start(self.run_id)
        return True

    def cancel_run(self) -> None:
        """Ask the running eval to stop (it stops between cases, or inside a reply)."""
        if self._handle is not None and self.running() and self._handle.running():
            self._handle.worker.cancel.cancel()
            self._say("Cancelling…")

    def shutdown(self, msecs: int = 10_000) -> bool:
        """Cancel a running eval and wait for its thread (window closing); True when ended.

        A reply being generated stops at its next chunk; the model is unloaded.
        """
        self.cancel_run()
        return self.wait(msecs)

    def wait(self, msecs: int = 30_000) -> bool:
        """Block until the run's thread ends (for shutdown and tests)."""
        return self._handle is None or self._handle.wait(msecs)

    def _start(self, run_id: int) -> None:
        writes = cast(EvalStore, GuiThreadWrites(self.store))
        runner = EvalRunner(self.services.opener, writes)
        worker = EvalWorker(runner, run_id)
        self.run_id = self._running_id = run_id
        self._run_models = self.store.run(run_id).models
        self._refresh_runs()
        self.progress.setRange(0, 0)
        self._say("Starting…")

        def connect() -> None:
            worker.progressed.connect(self._on_worker_progressed)
            worker.failed.connect(self._on_worker_failed)
            worker.finished.connect(self._on_worker_finished)

        self._handle = start_worker(worker, connect, self)
        self._update_buttons()

    def _say(self, text: str) -> None:
        self.progress_label.setText(text)

    def progress_text(self, progress: EvalProgress) -> str:
        """ "case 7/30 · model 2/3 · ETA 1 min 20 s" (or "loading …") for an `EvalProgress`."""
        models = self._run_models
        n_models = max(1, len(models))
        n_cases = max(1, progress.total // n_models)
        model_index = models.index(progress.model) + 1 if progress.model in models else 1
        if progress.phase == "loading":
            first = f"loading {progress.model_name}"
        else:
            first = f"case {progress.case_index + 1}/{n_cases}"
        parts = [first, f"model {model_index}/{n_models}"]
        eta = eta_text(progress.eta_seconds)
        if eta:
            parts.append(eta)
        if progress.phase == "load_failed":
            parts.append(progress.message)
        return " · ".join(parts)

    # -- results ---------------------------------------------------------------------------

    def _refresh_runs(self) -> None:
        set_id = self.editor.current_set_id
        runs = self.store.runs(set_id) if set_id is not None else []
        labels = [(run.id, _run_label(run)) for run in runs]
        if self.run_id not in {run.id for run in runs}:
            self.run_id = runs[0].id if runs else None
        self.results.set_runs(labels, self.run_id)
        self.show_run()

    def show_run(self) -> None:
        """Re-read the shown run (and the comparison) from the store and show it."""
        if self.run_id is None:
            self.results.show_data(None)
            self._update_buttons()
            return
        run = self.store.run(self.run_id)
        cases = tuple(
            GridCase(c.id, c.prompt, c.expected, c.scorer, c.system_prompt)
            for c in self.store.get_set(run.set_id).cases
        )
        found = self.store.results(run.id)
        results = {(r.case_id, r.model): r for r in found}
        models = tuple((choice, self._model_name(choice, found)) for choice in run.models)
        changed: dict[tuple[int, str], str] = {}
        summary = ""
        if self.compare_id and self.compare_id != self.run_id:
            changed, summary = self._changes(self.compare_id, self.run_id)
        self.results.show_data(GridData(run.id, cases, models, results, changed), summary)
        self._update_buttons()

    def _model_name(self, choice: str, found: list[ResultView]) -> str:
        """The picker's label for a choice, else the name a result recorded, else the file's."""
        for label, known in self.services.choices():
            if known == choice:
                return label
        for result in found:
            if result.model == choice and result.model_name:
                return result.model_name
        return choice_label(choice)

    def _changes(self, before: int, after: int) -> tuple[dict[tuple[int, str], str], str]:
        changes = [diff for diff in compare(self.store, before, after) if diff.changed]
        marks = {(c.case_id, c.model): f"was {_mark(c.was)}" for c in changes}
        better = sum(1 for c in changes if c.now is True)
        worse = sum(1 for c in changes if c.was is True)
        summary = (
            f"{len(changes)} results changed since run {before}: {better} now pass, "
            f"{worse} no longer pass."
            if changes
            else f"No result changed since run {before}."
        )
        return marks, summary

    def _update_buttons(self) -> None:
        running = self.running()
        has_set = self.editor.current_set_id is not None
        self.run_button.setEnabled(not running and has_set and bool(self.checked_models()))
        self.cancel_button.setEnabled(running)
        resumable = False
        if not running and self.run_id is not None:
            resumable = self.store.run(self.run_id).status in ("cancelled", "failed", "running")
        self.resume_button.setEnabled(resumable)
        self.editor.setEnabled(not running)

    # -- slots -----------------------------------------------------------------------------

    @Slot(int)
    def _on_editor_set_selected(self, _set_id: int) -> None:
        self.run_id = None
        self.compare_id = 0
        self._refresh_runs()

    @Slot(int)
    def _on_editor_cases_changed(self, _set_id: int) -> None:
        self.show_run()

    @Slot(QListWidgetItem)
    def _on_models_item_changed(self, _item: QListWidgetItem) -> None:
        self._update_buttons()

    @Slot()
    def _on_run_button_clicked(self) -> None:
        self.start_run()

    @Slot()
    def _on_cancel_button_clicked(self) -> None:
        self.cancel_run()

    @Slot()
    def _on_resume_button_clicked(self) -> None:
        self.resume_run()

    @Slot(object)
    def _on_worker_progressed(self, progress: EvalProgress) -> None:
        self.progress.setRange(0, max(1, progress.total))
        self.progress.setValue(progress.done)
        self._say(self.progress_text(progress))
        if not self._refresh.isActive():
            self._refresh.start()

    @Slot(object)
    def _on_worker_failed(self, error: object) -> None:
        message = error.message if isinstance(error, WorkbenchError) else f"Bug: {error!r}"
        self._say(f"The run stopped: {message}")

    @Slot()
    def _on_worker_finished(self) -> None:
        self._refresh.stop()
        self.progress.setRange(0, 1)
        run_id, self._running_id = self._running_id, None
        self.run_id = run_id  # show the run that just ended
        status = self.store.run(run_id).status if run_id is not None else ""
        if status == "complete":
            self.progress.setValue(1)
            self._say("Done.")
        elif status == "cancelled":
            self.progress.setValue(0)
            self._say("Cancelled. Resume goes on from the first case not yet recorded.")
        # The handle is kept (not set to None): dropping the last reference to a finished
        # worker's thread here, while Qt deletes the worker in that thread, crashed PySide.
        self._update_buttons()
        self._refresh_runs()
        if run_id is not None:
            self.run_finished.emit(run_id)

    @Slot()
    def _on_refresh_timeout(self) -> None:
        self.show_run()

    @Slot(int)
    def _on_results_run_selected(self, run_id: int) -> None:
        self.run_id = run_id
        self.show_run()

    @Slot(int)
    def _on_results_compare_selected(self, run_id: int) -> None:
        self.compare_id = run_id
        self.show_run()

    @Slot(object, bool)
    def _on_results_judged(self, result: Any, passed: bool) -> None:
        self.store.judge(result.id, passed)
        self.show_run()

    @Slot(str)
    def _on_results_export_requested(self, kind: str) -> None:
        if self.run_id is None:
            return
        path = self.ask_results_path(kind)
        if path is None:
            return
        try:
            if kind == "csv":
                write_csv(export_rows(self.store, self.run_id), path)
            else:
                write_json(build_report(self.store, self.run_id), path)
        except WorkbenchError as exc:
            self._say(exc.message)
            return
        self._say(f"Exported run {self.run_id} to {path}.")


def _mark(passed: bool | None) -> str:
    return "?" if passed is None else ("✓" if passed else "✗")


def _run_label(run: RunView) -> str:
    when = run.created_at.astimezone().strftime("%Y-%m-%d %H:%M")
    return f"#{run.id} · {when} · {len(run.models)} models · {run.status}"
