"""How fast a model will generate: bandwidth ÷ bytes read per token × efficiency, or measured.

Decode at batch 1 is memory-bound (reference/fit.md §6.1): each token reads the weights it uses
(for MoE only the routed share of the experts) plus the KV cache in context. With partial
offload the layers run one after the other, so the times add up per device. The efficiency
(the share of spec bandwidth llama.cpp reaches, §6.2) starts from published planning values
and is replaced by this machine's own: every measured run here gives an effective bandwidth
(tokens per second × bytes per token), and their median is used for the same backend. A model
file that has been run here shows its own measured speed.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from app.fit_memory import kv_layer_bytes
from app.fit_types import FitRequest, SpeedEstimate
from app.hardware import HardwareProfile
from app.model_shape import ModelShape

DEFAULT_EFFICIENCY: dict[str, float] = {"CUDA": 0.65, "Metal": 0.6, "CPU": 0.5}
"""Planning values of reference/fit.md §6.2 (consumer NVIDIA and Apple 0.6-0.75)."""
ASSUMED_DRAM_BANDWIDTH = 40e9
"""CPU RAM bandwidth when nothing better is known (dual-channel DDR4-3200 is 51 GB/s in
theory, §6.4); replaced by this machine's own measured runs."""
PROMPT_TO_DECODE = {"CUDA": 40.0, "Metal": 10.0, "CPU": 5.0}
"""Prompt-processing speed as a multiple of decode speed when nothing is measured (§6.3:
10-80× on NVIDIA, 8-13× on Apple GPUs); a rough figure, said so."""
CONTEXT_IN_USE = 2048
"""Tokens assumed in context for the KV read of a typical chat turn (at most the context)."""


@dataclass(frozen=True, slots=True)
class Calibration:
    """This machine's measured runs, summarized.

    Attributes:
        effective_bandwidth: backend -> measured bytes per second actually achieved
            (decode tokens/s × bytes read per token), one value per run.
        prompt_flops: backend -> measured prompt speed × 2 × active parameters, per run.
        file_speeds: model key (see `app.measurements.model_key`) -> (decode tok/s,
            prompt tok/s or None) medians of this file's runs.
        process_base_bytes: a worker's RSS before loading, as measured here.
    """

    effective_bandwidth: dict[str, list[float]] = field(default_factory=dict)
    prompt_flops: dict[str, list[float]] = field(default_factory=dict)
    file_speeds: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    process_base_bytes: int | None = None


def bytes_per_token(
    shape: ModelShape, n_ctx: int, request: FitRequest, gpu_layers: int
) -> tuple[int, int]:
    """(bytes read on the GPU, bytes read on the host) to generate one token."""
    n = shape.n_layers
    on_gpu = max(0, min(gpu_layers, n))
    in_use = min(n_ctx, CONTEXT_IN_USE)
    kv = kv_layer_bytes(shape, in_use, request)
    cells = max(1, -(-in_use // 256) * 256)
    share = in_use / cells
    per_layer = []
    for il in range(n):
        weights = shape.layer_bytes[il]
        experts = shape.layer_expert_bytes[il]
        if shape.is_moe:
            weights -= experts - experts * shape.expert_used_count // shape.expert_count
        per_layer.append(weights + int(kv[il] * share))
    gpu = sum(per_layer[n - on_gpu :]) if on_gpu else 0
    host = sum(per_layer[: n - on_gpu])
    if gpu_layers > n:
        gpu += shape.output_bytes
    else:
        host += shape.output_bytes
    return gpu, host


def gpu_bandwidth(profile: HardwareProfile | None) -> int | None:
    """The GPU's memory bandwidth in bytes/s from the profile (None when unknown)."""
    value = profile.gpu_bandwidth_bytes_per_second if profile is not None else None
    return int(value) if value else None


def host_bandwidth(profile: HardwareProfile | None) -> tuple[float, str]:
    """(RAM bandwidth in bytes/s, where it came from) for CPU layers."""
    if profile is not None and profile.apple is not None:
        unified = gpu_bandwidth(profile)
        if unified:
            return float(unified), "unified memory"
    if profile is not None and profile.cpu_bandwidth_bytes_per_second:
        where = profile.source_of("bandwidth.cpu") or "probe"
        return float(profile.cpu_bandwidth_bytes_per_second), where
    return ASSUMED_DRAM_BANDWIDTH, "assumed"


def estimate_speed(
    shape: ModelShape,
    n_ctx: int,
    request: FitRequest,
    gpu_layers: int,
    backend: str,
    profile: HardwareProfile | None,
    calibration: Calibration | None = None,
    file_key: str = "",
) -> SpeedEstimate:
    """Decode (and prompt) speed for a placement; measured when this file ran here."""
    calibration = calibration or Calibration()
    if file_key and file_key in calibration.file_speeds:
        decode, prompt = calibration.file_speeds[file_key]
        return SpeedEstimate(decode, prompt, "measured", "runs of this file on this machine")
    gpu_bytes, host_bytes = bytes_per_token(shape, n_ctx, request, gpu_layers)
    gpu_bw = gpu_bandwidth(profile) if gpu_bytes and backend != "CPU" else None
    runs = calibration.effective_bandwidth.get(backend, [])
    if runs:
        effective = statistics.median(runs)
        seconds = (gpu_bytes + host_bytes) / effective
        detail = f"calibrated from {len(runs)} run{'s' if len(runs) != 1 else ''} here"
    else:
        eff = DEFAULT_EFFICIENCY.get(backend, 0.5)
        host_bw, where = host_bandwidth(profile)
        seconds = host_bytes / (host_bw * DEFAULT_EFFICIENCY["CPU"])
        if gpu_bytes:
            seconds += gpu_bytes / ((gpu_bw or host_bw) * eff)
        detail = (
            f"{(gpu_bytes + host_bytes) / 1e9:.2f} GB read per token; "
            + (f"GPU {gpu_bw / 1e9:.0f} GB/s × {eff:.2f}; " if gpu_bw and gpu_bytes else "")
            + (f"RAM {host_bw / 1e9:.0f} GB/s ({where})" if host_bytes else "").rstrip("; ")
        ).rstrip("; ")
    tps = 1.0 / seconds if seconds > 0 else None
    prompt = _prompt_speed(shape, backend, tps, calibration)
    return SpeedEstimate(tps, prompt, "estimated", detail)


def _prompt_speed(
    shape: ModelShape, backend: str, decode: float | None, calibration: Calibration
) -> float | None:
    flops = calibration.prompt_flops.get(backend, [])
    active = active_parameters(shape)
    if flops and active:
        return statistics.median(flops) / (2 * active)
    if decode is None:
        return None
    return decode * PROMPT_TO_DECODE.get(backend, 5.0)


def active_parameters(shape: ModelShape) -> int:
    """Parameters used per token: all of a dense model, the routed share of an MoE's."""
    if not shape.is_moe or not shape.weights_bytes:
        return shape.parameter_count
    return int(shape.parameter_count * shape.active_bytes_per_token / shape.weights_bytes)
