"""Value types of the fit estimator: what a load asks for, what it needs, and the verdict.

`app.fit` computes them; the UI, the CLI and the recommendations only read them. Sizes are
bytes. A figure that came from llama.cpp's own dry run says so in `MemoryBreakdown.source`;
a speed that came from this machine's own measured runs says so in `SpeedEstimate.basis`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Verdict = Literal["full_gpu", "partial", "cpu_only", "wont_fit", "unknown"]
MemorySource = Literal["llama.cpp dry run", "formula"]
SpeedBasis = Literal["estimated", "measured"]

GIB = 1 << 30
MIB = 1 << 20
TIGHT_HEADROOM = 0.10
"""A fit with less than 10 % of the budget left is marked tight (UI.md, fit badges)."""


@dataclass(frozen=True, slots=True)
class FitRequest:
    """How the model would be loaded.

    Attributes:
        n_ctx: context length in tokens (0: the model's trained context).
        kv_cache_type: "f16", "q8_0" or "q4_0" (both K and V).
        flash_attn: flash attention on (a quantized KV cache needs it).
        n_gpu_layers: layers to offload; None lets the estimator choose the most that fit;
            -1 means all (as llama-cpp-python); 0 CPU only.
        n_ubatch: micro-batch size (llama-cpp-python's default 512); the compute buffer
            grows linearly with it.
        swa_full: full-size caches for sliding-window layers (llama-cpp-python's default).
    """

    n_ctx: int = 4096
    kv_cache_type: str = "f16"
    flash_attn: bool = False
    n_gpu_layers: int | None = None
    n_ubatch: int = 512
    swa_full: bool = True


@dataclass(frozen=True, slots=True)
class MemoryBreakdown:
    """What a load allocates, split by where it lives.

    Attributes:
        weights_bytes: all tensor bytes of the file(s).
        weights_gpu_bytes: the part on the GPU (offloaded layers, and the output layer when
            every layer is offloaded).
        kv_cache_bytes: the KV cache at the context, exactly as llama.cpp sizes it.
        kv_gpu_bytes: the KV cache of offloaded layers.
        compute_bytes: llama.cpp's compute (scratch) buffers, all devices.
        compute_gpu_bytes: the GPU's share of them.
        output_bytes: the host output buffer (logits of one batch).
        overhead_bytes: what the runtime takes besides its buffers: the worker process
            (Python + llama.cpp) on the host, plus a CUDA context or Metal reserve on a GPU.
        overhead_gpu_bytes: the GPU's part of `overhead_bytes`.
        source: "llama.cpp dry run" when KV and compute came from llama.cpp itself, else
            "formula".
        resident_bytes: what the worker process is expected to hold in RAM at its peak on a
            CPU-only load (mapped weights it reads, KV, the compute rows it writes), which
            is less than what it allocates (reference/fit.md §2.10); 0 when not computed.
    """

    weights_bytes: int
    weights_gpu_bytes: int
    kv_cache_bytes: int
    kv_gpu_bytes: int
    compute_bytes: int
    compute_gpu_bytes: int
    output_bytes: int
    overhead_bytes: int
    overhead_gpu_bytes: int
    source: MemorySource
    resident_bytes: int = 0

    @property
    def gpu_bytes(self) -> int:
        """Bytes on the GPU (Metal: counted against the working-set limit)."""
        return (
            self.weights_gpu_bytes
            + self.kv_gpu_bytes
            + self.compute_gpu_bytes
            + self.overhead_gpu_bytes
        )

    @property
    def total_bytes(self) -> int:
        """Everything: weights, KV cache, compute, output and overhead."""
        return (
            self.weights_bytes
            + self.kv_cache_bytes
            + self.compute_bytes
            + self.output_bytes
            + self.overhead_bytes
        )

    @property
    def host_bytes(self) -> int:
        """Bytes in system RAM (on Apple Silicon the same pool as the GPU's)."""
        return self.total_bytes - self.gpu_bytes


@dataclass(frozen=True, slots=True)
class SpeedEstimate:
    """Expected generation speed.

    Attributes:
        decode_tokens_per_second: tokens per second while generating (batch 1).
        prompt_tokens_per_second: tokens per second while reading the prompt; None when
            there is no basis for it.
        basis: "measured" when this machine ran this model file (or calibrated the
            efficiency from its own runs), else "estimated".
        detail: how it was worked out, in one line.
    """

    decode_tokens_per_second: float | None
    prompt_tokens_per_second: float | None
    basis: SpeedBasis
    detail: str


@dataclass(frozen=True, slots=True)
class FitVerdict:
    """Will it fit, where, and how fast.

    Attributes:
        verdict: "full_gpu" (every layer and the output on the GPU), "partial" (some
            layers), "cpu_only" (no GPU used, fits in RAM), "wont_fit", or "unknown" (then
            `reason` says why and the figures may be None).
        gpu_layers: repeating layers on the GPU (0..n_layers).
        n_layers: the model's repeating layers.
        context_length: the context the figures are for (after padding rules are applied
            the KV cache may hold a few more cells; this is the asked-for length).
        kv_cache_type: the KV cache type the figures are for.
        flash_attn: whether flash attention was assumed.
        memory: the breakdown; None when unknown.
        budget_bytes: the memory checked against: the GPU budget (Metal working set or
            free VRAM) for GPU verdicts, available RAM for CPU ones; None when unknown.
        headroom_bytes: budget minus need (negative when it does not fit).
        tight: fits with less than 10 % of the budget left (full GPU or CPU only; a partial
            offload fills the GPU up to the margin by design).
        speed: expected speed; None when unknown.
        explanation: the verdict in one line, with numbers ("needs 42.1 GB: 39.6 weights
            + 2.5 KV at 8k; GPU limit 48.0 GB; 5.9 GB headroom").
        reason: why the verdict is "unknown" (or why it will not fit), "" otherwise.
        max_context: the largest context (a multiple of 256, at most the trained
            context) that still fits with this placement policy; None when not computed.
    """

    verdict: Verdict
    gpu_layers: int
    n_layers: int
    context_length: int
    kv_cache_type: str
    flash_attn: bool
    memory: MemoryBreakdown | None
    budget_bytes: int | None
    headroom_bytes: int | None
    tight: bool
    speed: SpeedEstimate | None
    explanation: str
    reason: str = ""
    max_context: int | None = None

    @property
    def badge(self) -> str:
        """The badge text of UI.md: "Full GPU", "Partial 38/81", "CPU only", "Won't fit",
        "?" (plus " · tight" when less than 10 % is left)."""
        text = {
            "full_gpu": "Full GPU",
            "partial": f"Partial {self.gpu_layers}/{self.n_layers + 1}",
            "cpu_only": "CPU only",
            "wont_fit": "Won't fit",
            "unknown": "?",
        }[self.verdict]
        if self.tight and self.verdict in ("full_gpu", "partial", "cpu_only"):
            text += " · tight"
        return text


def unknown_verdict(reason: str, request: FitRequest | None = None) -> FitVerdict:
    """A verdict that says it does not know, and why (never a guess shown as fact)."""
    request = request or FitRequest()
    return FitVerdict(
        verdict="unknown",
        gpu_layers=0,
        n_layers=0,
        context_length=request.n_ctx,
        kv_cache_type=request.kv_cache_type,
        flash_attn=request.flash_attn,
        memory=None,
        budget_bytes=None,
        headroom_bytes=None,
        tight=False,
        speed=None,
        explanation=f"unknown: {reason}",
        reason=reason,
    )


SizeClass = Literal["tiny", "small", "medium", "large", "huge"]
SIZE_CLASS_LABELS: dict[str, str] = {
    "tiny": "Under 3B: prototyping and tests, not production",
    "small": "3–9B: everyday assistants on a laptop",
    "medium": "10–35B: stronger reasoning and code",
    "large": "36–130B: near-frontier quality, needs a big machine",
    "huge": "Over 130B: multi-GPU servers and the largest Macs",
}
"""Headings of the Recommended table; the seed's advice (below ~7B is for prototyping, not
production) is in the first two."""


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One model × quantization file, judged for this machine.

    Attributes:
        model_id: the catalog id, e.g. "qwen2.5-7b-instruct".
        model_name: display name, e.g. "Qwen 2.5 7B Instruct".
        size_class: one of `SIZE_CLASS_LABELS`.
        parameters_label: "7.6B" (total; MoE shows "671B (37B active)").
        quant: "Q4_K_M".
        repo: the Hugging Face repository holding the file.
        file_name: the (first) GGUF file name.
        file_size_bytes: bytes to download (all parts).
        quality_note: what this quantization costs in quality, one line.
        verdict: the fit at the requested context and KV type.
        best: the best-quality quantization of this model that fits with headroom.
        local_path: the file on this machine when it is already downloaded, else "".
    """

    model_id: str
    model_name: str
    size_class: SizeClass
    parameters_label: str
    quant: str
    repo: str
    file_name: str
    file_size_bytes: int
    quality_note: str
    verdict: FitVerdict
    best: bool = False
    local_path: str = ""
