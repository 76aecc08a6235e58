"""Load planning for this machine, and the model host (`app.model_host`) re-exported."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from app.hardware import HardwareProfile
from app.memory import GIB, WEIGHTS_FACTOR
from app.model_host import LoadedEntry, ModelHost
from runtimes.base import LoadOptions
from runtimes.llamacpp import default_threads, wheel_backend

__all__ = [
    "DEFAULT_CONTEXT",
    "GIB",
    "LoadPlan",
    "LoadedEntry",
    "ModelHost",
    "gpu_budget_bytes",
    "plan_load",
]


DEFAULT_CONTEXT = 4096
RESERVE_BYTES = 512 * 1024**2


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """Load options chosen for a model on this machine, and why, in words.

    Attributes:
        options: what to load with.
        backend: "Metal", "CUDA" or "CPU".
        explanation: the choices in words, for the toolbar and the CLI.
        gpu_budget: bytes the GPU could hold when planned (None: unknown or no GPU); the
            host adds it to free RAM when the plan offloads to a discrete GPU.
    """

    options: LoadOptions
    backend: str
    explanation: str
    gpu_budget: int | None = None


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
    the weights plus 10 % (as `app.memory` counts them) and a fixed 512 MiB for KV cache,
    compute buffers and the GPU context. The host's fit check (`app.memory.check_fits`) adds
    the exact KV cache on top before anything starts."""
    if budget is None or file_size <= 0:
        return -1, "all layers on the GPU (memory not checked)"
    weights = int(file_size * WEIGHTS_FACTOR)
    needed = weights + RESERVE_BYTES
    if needed <= budget:
        return -1, f"all layers on the GPU (needs ~{needed / GIB:.1f} of {budget / GIB:.1f} GiB)"
    if n_layers <= 0 or budget <= RESERVE_BYTES:
        return 0, f"CPU only: needs ~{needed / GIB:.1f} GiB, the GPU has {budget / GIB:.1f}"
    layers = max(0, min(n_layers, (budget - RESERVE_BYTES) * n_layers // weights))
    return layers, (
        f"{layers}/{n_layers} layers on the GPU: needs ~{needed / GIB:.1f} GiB, "
        f"the GPU has {budget / GIB:.1f}"
    )


def _fitted_layers(
    path: str | None, profile: HardwareProfile | None, backend: str, n_ctx: int
) -> tuple[int, str] | None:
    """GPU layers from the fit estimator (formulas, no dry run: planning runs on the GUI
    thread); None when there is no file or hardware to judge."""
    if path is None or profile is None:
        return None
    from app.fit_service import fit_file
    from app.fit_types import FitRequest

    verdict = fit_file(path, profile, FitRequest(n_ctx=n_ctx), use_dry_run=False, backend=backend)
    memory, budget = verdict.memory, verdict.budget_bytes
    if verdict.verdict == "unknown" or memory is None:
        return None
    if verdict.verdict == "full_gpu":
        need = f"{memory.gpu_bytes / GIB:.1f} of {(budget or 0) / GIB:.1f} GiB"
        return -1, f"all layers on the GPU (needs {need})"
    if verdict.verdict == "partial":
        return verdict.gpu_layers, (
            f"{verdict.gpu_layers}/{verdict.n_layers + 1} layers on the GPU "
            f"({memory.gpu_bytes / GIB:.1f} of {(budget or 0) / GIB:.1f} GiB)"
        )
    return 0, f"CPU only: {verdict.explanation}"


def plan_load(
    context_length: int,
    backend: str | None = None,
    threads: int | None = None,
    n_ctx: int = DEFAULT_CONTEXT,
    *,
    file_size: int = 0,
    n_layers: int = 0,
    gpu_budget: int | None = None,
    saved: LoadOptions | None = None,
    path: str | None = None,
    profile: HardwareProfile | None = None,
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
        saved: the options the user saved for this model (`ModelOptionsStore`): used as
            they are, except that the context is capped at the trained length.
        path: the model file; with `profile`, a GPU build places layers by the fit
            estimator (`app.fit`: exact weights per layer, KV cache, compute buffers, GPU
            overhead against the Metal limit or free VRAM) instead of the simple rule.
        profile: the probed hardware.
    """
    backend = backend or wheel_backend()
    threads = threads or default_threads()
    budget = gpu_budget if backend != "CPU" else None
    if saved is not None:
        return _saved_plan(saved, backend, threads, context_length, budget)
    ctx = min(n_ctx, context_length) if context_length > 0 else n_ctx
    fitted = _fitted_layers(path, profile, backend, ctx) if backend in ("Metal", "CUDA") else None
    if fitted is not None:
        gpu_layers, where = fitted
    elif backend in ("Metal", "CUDA"):
        gpu_layers, where = _gpu_layers(file_size, n_layers, gpu_budget)
    else:
        gpu_layers, where = 0, "CPU only"
    explanation = (
        f"{backend} build · {where} · {threads} thread{'s' if threads != 1 else ''} "
        f"(physical cores) · context {ctx}"
    )
    options = LoadOptions(n_ctx=ctx, n_gpu_layers=gpu_layers, n_threads=threads)
    return LoadPlan(options, backend, explanation, budget)


def _saved_plan(
    saved: LoadOptions, backend: str, threads: int, context_length: int, budget: int | None
) -> LoadPlan:
    """The plan for options the user saved, explained like a chosen one."""
    ctx = (
        min(saved.n_ctx, context_length) if context_length > 0 and saved.n_ctx > 0 else saved.n_ctx
    )
    options = dataclasses.replace(saved, n_ctx=ctx)
    if saved.n_gpu_layers < 0:
        where = "all layers on the GPU"
    else:
        where = f"{saved.n_gpu_layers} layers on the GPU" if saved.n_gpu_layers else "CPU only"
    used = saved.n_threads or threads
    parts = [f"{backend} build", "saved options", where]
    parts.append(f"{used} thread{'s' if used != 1 else ''} · context {ctx}")
    if saved.flash_attn:
        parts.append("flash attention")
    if saved.kv_cache_type != "f16":
        parts.append(f"KV cache {saved.kv_cache_type}")
    if not saved.use_mmap:
        parts.append("mmap off")
    if saved.use_mlock:
        parts.append("mlock")
    if saved.keep_alive_s is not None:
        parts.append(f"unload after {saved.keep_alive_s:g} s idle")
    return LoadPlan(options, backend, " · ".join(parts), budget)
