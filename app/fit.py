"""Will it fit, where, and how fast: the `FitVerdict` for a model on this machine.

The memory of a placement comes from `app.fit_memory` (formulas checked against llama.cpp) or,
for a file llama.cpp can dry-run (a local file, or a sparse copy of a remote header), from
llama.cpp itself. The placement follows llama.cpp: the last N blocks go to the GPU, the output
layer only with all of them. Budgets: the Metal working-set limit and the memory available now
on Apple Silicon (weights are mapped once; everything counts against both), free VRAM summed
over NVIDIA GPUs (llama.cpp splits layers across them), available RAM for the CPU; each keeps
1 GiB free, as llama.cpp's own `--fit` does (reference/fit.md §2.8).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from app.fit_memory import Measured, breakdown
from app.fit_types import (
    GIB,
    TIGHT_HEADROOM,
    FitRequest,
    FitVerdict,
    MemoryBreakdown,
    Verdict,
    unknown_verdict,
)
from app.hardware import HardwareProfile
from app.model_shape import ModelShape
from app.speed import Calibration, estimate_speed

MARGIN_BYTES = GIB
"""Kept free on every budget (llama.cpp's `--fit-target` default is 1024 MiB)."""
DEFAULT_CONTEXT = 4096


@dataclass(frozen=True, slots=True)
class Budget:
    """Memory a load may use on this machine, before the margin.

    Attributes:
        backend: the llama.cpp build that will run it: "Metal", "CUDA" or "CPU".
        gpu_bytes: what the GPU may hold (Metal working-set limit, or free VRAM summed over
            NVIDIA GPUs); None without a usable GPU.
        gpu_label: how to call it in a sentence ("GPU limit", "free VRAM").
        host_bytes: RAM available now.
        unified: GPU and CPU share the memory (Apple Silicon).
        n_gpus: GPUs a CUDA load spreads over.
        cpu_repack: the CPU backend repacks Q4_0/Q4_K/IQ4_NL weights (x86 with AVX2).
    """

    backend: str
    gpu_bytes: int | None
    gpu_label: str
    host_bytes: int
    unified: bool = False
    n_gpus: int = 1
    cpu_repack: bool = False


def machine_budget(
    profile: HardwareProfile | None, backend: str, loaded_bytes: int = 0
) -> Budget | None:
    """The budget of this machine for a new load (None when the hardware is unknown).

    Args:
        profile: the probed hardware.
        backend: the llama.cpp build ("Metal", "CUDA", "CPU").
        loaded_bytes: what models already loaded by the workbench use (taken off both).
    """
    if profile is None:
        return None
    host = max(0, profile.memory.available_bytes - loaded_bytes)
    repack = "AVX2" in profile.cpu.flags and profile.os.machine.lower() in ("x86_64", "amd64")
    if backend == "Metal" and profile.apple is not None:
        limit = max(0, profile.apple.gpu_limit_bytes - loaded_bytes)
        return Budget(backend, limit, "GPU limit", host, unified=True)
    nvidia = [g for g in profile.gpus if g.vendor == "NVIDIA"]
    if backend == "CUDA" and nvidia:
        free = sum(
            g.memory_free_bytes if g.memory_free_bytes is not None else g.memory_total_bytes
            for g in nvidia
        )
        return Budget(
            backend,
            max(0, free - loaded_bytes),
            "free VRAM",
            host,
            n_gpus=len(nvidia),
            cpu_repack=repack,
        )
    return Budget(backend, None, "", host, cpu_repack=repack)


def fit_shape(
    shape: ModelShape,
    budget: Budget | None,
    request: FitRequest,
    *,
    profile: HardwareProfile | None = None,
    measured: Measured | None = None,
    calibration: Calibration | None = None,
    file_key: str = "",
    with_max_context: bool = True,
) -> FitVerdict:
    """The verdict for `shape` on `budget` with `request`."""
    n_ctx = request.n_ctx or shape.n_ctx_train or DEFAULT_CONTEXT
    request = dataclasses.replace(request, n_ctx=n_ctx)
    if budget is None:
        return unknown_verdict("the hardware has not been probed yet", request)
    process_base = (calibration.process_base_bytes if calibration else None) or None
    extra = {"process_base": process_base} if process_base else {}

    def memory(gpu_layers: int, ctx: int = n_ctx, use_measured: bool = True) -> MemoryBreakdown:
        return breakdown(
            shape,
            ctx,
            request,
            gpu_layers,
            budget.backend,
            measured=measured if use_measured and ctx == n_ctx else None,
            n_gpus=budget.n_gpus,
            cpu_repack=budget.cpu_repack,
            **extra,
        )

    gpu_layers, mem = _place(shape, budget, request, memory)
    verdict = _verdict_for(shape, budget, mem, gpu_layers)
    speed = estimate_speed(
        shape, n_ctx, request, gpu_layers, budget.backend, profile, calibration, file_key
    )
    need, limit = _binding(budget, mem, verdict)
    headroom = limit - need if limit is not None else None
    max_ctx = _max_context(shape, budget, request, memory, verdict) if with_max_context else None
    return FitVerdict(
        verdict=verdict,
        gpu_layers=min(gpu_layers, shape.n_layers) if verdict != "full_gpu" else shape.n_layers,
        n_layers=shape.n_layers,
        context_length=n_ctx,
        kv_cache_type=request.kv_cache_type,
        flash_attn=request.flash_attn,
        memory=mem,
        budget_bytes=limit,
        headroom_bytes=headroom,
        # a partial offload fills the GPU up to the margin by design: not "tight"
        tight=verdict in ("full_gpu", "cpu_only")
        and limit is not None
        and headroom is not None
        and headroom < TIGHT_HEADROOM * limit,
        speed=speed,
        explanation=explain(shape, budget, mem, verdict, gpu_layers, n_ctx),
        reason=_wont_fit_reason(budget, mem) if verdict == "wont_fit" else "",
        max_context=max_ctx,
    )


MemoryFn = Callable[..., MemoryBreakdown]


def _fits(budget: Budget, mem: MemoryBreakdown) -> bool:
    """Whether a placement fits both the GPU budget and RAM, margins kept."""
    if (
        mem.gpu_bytes
        and budget.gpu_bytes is not None
        and mem.gpu_bytes + MARGIN_BYTES > budget.gpu_bytes
    ):
        return False
    host_need = mem.total_bytes if budget.unified else mem.host_bytes
    return host_need + MARGIN_BYTES <= budget.host_bytes


def _place(
    shape: ModelShape, budget: Budget, request: FitRequest, memory: MemoryFn
) -> tuple[int, MemoryBreakdown]:
    """(GPU layers as llama.cpp counts them, memory): the asked-for placement, or the most
    layers that fit."""
    n = shape.n_layers
    has_gpu = budget.gpu_bytes is not None and budget.backend in ("Metal", "CUDA")
    if request.n_gpu_layers is not None:
        asked = request.n_gpu_layers
        layers = n + 1 if asked < 0 or asked > n else asked
        return (layers if has_gpu else 0), memory(layers if has_gpu else 0)
    if not has_gpu:
        return 0, memory(0)
    full = memory(n + 1)
    if _fits(budget, full):
        return n + 1, full
    low, high = 0, n  # the most layers (output on the CPU) that fit: a binary search
    while low < high:
        mid = (low + high + 1) // 2
        if _fits(budget, memory(mid)):
            low = mid
        else:
            high = mid - 1
    return low, memory(low)


def _verdict_for(shape: ModelShape, budget: Budget, mem: MemoryBreakdown, layers: int) -> Verdict:
    if not _fits(budget, mem):
        return "wont_fit"
    if layers > shape.n_layers and mem.gpu_bytes:
        return "full_gpu"
    return "partial" if layers > 0 and mem.gpu_bytes else "cpu_only"


def _binding(budget: Budget, mem: MemoryBreakdown, verdict: str) -> tuple[int, int | None]:
    """(need, budget) of the constraint the verdict is judged on, for headroom."""
    if verdict in ("full_gpu", "partial") and budget.gpu_bytes is not None:
        return mem.gpu_bytes, budget.gpu_bytes
    if verdict == "wont_fit" and budget.gpu_bytes is not None and budget.unified:
        return mem.total_bytes, min(budget.gpu_bytes, budget.host_bytes)
    return (mem.total_bytes if budget.unified else mem.host_bytes), budget.host_bytes


def _max_context(
    shape: ModelShape, budget: Budget, request: FitRequest, memory: MemoryFn, verdict: str
) -> int | None:
    """The largest context (multiple of 256, at most the trained one) that keeps the
    verdict's kind of placement: full GPU stays full GPU; CPU and partial stay in memory."""
    top = shape.n_ctx_train or request.n_ctx
    layers = shape.n_layers + 1 if verdict == "full_gpu" else 0

    def ok(ctx: int) -> bool:
        if verdict in ("full_gpu", "cpu_only"):
            return _fits(budget, memory(layers, ctx, False))
        # partial: some placement (the estimator's own choice, or the asked-for layers) fits
        return _fits(budget, _place(shape, budget, request, lambda k: memory(k, ctx, False))[1])

    low, high = 0, top // 256
    while low < high:
        mid = (low + high + 1) // 2
        if ok(mid * 256):
            low = mid
        else:
            high = mid - 1
    return low * 256 if low else None


def context_label(n_ctx: int) -> str:
    """ "8k" for 8192, "128k" for 131072, else the number."""
    return f"{n_ctx // 1024}k" if n_ctx >= 1024 and n_ctx % 1024 == 0 else str(n_ctx)


def gib(n_bytes: int) -> str:
    """Bytes as GiB with one decimal (two below 1 GiB)."""
    value = n_bytes / GIB
    return f"{value:.2f}" if value < 1 else f"{value:.1f}"


def explain(
    shape: ModelShape,
    budget: Budget,
    mem: MemoryBreakdown,
    verdict: str,
    gpu_layers: int,
    n_ctx: int,
) -> str:
    """The verdict in one line with its numbers."""
    parts = (
        f"{gib(mem.weights_bytes)} weights + {gib(mem.kv_cache_bytes)} KV at "
        f"{context_label(n_ctx)} + {gib(mem.compute_bytes)} compute + "
        f"{gib(mem.overhead_bytes + mem.output_bytes)} overhead"
    )
    if verdict == "full_gpu" and budget.gpu_bytes is not None:
        left = budget.gpu_bytes - mem.gpu_bytes
        return (
            f"needs {gib(mem.gpu_bytes)} GiB on the GPU: {parts}; {budget.gpu_label} "
            f"{gib(budget.gpu_bytes)} GiB; {gib(left)} GiB headroom"
        )
    if verdict == "partial" and budget.gpu_bytes is not None:
        return (
            f"{gpu_layers} of {shape.n_layers + 1} layers on the GPU ({gib(mem.gpu_bytes)} of "
            f"{gib(budget.gpu_bytes)} GiB {budget.gpu_label}), {gib(mem.host_bytes)} GiB in "
            f"RAM; whole model {parts}"
        )
    if verdict == "cpu_only":
        need = mem.total_bytes
        why = "" if budget.gpu_bytes is not None else " (no usable GPU)"
        return (
            f"CPU only{why}: needs {gib(need)} GiB: {parts}; {gib(budget.host_bytes)} GiB RAM "
            f"available; {gib(budget.host_bytes - need)} GiB headroom"
        )
    return f"won't fit: needs {gib(mem.total_bytes)} GiB: {parts}; {_wont_fit_reason(budget, mem)}"


def _wont_fit_reason(budget: Budget, mem: MemoryBreakdown) -> str:
    ram = f"{gib(budget.host_bytes)} GiB RAM available"
    if budget.gpu_bytes is None:
        return f"only {ram} (1 GiB kept free)"
    return f"only {gib(budget.gpu_bytes)} GiB {budget.gpu_label} and {ram} (1 GiB kept free)"
