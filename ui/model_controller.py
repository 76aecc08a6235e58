"""Loads models side by side on worker threads, unloads idle ones, and keeps the picker's state
in step.

Every model goes by its `model_key` in its runtime's `ModelHost` (many-model API), so loading a
second model keeps the first when memory allows; a load that would not fit fails with
`WontFit`, whose message (with the numbers) reaches the banner through `load_failed`.

Idle unload: a timer sweeps every host every 15 s (`sweep_idle`). A model streaming a reply
is never ended by it: while `reply_running()` says a reply is under way, the model last handed
to the chat (by `loaded_model` or a finished load) is touched before the sweep, so its
keep-alive counts from the end of the reply.

Over 400 lines because loading, unloading, idling and load options all decide the one
picker state and share the per-key bookkeeping (summaries, reasons for being unloaded).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMessageBox, QWidget

from app.engine import DEFAULT_CONTEXT, LoadPlan, ModelHost, gpu_budget_bytes, plan_load
from app.errors import LoadCancelled, ModelNotLoaded, UserFacingError, WorkbenchError
from app.hardware import HardwareProfile
from app.library import LocalModel, ModelLibrary
from app.measurements import MeasurementRecorder, MeasurementStore
from app.model_options import ModelOptionsStore, model_key
from app.runtimes import RuntimeRegistry
from runtimes.base import LoadedModel, LoadOptions
from ui.load_options_dialog import LoadOptionsDialog
from ui.model_picker import ModelPicker, split_choice
from ui.workers import LoadWorker, WorkerThread, start_worker

log = logging.getLogger(__name__)

IDLE_SWEEP_MS = 15_000


def describe_load(model: LoadedModel) -> str:
    """A short summary of what a load produced, for the toolbar."""
    info = model.info
    where = (
        f"{info.n_gpu_layers}/{info.n_layers} layers on {info.backend}"
        if info.n_gpu_layers
        else info.backend
    )
    return f"{where} · {info.n_threads} threads · ctx {info.n_ctx} · {info.load_time_s:.1f} s"


def describe_idle(keep_alive_s: float | None) -> str:
    """How long a model idled before it was unloaded: "5 min", or "30 s" below a minute."""
    seconds = keep_alive_s or 0.0
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def choice_key(choice: str) -> str:
    """The `model_key` of a picker choice: "llamacpp:/abs/x.gguf", "ollama:llama3.2"."""
    runtime, model = split_choice(choice)
    return model_key(runtime, model)


class KeyedLoadWorker(LoadWorker):
    """Loads one model beside the others, under its key (`ModelHost.load_model`); the
    signals are `LoadWorker`'s."""

    def __init__(self, host: ModelHost, key: str, name: str, plan: LoadPlan) -> None:
        super().__init__(host, Path(name), plan)
        self._key = key
        self._name = name  # a server model's name is not a path: pass it on untouched

    @Slot()
    def run(self) -> None:
        """Load the model; emits `loaded` or `failed`, then `finished`."""
        try:
            model = self._host.load_model(
                self._key, self._name, self._plan, self._on_progress, self.cancel
            )
        except WorkbenchError as exc:
            self.failed.emit(exc)
        except Exception as exc:
            log.exception("unexpected error while loading %s", self._name)
            self.failed.emit(exc)
        else:
            self.loaded.emit(model)
        self.finished.emit()


class ModelController(QObject):
    """Owns the `ModelHost`s (one per runtime) on behalf of the GUI.

    Args:
        host: llama.cpp's host; server runtimes get theirs on first use.
        picker: the toolbar's model picker, kept in step with the chosen model's state.
        library: the local models (for their layer counts).
        parent: the window (also the parent of the dialogs).
        registry: the runtimes besides llama.cpp.
        options: where each model's load options are saved (None: planner defaults only).

    Attributes:
        reply_running: says whether a reply is streaming; the window sets it.
        keep_warm_action: checkable; keeps the chosen model loaded however long it idles.
        idle_timer: runs `sweep_idle` every 15 s.

    Signals:
        model_loaded(object): the `LoadedModel` now in use.
        load_failed(object): the error that stopped a load.
        model_unloaded(): the chosen model was unloaded (by the user or a crash).
        idle_unloaded(object): the keys of models unloaded for idling (a list).
    """

    model_loaded = Signal(object)
    load_failed = Signal(object)
    model_unloaded = Signal()
    idle_unloaded = Signal(object)

    def __init__(
        self,
        host: ModelHost,
        picker: ModelPicker,
        library: ModelLibrary | None = None,
        parent: QObject | None = None,
        registry: RuntimeRegistry | None = None,
        options: ModelOptionsStore | None = None,
    ) -> None:
        super().__init__(parent)
        self.host = host  # llama.cpp's host; servers get their own below
        self.hosts: dict[str, ModelHost] = {"llamacpp": host}
        self.registry = registry
        self.options = options
        self.measurements = MeasurementRecorder(
            MeasurementStore(options.database) if options is not None else None
        )
        self.picker = picker
        self.hardware: HardwareProfile | None = None
        self.reply_running: Callable[[], bool] = lambda: False
        self.reload_prompt: QMessageBox | None = None
        self.options_dialog: LoadOptionsDialog | None = None
        self._library = library
        self._models: dict[str, LocalModel] = {}
        self._load: WorkerThread | None = None
        self._loading_choice = ""
        # True from start until the GUI thread has the outcome; the worker's thread may take a
        # moment longer to end, and a new load must not wait for that.
        self._load_active = False
        self._finishing: list[WorkerThread] = []
        self._summaries: dict[str, str] = {}  # key -> describe_load of its load
        self._unload_reasons: dict[str, str] = {}  # key -> why it is no longer loaded
        self._serving = ""  # choice of the model last handed to the chat (loaded or found)
        self.keep_warm_action = QAction("Keep &Warm", self)
        self.keep_warm_action.setCheckable(True)
        self.keep_warm_action.setEnabled(False)
        self.keep_warm_action.setToolTip("Keep the chosen model loaded however long it idles")
        self.keep_warm_action.toggled.connect(self._on_keep_warm_action_toggled)
        self.idle_timer = QTimer(self)
        self.idle_timer.setInterval(IDLE_SWEEP_MS)
        self.idle_timer.timeout.connect(self._on_idle_timer_timeout)
        self.idle_timer.start()
        picker.cancel_requested.connect(self.cancel_load)
        picker.selection_changed.connect(self._on_picker_selection_changed)

    def _layers(self, model: LocalModel | None) -> int:
        if model is None or self._library is None:
            return 0
        try:
            return self._library.metadata(model).block_count or 0
        except WorkbenchError:
            return 0  # the load's own header check reports the problem

    def set_models(self, models: list[LocalModel]) -> None:
        """Remember the library's models (for their context lengths)."""
        self._models = {str(m.path): m for m in models}

    @property
    def loading(self) -> bool:
        """Whether a load is under way."""
        return self._load_active

    def set_registry(self, registry: RuntimeRegistry) -> None:
        """Use a rebuilt registry (endpoints changed): hosts of saved endpoints are dropped,
        their models unloaded, so an edited URL or key takes effect on the next load."""
        self.registry = registry
        for key in [k for k in self.hosts if k.startswith("openai:")]:
            self.hosts.pop(key).unload()

    def host_for(self, choice: str) -> ModelHost:
        """The host of the runtime a picker choice names (created on first use)."""
        key, _model = split_choice(choice)
        if key not in self.hosts:
            if self.registry is None:
                raise UserFacingError("No runtimes are configured besides llama.cpp.")
            self.hosts[key] = ModelHost(self.registry.get(key))
        return self.hosts[key]

    def loaded_model(self, choice: str) -> LoadedModel | None:
        """The model the picker's `choice` names, if it is loaded and alive (and marks it used:
        the chat asks for it right before a reply)."""
        host = self.hosts.get(split_choice(choice)[0])
        key = choice_key(choice)
        model = host.get(key) if host is not None else None
        if host is not None and model is not None:
            with contextlib.suppress(ModelNotLoaded):
                host.touch(key)
            self._serving = choice
        return model

    def loaded_keys(self) -> list[str]:
        """Keys of every model loaded and alive, on every runtime."""
        return [e.key for host in self.hosts.values() for e in host.loaded()]

    # ------------------------------------------------------------ load options

    def default_plan(self, choice: str) -> LoadPlan:
        """What the planner chooses for `choice` without saved options."""
        return self._plan(choice, None)

    def plan_for(self, choice: str) -> LoadPlan:
        """The plan the next load of `choice` uses: saved options, else the defaults.

        Raises:
            DatabaseUnavailable: the saved options could not be read.
        """
        saved = self.options.get(choice_key(choice)) if self.options is not None else None
        return self._plan(choice, saved)

    def _plan(self, choice: str, saved: LoadOptions | None) -> LoadPlan:
        key, model_id = split_choice(choice)
        if key != "llamacpp":
            options = saved or LoadOptions(n_ctx=DEFAULT_CONTEXT)
            where = "saved options" if saved is not None else "server defaults"
            return LoadPlan(
                options=options, backend=key, explanation=f"{key}: {model_id} · {where}"
            )
        model = self._models.get(model_id)
        context = (model.context_length or 0) if model is not None else 0
        return plan_load(
            context,
            file_size=model.size_bytes if model is not None else 0,
            n_layers=self._layers(model),
            gpu_budget=gpu_budget_bytes(self.hardware),
            saved=saved,
            path=model_id if model is not None else None,
            profile=self.hardware,
        )

    @Slot()
    def edit_load_options(self) -> LoadOptionsDialog | None:
        """Open the Load options dialog for the chosen model (None when none is chosen)."""
        choice = self.picker.selected_path()
        if not choice:
            return None
        try:
            defaults = self.default_plan(choice)
            saved = self.options.get(choice_key(choice)) if self.options is not None else None
        except WorkbenchError as exc:
            self.load_failed.emit(exc)
            return None
        parent = self.parent()
        dialog = LoadOptionsDialog(
            self.picker.model_name(),
            defaults,
            saved,
            parent if isinstance(parent, QWidget) else None,
        )
        dialog.setProperty("choice", choice)
        dialog.accepted.connect(self._on_options_dialog_accepted)
        self.options_dialog = dialog
        dialog.open()
        return dialog

    @Slot()
    def _on_options_dialog_accepted(self) -> None:
        dialog = self.options_dialog
        if dialog is None or self.options is None:
            return
        choice = str(dialog.property("choice"))
        key = choice_key(choice)
        try:
            if dialog.is_default():
                self.options.forget(key)
            else:
                self.options.save(key, dialog.options())
        except WorkbenchError as exc:
            self.load_failed.emit(exc)
            return
        dialog.deleteLater()
        self.options_dialog = None
        host = self.hosts.get(split_choice(choice)[0])
        if host is not None and host.get(key) is not None and not self.reply_running():
            self._offer_reload(choice)

    def _offer_reload(self, choice: str) -> None:
        parent = self.parent()
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Reload the model?",
            "The new options take effect when the model loads again. Reload it now?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            parent if isinstance(parent, QWidget) else None,
        )
        box.setProperty("choice", choice)
        box.finished.connect(self._on_reload_prompt_finished)
        self.reload_prompt = box
        box.open()

    @Slot(int)
    def _on_reload_prompt_finished(self, _result: int) -> None:
        box = self.reload_prompt
        self.reload_prompt = None
        if box is None:
            return
        choice = str(box.property("choice"))
        box.deleteLater()
        yes = box.clickedButton() is box.button(QMessageBox.StandardButton.Yes)
        if yes and not self.reply_running():
            self.load(choice)

    # ------------------------------------------------------------ load, unload

    def load(self, choice: str, n_ctx: int | None = None) -> None:
        """Start loading the picker's `choice` beside the models already loaded (reloading it
        when it is loaded); no-op while a load runs. `n_ctx` overrides the context (a
        conversation's own setting)."""
        if self.loading:
            return
        try:
            host = self.host_for(choice)
            plan = self.plan_for(choice)
        except WorkbenchError as exc:
            self.load_failed.emit(exc)
            return
        if n_ctx is not None and n_ctx != plan.options.n_ctx:
            plan = replace(
                plan,
                options=replace(plan.options, n_ctx=n_ctx),
                explanation=f"{plan.explanation} · context {n_ctx} from this conversation",
            )
        worker = KeyedLoadWorker(host, choice_key(choice), split_choice(choice)[1], plan)

        def connect() -> None:
            worker.progressed.connect(self._on_worker_progressed)
            worker.loaded.connect(self._on_worker_loaded)
            worker.failed.connect(self._on_worker_failed)

        self.picker.set_loading(0.0, "starting")
        self.keep_warm_action.setEnabled(False)
        if self._load is not None:
            self._finishing.append(self._load)
        self._finishing = [t for t in self._finishing if t.running()]
        self._load_active = True
        self._loading_choice = choice
        self._load = start_worker(worker, connect, self)

    @Slot()
    def cancel_load(self) -> None:
        """Abort a running load (its worker process is killed)."""
        if self._load is not None and self._load_active:
            self._load.worker.cancel.cancel()

    @Slot()
    def unload(self) -> None:
        """Unload the chosen model (the others stay); its memory returns to the system."""
        choice = self.picker.selected_path()
        if choice and split_choice(choice)[0] in self.hosts:
            self.hosts[split_choice(choice)[0]].unload(choice_key(choice))
            self._unload_reasons.pop(choice_key(choice), None)
        self.refresh_state()
        self.model_unloaded.emit()

    def mark_crashed(self) -> None:
        """The worker of the model the chat was using died: forget it and say so in the
        picker; the next send loads it again."""
        choice = self._serving or self.picker.selected_path()
        if choice and split_choice(choice)[0] in self.hosts:
            key = choice_key(choice)
            self.hosts[split_choice(choice)[0]].unload(key)
            self._unload_reasons[key] = "crashed — will reload on send"
        self.refresh_state()
        self.model_unloaded.emit()

    def shutdown(self) -> None:
        """Stop loads and end every model's worker process (on window close)."""
        self.idle_timer.stop()
        self.cancel_load()
        for thread in [*self._finishing, *([self._load] if self._load else [])]:
            thread.wait(5000)
        for host in self.hosts.values():
            host.unload_all()

    # --------------------------------------------------------- idle and warmth

    def sweep_idle(self) -> list[str]:
        """Unload the models idle past their keep-alive on every host (sparing the model of a
        streaming reply); return their keys."""
        serving = self.hosts.get(split_choice(self._serving)[0]) if self._serving else None
        if self.reply_running() and serving is not None:
            with contextlib.suppress(ModelNotLoaded):
                serving.touch(choice_key(self._serving))
        unloaded: list[str] = []
        for host in self.hosts.values():
            keep = {e.key: e.keep_alive_s for e in host.loaded()}
            for key in host.unload_idle():
                self._unload_reasons[key] = f"unloaded after {describe_idle(keep.get(key))} idle"
                unloaded.append(key)
        if unloaded:
            if not self.loading:
                self.refresh_state()
            self.idle_unloaded.emit(unloaded)
        return unloaded

    @Slot()
    def _on_idle_timer_timeout(self) -> None:
        self.sweep_idle()

    @Slot(bool)
    def _on_keep_warm_action_toggled(self, checked: bool) -> None:
        choice = self.picker.selected_path()
        host = self.hosts.get(split_choice(choice)[0]) if choice else None
        if host is None:
            return
        with contextlib.suppress(ModelNotLoaded):  # unloaded meanwhile: nothing to keep
            host.set_keep_warm(choice_key(choice), checked)

    # ------------------------------------------------------------ picker state

    def refresh_state(self) -> None:
        """Show the chosen model's state in the picker, and how many models are loaded."""
        choice = self.picker.selected_path()
        key = choice_key(choice) if choice else ""
        host = self.hosts.get(split_choice(choice)[0]) if choice else None
        entry = next((e for e in host.loaded() if e.key == key), None) if host else None
        if entry is not None:
            self.picker.set_loaded(self._summaries.get(key) or describe_load(entry.model))
        else:
            self.picker.set_unloaded(self._unload_reasons.get(key, "not loaded"))
        self.keep_warm_action.blockSignals(True)
        self.keep_warm_action.setChecked(entry is not None and entry.keep_warm)
        self.keep_warm_action.blockSignals(False)
        self.keep_warm_action.setEnabled(entry is not None)
        names = [Path(k.split(":", 1)[1]).name for k in self.loaded_keys()]
        self.picker.set_loaded_models(names)

    @Slot(str)
    def _on_picker_selection_changed(self, _choice: str) -> None:
        if not self.loading:
            self.refresh_state()

    @Slot(float, str)
    def _on_worker_progressed(self, fraction: float, stage: str) -> None:
        self.picker.set_loading(fraction, stage)

    @Slot(object)
    def _on_worker_loaded(self, model: LoadedModel) -> None:
        self._load_active = False
        key = choice_key(self._loading_choice)
        self._summaries[key] = describe_load(model)
        self._unload_reasons.pop(key, None)
        self._serving = self._loading_choice
        self.measurements.loaded(model, self.host_for(self._loading_choice).load_sample(key))
        log.info("loaded %s: %s", key, describe_load(model))
        self.refresh_state()
        self.model_loaded.emit(model)

    @Slot(object)
    def _on_worker_failed(self, error: BaseException) -> None:
        self._load_active = False
        cancelled = isinstance(error, LoadCancelled)
        self.refresh_state()
        key = choice_key(self._loading_choice)
        if self.picker.selected_path() == self._loading_choice and key not in self.loaded_keys():
            self.picker.set_unloaded("load cancelled" if cancelled else "failed to load")
        self.load_failed.emit(error)
