"""Memory of one placement: weights, KV cache, compute and output buffers per device.

Formulas follow what llama.cpp allocates (reference/fit.md §2), checked against llama.cpp's own
dry run (`runtimes.llamacpp.dryrun`) in tests/integration/test_fit_dryrun.py:

- KV cache: context padded to 256 cells; per layer `cells × (k_width·bytes(K) + v_width·bytes(V))`
  in the cache type's blocks; sliding-window layers get `pad256(min(n_ctx, n_swa + n_ubatch))`
  cells unless `swa_full` (llama-cpp-python's default); MLA stores only K.
- Compute buffer: the worst-case graph of one micro-batch, the larger of the logits phase
  `4·n_ubatch·(n_vocab + 2·n_embd)` and the attention phase
  `4·n_ubatch·(cells·(n_head + masks) + n_ff + 3·n_embd)` (flash attention: `cells·masks`;
  masks = 2 with sliding-window layers, else 1; MLA adds its latent heads), and the
  feed-forward phase `4·n_ubatch·(3·n_ff + 4·n_embd)` (+ the f16 mask `2·cells·n_ubatch` with
  flash attention), which dominates small-vocabulary models such as Mistral Large; against
  llama.cpp's own reservations it is exact for the logits phase and within a few percent for
  the attention phase (tests/integration/test_fit_dryrun.py).
- Output buffer: the logits of one token, `4·n_vocab` bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.fit_types import MIB, FitRequest, MemoryBreakdown
from app.model_shape import ModelShape

KV_CELL_PADDING = 256
KV_ROW_BLOCKS: dict[str, tuple[int, int]] = {"f16": (1, 2), "q8_0": (32, 34), "q4_0": (32, 18)}
"""KV cache type -> (values per block, bytes per block), as ggml's type traits."""

PROCESS_BASE_BYTES = 42 * MIB
"""A worker process before it loads a model: Python with llama_cpp imported (41 MiB RSS
measured here)."""
VOCAB_BYTES_PER_TOKEN = 160
MERGE_BYTES = 100
"""llama.cpp's in-memory vocabulary: token strings, scores and lookup maps (~160 bytes a
token) and BPE merge ranks (~100 bytes a merge); fitted on SmolLM2 (49k tokens, 49k merges)
and Gemma 3 (262k tokens) here: 7 and 40 MiB."""
GPU_OVERHEAD_BYTES: dict[str, int] = {"CUDA": 457 * MIB, "Metal": 256 * MIB}
"""What a GPU backend takes besides the buffers llama.cpp reports: CUDA context and cuBLAS
workspace (Ollama budgets 457 MiB per CUDA GPU, reference/fit.md §2.6); Metal command
buffers and pipelines (an estimate; unverified on real Apple hardware)."""


def pad_cells(n_ctx: int) -> int:
    """Cells llama.cpp allocates for a context: rounded up to a multiple of 256."""
    return -(-max(n_ctx, 1) // KV_CELL_PADDING) * KV_CELL_PADDING


def swa_cells(shape: ModelShape, n_ctx: int, request: FitRequest) -> int:
    """Cells of a sliding-window layer's cache."""
    if request.swa_full or shape.n_swa <= 0:
        return pad_cells(n_ctx)
    return pad_cells(min(n_ctx, shape.n_swa + request.n_ubatch))


def kv_layer_bytes(shape: ModelShape, n_ctx: int, request: FitRequest) -> tuple[int, ...]:
    """KV cache bytes of each layer at `n_ctx` with the request's cache type."""
    per_block, block_bytes = KV_ROW_BLOCKS[request.kv_cache_type]
    full = pad_cells(n_ctx)
    windowed = swa_cells(shape, n_ctx, request)
    out = []
    for il, (k, v) in enumerate(zip(shape.k_widths, shape.v_widths, strict=True)):
        cells = windowed if il < len(shape.swa_layers) and shape.swa_layers[il] else full
        out.append(cells * (k // per_block + v // per_block) * block_bytes)
    return tuple(out)


def kv_cache_bytes(shape: ModelShape, n_ctx: int, request: FitRequest) -> int:
    """The whole KV cache at `n_ctx`."""
    return sum(kv_layer_bytes(shape, n_ctx, request))


def logits_phase_bytes(shape: ModelShape, n_ubatch: int) -> int:
    """Compute-buffer peak while producing logits for a whole micro-batch."""
    return 4 * n_ubatch * (shape.n_vocab + 2 * shape.n_embd)


def attention_phase_bytes(shape: ModelShape, n_ctx: int, request: FitRequest) -> int:
    """Compute-buffer peak in attention plus the FFN activations.

    Without flash attention the f32 scores of every head (`cells · n_ubatch · n_head`) and
    the f32 mask (`cells · n_ubatch`) are live; with it only the mask. Models with
    sliding-window layers carry a second mask; MLA models also hold the absorbed queries
    and latent outputs of every head (`~2 · k_width · n_ubatch · n_head`).
    """
    masks = 2 if any(shape.swa_layers) else 1
    heads = masks if request.flash_attn else shape.n_head + masks
    cells = pad_cells(n_ctx)
    per_token = cells * heads + shape.n_ff + 3 * shape.n_embd
    if shape.is_mla and shape.k_widths:
        per_token += 2 * max(shape.k_widths) * shape.n_head
    return 4 * request.n_ubatch * per_token


def ffn_phase_bytes(shape: ModelShape, n_ctx: int, request: FitRequest) -> int:
    """Compute-buffer peak in the feed-forward block: gate, up and their product
    (`3 · n_ff`) beside the residual stream and norms (`4 · n_embd`), per token of the
    micro-batch; with flash attention the f16 mask (`2 · cells` bytes a token) stays live."""
    mask = 2 * pad_cells(n_ctx) * request.n_ubatch if request.flash_attn else 0
    return 4 * request.n_ubatch * (3 * shape.n_ff + 4 * shape.n_embd) + mask


def compute_bytes_formula(shape: ModelShape, n_ctx: int, request: FitRequest) -> int:
    """llama.cpp's compute buffer for one sequence, by formula."""
    return max(
        logits_phase_bytes(shape, request.n_ubatch),
        attention_phase_bytes(shape, n_ctx, request),
        ffn_phase_bytes(shape, n_ctx, request),
    )


def cpu_work_bytes(shape: ModelShape, n_ctx: int, request: FitRequest) -> int:
    """The CPU backend's matmul work buffer, outside llama.cpp's compute buffer: without
    flash attention the softmaxed scores are converted to f16 for the product with V
    (`2 · cells · n_ubatch · n_head` bytes); with flash attention it is small."""
    if request.flash_attn:
        return 0
    return 2 * pad_cells(n_ctx) * request.n_ubatch * shape.n_head


def vocab_bytes(shape: ModelShape) -> int:
    """llama.cpp's vocabulary in memory (host)."""
    return VOCAB_BYTES_PER_TOKEN * shape.n_vocab + MERGE_BYTES * shape.n_merges


def output_buffer_bytes(shape: ModelShape) -> int:
    """The host output buffer: float logits of one token."""
    return 4 * shape.n_vocab


@dataclass(frozen=True, slots=True)
class Measured:
    """Sizes llama.cpp reported for this model and request (dry run), to use over formulas.

    Attributes:
        kv_bytes: the KV cache total.
        compute_bytes: all compute buffers.
        output_bytes: the output buffer.
    """

    kv_bytes: int
    compute_bytes: int
    output_bytes: int


def breakdown(
    shape: ModelShape,
    n_ctx: int,
    request: FitRequest,
    gpu_layers: int,
    backend: str,
    *,
    measured: Measured | None = None,
    process_base: int = PROCESS_BASE_BYTES,
    n_gpus: int = 1,
    cpu_repack: bool = False,
) -> MemoryBreakdown:
    """Memory with the last `gpu_layers` blocks on the GPU.

    `gpu_layers` > `shape.n_layers` means every block and the output layer (llama.cpp's
    "offloaded N+1/N+1"); the token embedding always stays on the CPU. With CUDA a tied
    embedding is copied to the GPU as output; Metal maps the same pages (no copy).
    """
    n = shape.n_layers
    on_gpu = max(0, min(gpu_layers, n))
    full = gpu_layers > n
    first_gpu = n - on_gpu
    layer_kv = kv_layer_bytes(shape, n_ctx, request)
    kv_total = sum(layer_kv)
    compute = compute_bytes_formula(shape, n_ctx, request)
    output = output_buffer_bytes(shape)
    if measured is not None:
        compute, output = measured.compute_bytes, measured.output_bytes
        if measured.kv_bytes and kv_total and abs(measured.kv_bytes - kv_total) > MIB:
            # llama.cpp knows an architecture rule we do not: trust its total, split alike
            scale = measured.kv_bytes / kv_total
            layer_kv = tuple(round(b * scale) for b in layer_kv)
            kv_total = measured.kv_bytes
    weights = shape.weights_bytes
    repack = sum(shape.layer_repack_bytes[:first_gpu]) if cpu_repack else 0
    weights_gpu = sum(shape.layer_bytes[first_gpu:]) if on_gpu else 0
    if full:
        weights_gpu += shape.output_bytes
        if shape.tied_embeddings and backend == "CUDA":
            weights += shape.output_bytes  # a real copy of the embedding in VRAM
    kv_gpu = sum(layer_kv[first_gpu:]) if on_gpu else 0
    gpu_used = on_gpu > 0 and backend in GPU_OVERHEAD_BYTES
    if not gpu_used:
        weights_gpu = kv_gpu = 0
    compute_gpu = compute if gpu_used else 0
    host_compute = _host_compute(shape, request, gpu_used, full)
    overhead_gpu = GPU_OVERHEAD_BYTES.get(backend, 0) * n_gpus if gpu_used else 0
    work = 0 if gpu_used else cpu_work_bytes(shape, n_ctx, request)
    host_base = process_base + vocab_bytes(shape)
    return MemoryBreakdown(
        weights_bytes=weights,
        weights_gpu_bytes=weights_gpu,
        kv_cache_bytes=kv_total,
        kv_gpu_bytes=kv_gpu,
        compute_bytes=compute_gpu + host_compute if gpu_used else compute + work,
        compute_gpu_bytes=compute_gpu,
        output_bytes=output,
        overhead_bytes=host_base + overhead_gpu,
        overhead_gpu_bytes=overhead_gpu,
        source="llama.cpp dry run" if measured is not None else "formula",
        resident_bytes=0
        if gpu_used
        else resident_cpu_bytes(shape, n_ctx, request, kv_total, output + work + repack, host_base),
    )


def _host_compute(shape: ModelShape, request: FitRequest, gpu_used: bool, full: bool) -> int:
    """The host's compute buffer beside a GPU's: input embeddings of a micro-batch, plus
    the logits phase when the output layer stays on the CPU (partial offload)."""
    if not gpu_used:
        return 0
    inputs = 4 * request.n_ubatch * shape.n_embd
    return inputs if full else inputs + logits_phase_bytes(shape, request.n_ubatch)


def resident_cpu_bytes(
    shape: ModelShape,
    n_ctx: int,
    request: FitRequest,
    kv_bytes: int,
    extra_bytes: int,
    process_base: int,
) -> int:
    """Peak RAM of a CPU-only worker after a full-context generation (reference/fit.md §2.10).

    Mapped weights it reads (all blocks and the output matrix; an untied token embedding is
    only looked up a row at a time), the KV cache (llama.cpp clears it at creation, so it is
    all touched), and of the compute buffer only what a real run writes: the attention phase,
    or the logits of the one token whose output is kept, not of the whole micro-batch.
    `extra_bytes` are the output buffer, the CPU work buffer and repacked weights;
    `process_base` the process itself with llama.cpp's vocabulary.
    """
    weights = sum(shape.layer_bytes) + shape.output_bytes
    written_logits = 4 * (shape.n_vocab + 2 * request.n_ubatch * shape.n_embd)
    compute = max(
        written_logits,
        attention_phase_bytes(shape, n_ctx, request),
        ffn_phase_bytes(shape, n_ctx, request),
    )
    return process_base + weights + kv_bytes + compute + extra_bytes
