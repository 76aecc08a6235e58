"""Loads and unloads models on a worker thread and keeps the picker's state in step."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from app.engine import DEFAULT_CONTEXT, LoadPlan, ModelHost, gpu_budget_bytes, plan_load
from app.errors import LoadCancelled, UserFacingError, WorkbenchError
from app.hardware import HardwareProfile
from app.library import LocalModel, ModelLibrary
from app.runtimes import RuntimeRegistry
from runtimes.base import LoadedModel, LoadOptions
from ui.model_picker import ModelPicker, split_choice
from ui.workers import LoadWorker, WorkerThread, start_worker

log = logging.getLogger(__name__)


def describe_load(model: LoadedModel) -> str:
    """A short summary of what a load produced, for the toolbar."""
    info = model.info
    where = (
        f"{info.n_gpu_layers}/{info.n_layers} layers on {info.backend}"
        if info.n_gpu_layers
        else info.backend
    )
    return f"{where} · {info.n_threads} threads · ctx {info.n_ctx} · {info.load_time_s:.1f} s"


class ModelController(QObject):
    """Owns the `ModelHost` on behalf of the GUI.

    Signals:
        model_loaded(object): the `LoadedModel` now in use.
        load_failed(object): the error that stopped a load.
        model_unloaded(): the model was unloaded (by the user or a crash).
    """

    model_loaded = Signal(object)
    load_failed = Signal(object)
    model_unloaded = Signal()

    def __init__(
        self,
        host: ModelHost,
        picker: ModelPicker,
        library: ModelLibrary | None = None,
        parent: QObject | None = None,
        registry: RuntimeRegistry | None = None,
    ) -> None:
        super().__init__(parent)
        self.host = host  # llama.cpp's host; servers get their own below
        self.hosts: dict[str, ModelHost] = {"llamacpp": host}
        self.registry = registry
        self.picker = picker
        picker.cancel_requested.connect(self.cancel_load)
        self.hardware: HardwareProfile | None = None
        self._library = library
        self._models: dict[str, LocalModel] = {}
        self._load: WorkerThread | None = None
        # True from start until the GUI thread has the outcome; the worker's thread may take a
        # moment longer to end, and a new load must not wait for that.
        self._load_active = False
        self._finishing: list[WorkerThread] = []

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

    def host_for(self, choice: str) -> ModelHost:
        """The host of the runtime a picker choice names (created on first use)."""
        key, _model = split_choice(choice)
        if key not in self.hosts:
            if self.registry is None:
                raise UserFacingError("No runtimes are configured besides llama.cpp.")
            self.hosts[key] = ModelHost(self.registry.get(key))
        return self.hosts[key]

    def loaded_model(self, choice: str) -> LoadedModel | None:
        """The loaded model if it is the picker's `choice` and alive."""
        key, model_id = split_choice(choice)
        host = self.hosts.get(key)
        if host is None:
            return None
        current = host.current
        if current is not None and host.current_path == model_id:
            return current
        return None

    def _plan(self, choice: str) -> LoadPlan:
        key, model_id = split_choice(choice)
        if key != "llamacpp":
            options = LoadOptions(n_ctx=DEFAULT_CONTEXT)
            return LoadPlan(options=options, backend=key, explanation=f"{key}: {model_id}")
        model = self._models.get(model_id)
        context = (model.context_length or 0) if model is not None else 0
        return plan_load(
            context,
            file_size=model.size_bytes if model is not None else 0,
            n_layers=self._layers(model),
            gpu_budget=gpu_budget_bytes(self.hardware),
        )

    def load(self, choice: str) -> None:
        """Start loading the picker's `choice` (unloading whatever is loaded, on every runtime);
        no-op while a load runs."""
        if self.loading:
            return
        try:
            host = self.host_for(choice)
            plan = self._plan(choice)
        except WorkbenchError as exc:
            self.load_failed.emit(exc)
            return
        for other in self.hosts.values():
            if other is not host:
                other.unload()
        worker = LoadWorker(host, Path(split_choice(choice)[1]), plan)

        def connect() -> None:
            worker.progressed.connect(self._on_worker_progressed)
            worker.loaded.connect(self._on_worker_loaded)
            worker.failed.connect(self._on_worker_failed)

        self.picker.set_loading(0.0, "starting")
        if self._load is not None:
            self._finishing.append(self._load)
        self._finishing = [t for t in self._finishing if t.running()]
        self._load_active = True
        self._load = start_worker(worker, connect, self)

    @Slot()
    def cancel_load(self) -> None:
        """Abort a running load (its worker process is killed)."""
        if self._load is not None and self._load_active:
            self._load.worker.cancel.cancel()

    @Slot()
    def unload(self) -> None:
        """Unload the current model; its memory returns to the system."""
        for host in self.hosts.values():
            host.unload()
        self.picker.set_unloaded()
        self.model_unloaded.emit()

    def mark_crashed(self) -> None:
        """The worker died: say so in the picker; the next send loads again."""
        for host in self.hosts.values():
            host.unload()
        self.picker.set_unloaded("crashed — will reload on send")
        self.model_unloaded.emit()

    def shutdown(self) -> None:
        """Stop loads and end the worker process (on window close)."""
        self.cancel_load()
        for thread in [*self._finishing, *([self._load] if self._load else [])]:
            thread.wait(5000)
        for host in self.hosts.values():
            host.unload()

    @Slot(float, str)
    def _on_worker_progressed(self, fraction: float, stage: str) -> None:
        self.picker.set_loading(fraction, stage)

    @Slot(object)
    def _on_worker_loaded(self, model: LoadedModel) -> None:
        self._load_active = False
        self.picker.set_loaded(describe_load(model))
        log.info("loaded: %s", describe_load(model))
        self.model_loaded.emit(model)

    @Slot(object)
    def _on_worker_failed(self, error: BaseException) -> None:
        self._load_active = False
        cancelled = isinstance(error, LoadCancelled)
        self.picker.set_unloaded("load cancelled" if cancelled else "failed to load")
        self.load_failed.emit(error)
