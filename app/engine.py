"""The model host: chooses load options for this machine and keeps the loaded model."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from app.hardware import HardwareProfile
from runtimes.base import CancelToken, LoadedModel, LoadOptions, ProgressCallback, Runtime
from runtimes.llamacpp import LlamaCppRuntime, default_threads, wheel_backend

log = logging.getLogger(__name__)

DEFAULT_CONTEXT = 4096
GIB = 1024**3
RESERVE_BYTES = 512 * 1024**2


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """Load options chosen for a model on this machine, and why, in words."""

    options: LoadOptions
    backend: str
    explanation: str


def gpu_budget_bytes(profile: HardwareProfile | None) -> int | None:
    """Memory the GPU can give a model: the Metal working-set limit on Apple Silicon, else the
    most free VRAM of one NVIDIA GPU; None when unknown (not probed yet, or no GPU)."""
    if profile is None:
        return None
    if profile.apple is not None:
        return profile.apple.gpu_limit_bytes
    free = [g.memory_free_bytes for g in profile.gpus if g.memory_free_bytes]
    return max(free) if free else None


def _gpu_layers(file_size: int, n_layers: int, budget: int | None) -> tuple[int, str]:
    """Layers to offload, and why, from a simple rule until the fit estimator lands (issue 4):
    the weights plus 10 % and a fixed 512 MiB for KV cache, compute buffers and the context."""
    if budget is None or file_size <= 0:
        return -1, "all layers on the GPU (memory not checked)"
    needed = int(file_size * 1.1) + RESERVE_BYTES
    if needed <= budget:
        return -1, f"all layers on the GPU (needs ~{needed / GIB:.1f} of {budget / GIB:.1f} GiB)"
    if n_layers <= 0 or budget <= RESERVE_BYTES:
        return 0, f"CPU only: needs ~{needed / GIB:.1f} GiB, the GPU has {budget / GIB:.1f}"
    layers = max(0, min(n_layers, (budget - RESERVE_BYTES) * n_layers // int(file_size * 1.1)))
    return layers, (
        f"{layers}/{n_layers} layers on the GPU: needs ~{needed / GIB:.1f} GiB, "
        f"the GPU has {budget / GIB:.1f}"
    )


def plan_load(
    context_length: int,
    backend: str | None = None,
    threads: int | None = None,
    n_ctx: int = DEFAULT_CONTEXT,
    *,
    file_size: int = 0,
    n_layers: int = 0,
    gpu_budget: int | None = None,
) -> LoadPlan:
    """Choose threads, GPU offload and context for a model.

    Threads are the physical performance cores (llama-cpp-python's own default is half the
    logical cores, which is 1 thread on a 2-core machine); on a Metal or CUDA build every layer
    is offloaded when the weights fit the GPU's budget, else a proportional share; the context
    is `n_ctx`, capped at what the model was trained for.

    Args:
        context_length: the model's trained context (0 when unknown).
        backend: "Metal", "CUDA" or "CPU"; None asks the installed llama.cpp.
        threads: CPU threads; None uses the physical performance cores.
        n_ctx: the wanted context length.
        file_size: the model file's size in bytes (0: unknown).
        n_layers: the model's layer count (0: unknown).
        gpu_budget: bytes the GPU can hold (see `gpu_budget_bytes`); None when unknown.
    """
    backend = backend or wheel_backend()
    threads = threads or default_threads()
    ctx = min(n_ctx, context_length) if context_length > 0 else n_ctx
    if backend in ("Metal", "CUDA"):
        gpu_layers, where = _gpu_layers(file_size, n_layers, gpu_budget)
    else:
        gpu_layers, where = 0, "CPU only"
    explanation = (
        f"{backend} build · {where} · {threads} thread{'s' if threads != 1 else ''} "
        f"(physical cores) · context {ctx}"
    )
    options = LoadOptions(n_ctx=ctx, n_gpu_layers=gpu_layers, n_threads=threads)
    return LoadPlan(options=options, backend=backend, explanation=explanation)


class ModelHost:
    """Holds at most one loaded model and swaps it on request.

    Thread-safe: loads happen on a worker thread while the GUI thread reads `current`.
    """

    def __init__(self, runtime: Runtime | None = None) -> None:
        self._runtime: Runtime = runtime or LlamaCppRuntime()
        self._lock = threading.Lock()
        self._current: LoadedModel | None = None
        self._current_path = ""

    @property
    def runtime_name(self) -> str:
        """The runtime's short name, stored with each message."""
        return self._runtime.name

    @property
    def current(self) -> LoadedModel | None:
        """The loaded model, if it is still alive."""
        with self._lock:
            model = self._current
        return model if model is not None and model.alive else None

    @property
    def current_path(self) -> str:
        """Path of the loaded model ("" when none)."""
        return self._current_path if self.current is not None else ""

    def load(
        self,
        path: Path,
        plan: LoadPlan,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> LoadedModel:
        """Unload whatever is loaded, then load `path` with `plan`.

        Raises:
            InvalidModelFile, ModelLoadFailed, RuntimeCrashed: from the runtime.
        """
        self.unload()
        log.info("loading %s (%s)", path, plan.explanation)
        model = self._runtime.load(str(path), plan.options, on_progress, cancel)
        with self._lock:
            self._current = model
            self._current_path = str(path)
        return model

    def unload(self) -> None:
        """End the loaded model's worker so its memory returns. Idempotent."""
        with self._lock:
            model, self._current = self._current, None
            self._current_path = ""
        if model is not None:
            model.unload()
