"""The model host: models loaded side by side (one worker process each), keyed, kept or let go.

Every load is checked against free memory first (`app.memory`); an idle model is unloaded
after its keep-alive unless it is kept warm. The single-model API (`load(path, plan)`,
`current`) that the GUI and the CLI use unloads everything else, as it always did.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import ModelNotLoaded
from app.measurements import LoadSample, sample_load
from app.memory import (
    MARGIN_BYTES,
    NO_LOCAL_MEMORY,
    MemoryEstimate,
    available_ram,
    check_fits,
    estimate_load,
)
from app.model_options import model_key
from runtimes.base import CancelToken, LoadedModel, LoadOptions, ProgressCallback, Runtime
from runtimes.llamacpp import LlamaCppRuntime

if TYPE_CHECKING:
    from app.engine import LoadPlan

log = logging.getLogger(__name__)

Estimator = Callable[[str, LoadOptions], MemoryEstimate]
_UNIFIED_MEMORY_BACKENDS = ("Metal", "CPU")


@dataclass(frozen=True, slots=True)
class LoadedEntry:
    """One loaded model as the host keeps it. Times are in the host's clock (`ModelHost.now`).

    Attributes:
        key: the model's key, e.g. "llamacpp:/models/x.gguf" (see `model_key`).
        path: the file or name it was loaded from.
        model: its handle.
        loaded_at: when its load finished.
        last_used: when it was last used (`touch`, `using`), else `loaded_at`.
        keep_warm: never unloaded for being idle.
        keep_alive_s: idle seconds before `unload_idle` ends it (None: never).
        estimated_bytes: the memory its load was estimated to need.
    """

    key: str
    path: str
    model: LoadedModel
    loaded_at: float
    last_used: float
    keep_warm: bool
    keep_alive_s: float | None
    estimated_bytes: int
    sample: LoadSample | None = None

    def idle_expired(self, now: float) -> bool:
        """Whether it has been idle past its keep-alive (and is not kept warm)."""
        if self.keep_warm or self.keep_alive_s is None:
            return False
        return now - self.last_used > self.keep_alive_s


class ModelHost:
    """Holds loaded models by key; thread-safe (loads run on worker threads).

    Args:
        runtime: the engine that loads models (llama.cpp by default).
        estimator: a load's memory need; by default the GGUF estimate for llama.cpp and
            nothing (no check) for runtimes whose models live on a server.
        available_memory: bytes of RAM available now (psutil by default).
        clock: seconds, monotonic (`time.monotonic` by default).
        margin_bytes: memory every load leaves free.
    """

    def __init__(
        self,
        runtime: Runtime | None = None,
        *,
        estimator: Estimator | None = None,
        available_memory: Callable[[], int] = available_ram,
        clock: Callable[[], float] = time.monotonic,
        margin_bytes: int = MARGIN_BYTES,
    ) -> None:
        self._runtime: Runtime = runtime or LlamaCppRuntime()
        local = self._runtime.name == LlamaCppRuntime.name
        self._estimate = estimator or (estimate_load if local else _nothing_local)
        self._available = available_memory
        self._clock = clock
        self._margin = margin_bytes
        self._lock = threading.Lock()
        self._entries: dict[str, LoadedEntry] = {}
        self._reserved: dict[object, int] = {}
        self._in_use: Counter[str] = Counter()
        self._current_key = ""

    @property
    def runtime_name(self) -> str:
        """The runtime's short name, stored with each message."""
        return self._runtime.name

    def now(self) -> float:
        """The host's clock, the time base of `LoadedEntry` times."""
        return self._clock()

    # The single-model API: one model at a time, as the GUI and CLI use it.

    @property
    def current(self) -> LoadedModel | None:
        """The model loaded by `load(path, plan)`, if it is still alive."""
        with self._lock:
            entry = self._entries.get(self._current_key)
        return entry.model if entry is not None and entry.model.alive else None

    @property
    def current_path(self) -> str:
        """Path of the model loaded by `load(path, plan)` ("" when none)."""
        with self._lock:
            entry = self._entries.get(self._current_key)
        return entry.path if entry is not None and entry.model.alive else ""

    def load(
        self,
        path: Path,
        plan: LoadPlan,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> LoadedModel:
        """Unload every model, then load `path` with `plan` as the current model.

        Raises:
            WontFit: the model would not fit the free memory.
            InvalidModelFile, ModelLoadFailed, RuntimeCrashed: from the runtime.
        """
        self.unload_all()
        key = model_key(self._runtime.name, path)
        model = self.load_model(key, path, plan, on_progress, cancel)
        with self._lock:
            self._current_key = key
        return model

    # The many-model API.

    def load_model(
        self,
        key: str,
        path: str | Path,
        plan: LoadPlan,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        *,
        keep_warm: bool = False,
    ) -> LoadedModel:
        """Load `path` beside the models already loaded, under `key`.

        A model already loaded under `key` is unloaded first (so new options take effect).
        The load is refused before any worker starts when its estimate exceeds the memory
        available (RAM, plus a discrete GPU's budget when the plan offloads to it) minus
        the estimates of the loaded models and loads under way, minus the margin.

        Raises:
            WontFit: the model would not fit; the message gives the numbers.
            InvalidModelFile, ModelLoadFailed, RuntimeCrashed: from the runtime.
        """
        self.unload(key)
        estimate = self._estimate(str(path), plan.options)
        ticket = object()
        with self._lock:
            self._check_fits(path, plan, estimate)
            self._reserved[ticket] = estimate.total_bytes
        started = time.perf_counter()
        try:
            log.info("loading %s as %s (%s)", path, key, plan.explanation)
            model = self._runtime.load(str(path), plan.options, on_progress, cancel)
        finally:
            with self._lock:
                del self._reserved[ticket]
        sample = None
        if self._runtime.name == LlamaCppRuntime.name:
            sample = sample_load(
                path,
                plan.options,
                plan.backend,
                time.perf_counter() - started,
                getattr(model, "pid", None),
            )
        now = self._clock()
        entry = LoadedEntry(
            key=key,
            path=str(path),
            model=model,
            loaded_at=now,
            last_used=now,
            keep_warm=keep_warm,
            keep_alive_s=plan.options.keep_alive_s,
            estimated_bytes=estimate.total_bytes,
            sample=sample,
        )
        with self._lock:
            replaced = self._entries.pop(key, None)  # a concurrent load of the same key
            self._entries[key] = entry
        if replaced is not None:
            replaced.model.unload()
        return model

    def _check_fits(self, path: str | Path, plan: LoadPlan, estimate: MemoryEstimate) -> None:
        """Raise WontFit unless `estimate` fits; call with the lock held."""
        if estimate.total_bytes == 0:
            return
        available = self._available()
        offloads = plan.options.n_gpu_layers != 0 and plan.gpu_budget is not None
        if offloads and plan.backend not in _UNIFIED_MEMORY_BACKENDS:
            available += plan.gpu_budget or 0  # VRAM of its own; Metal shares the RAM
        alive = [e for e in self._entries.values() if e.model.alive]
        used = sum(e.estimated_bytes for e in alive) + sum(self._reserved.values())
        check_fits(path, estimate, available, (len(alive), used), self._margin)

    def get(self, key: str) -> LoadedModel | None:
        """The model loaded under `key`, if it is alive; None when none is."""
        with self._lock:
            entry = self._entries.get(key)
        return entry.model if entry is not None and entry.model.alive else None

    @property
    def current_sample(self) -> LoadSample | None:
        """The `load_sample` of the model loaded by `load(path, plan)`."""
        return self.load_sample(self._current_key)

    def load_sample(self, key: str) -> LoadSample | None:
        """What the load under `key` measured and had predicted (llama.cpp loads only)."""
        with self._lock:
            entry = self._entries.get(key)
        return entry.sample if entry is not None else None

    def loaded(self) -> list[LoadedEntry]:
        """The models loaded and alive, oldest load first."""
        with self._lock:
            entries = list(self._entries.values())
        return [e for e in entries if e.model.alive]

    def touch(self, key: str) -> None:
        """Mark the model under `key` as used now (restarts its keep-alive).

        Raises:
            ModelNotLoaded: nothing is loaded under `key`.
        """
        self._update(key, last_used=self._clock())

    def set_keep_warm(self, key: str, keep_warm: bool) -> None:
        """Keep the model under `key` loaded however long it idles, or let it go again.

        Raises:
            ModelNotLoaded: nothing is loaded under `key`.
        """
        self._update(key, keep_warm=keep_warm)

    def _update(self, key: str, **changes: object) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                raise ModelNotLoaded(f"No model is loaded as {key}. Load it first.")
            self._entries[key] = dataclasses.replace(entry, **changes)  # type: ignore[arg-type]

    @contextmanager
    def using(self, key: str) -> Iterator[LoadedModel]:
        """Hold the model under `key` in use: `unload_idle` spares it, and it counts as used
        when the block starts and ends (wrap a whole reply in it).

        Raises:
            ModelNotLoaded: nothing alive is loaded under `key`.
        """
        model = self.get(key)
        if model is None:
            raise ModelNotLoaded(f"No model is loaded as {key}. Load it first.")
        self.touch(key)
        with self._lock:
            self._in_use[key] += 1
        try:
            yield model
        finally:
            with self._lock:
                self._in_use[key] -= 1
                if self._in_use[key] <= 0:
                    del self._in_use[key]
            with contextlib.suppress(ModelNotLoaded):  # unloaded meanwhile: nothing to mark
                self.touch(key)

    def unload(self, key: str | None = None) -> None:
        """End the worker of the model under `key` so its memory returns; with no key, end
        every model (the single-model API's meaning). Idempotent."""
        if key is None:
            self.unload_all()
            return
        with self._lock:
            entry = self._entries.pop(key, None)
        if entry is not None:
            entry.model.unload()

    def unload_all(self) -> None:
        """End every loaded model's worker. Idempotent."""
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            entry.model.unload()

    def unload_idle(self, now: float | None = None) -> list[str]:
        """Unload the models idle past their keep-alive (not kept warm, not in use), and
        forget those whose worker died; return the keys unloaded for idling."""
        now = self._clock() if now is None else now
        with self._lock:
            idle = [
                e
                for e in self._entries.values()
                if e.model.alive and e.idle_expired(now) and not self._in_use[e.key]
            ]
            dead = [e for e in self._entries.values() if not e.model.alive]
            for entry in (*idle, *dead):
                del self._entries[entry.key]
        for entry in idle:
            log.info("unloading %s: idle past its keep-alive", entry.key)
            entry.model.unload()
        for entry in dead:
            entry.model.unload()  # its worker is gone; this closes the pipes
        return [e.key for e in idle]


def _nothing_local(_path: str, _options: LoadOptions) -> MemoryEstimate:
    """Models a server holds take no memory here."""
    return NO_LOCAL_MEMORY
