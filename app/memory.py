"""Memory a model load needs (weights and KV cache, from its GGUF header) and whether it fits.

The KV cache follows llama.cpp's allocation exactly (reference/fit.md §2.3): the context is
padded up to a multiple of 256 cells, and every layer holds `n_embd_k_gqa` K values and
`n_embd_v_gqa` V values per cell, stored in rows of the cache type's blocks (f16: 2 bytes a
value; q8_0: 34 bytes per 32; q4_0: 18 bytes per 32). Sliding-window layers (Gemma 2/3) get
full-size caches too, because llama-cpp-python leaves llama.cpp's `swa_full` default (true).
Weights are the file's size plus 10 %; compute buffers are left to the 1 GiB margin.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import psutil

from app.errors import UserFacingError
from runtimes.base import KVCacheType, LoadOptions
from runtimes.gguf_header import GGUFHeader, validate_gguf
from runtimes.llamacpp.options import head_dims

GIB = 1024**3
MIB = 1024**2
MARGIN_BYTES = GIB
"""Kept free for the system and for llama.cpp's compute buffers (llama.cpp's own `--fit`
target is also 1 GiB)."""
WEIGHTS_FACTOR = 1.1
KV_CELL_PADDING = 256
KV_ROW_BLOCKS: dict[str, tuple[int, int]] = {"f16": (1, 2), "q8_0": (32, 34), "q4_0": (32, 18)}
"""KV cache type -> (values per block, bytes per block), as ggml's type traits."""


@dataclass(frozen=True, slots=True)
class KVGeometry:
    """How wide each layer's K and V cache rows are, per cell.

    Attributes:
        k_widths: `n_embd_k_gqa` of each layer (key head size × KV heads; 0: no KV cache).
        v_widths: `n_embd_v_gqa` of each layer.
    """

    k_widths: tuple[int, ...]
    v_widths: tuple[int, ...]

    @classmethod
    def from_header(cls, header: GGUFHeader) -> KVGeometry:
        """Read the geometry from `{arch}.block_count`, `attention.head_count(_kv)` (a number
        or one per layer) and `attention.key_length`/`value_length` (else embedding length
        divided by head count). A header without them gives no layers (no KV cache)."""
        n_layers = header.arch_int("block_count") or 0
        key, value = head_dims(header)
        kv_heads = _per_layer(header, "attention.head_count_kv", n_layers)
        if not any(kv_heads):
            kv_heads = _per_layer(header, "attention.head_count", n_layers)
        return cls(tuple(key * h for h in kv_heads), tuple(value * h for h in kv_heads))

    def bytes_per_cell(self, kv_type: KVCacheType) -> float:
        """KV bytes one token takes across all layers (e.g. 23,040 for SmolLM2 in f16)."""
        return kv_cache_bytes(self, KV_CELL_PADDING, kv_type) / KV_CELL_PADDING


def kv_cache_bytes(geometry: KVGeometry, n_ctx: int, kv_type: KVCacheType) -> int:
    """Bytes llama.cpp allocates for the KV cache of one sequence of `n_ctx` tokens."""
    cells = -(-n_ctx // KV_CELL_PADDING) * KV_CELL_PADDING
    per_block, block_bytes = KV_ROW_BLOCKS[kv_type]
    rows = sum(w // per_block for w in (*geometry.k_widths, *geometry.v_widths))
    return cells * rows * block_bytes


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    """What loading a model will take, in bytes.

    Attributes:
        weights_bytes: the file's size plus 10 %.
        kv_bytes: the KV cache at the chosen context and cache type.
    """

    weights_bytes: int
    kv_bytes: int

    @property
    def total_bytes(self) -> int:
        """Weights plus KV cache."""
        return self.weights_bytes + self.kv_bytes


NO_LOCAL_MEMORY = MemoryEstimate(0, 0)
"""The estimate for a model a server holds (Ollama, OpenAI-compatible): nothing here."""


def estimate_load(path: str | os.PathLike[str], options: LoadOptions) -> MemoryEstimate:
    """Estimate a GGUF model's memory with `options` (context, KV cache type).

    `n_ctx=0` means the model's trained context, as in llama.cpp.

    Raises:
        InvalidModelFile: the file is not a usable GGUF.
    """
    header = validate_gguf(path)
    n_ctx = options.n_ctx or header.arch_int("context_length") or 0
    kv = kv_cache_bytes(KVGeometry.from_header(header), n_ctx, options.kv_cache_type)
    return MemoryEstimate(int(header.file_size * WEIGHTS_FACTOR), kv)


def available_ram() -> int:
    """RAM the system can hand out now without swapping (psutil's `available`)."""
    return int(psutil.virtual_memory().available)


def format_size(n_bytes: int) -> str:
    """ "5.2 GiB", or "230 MiB" below a gibibyte."""
    if abs(n_bytes) >= GIB:
        return f"{n_bytes / GIB:.1f} GiB"
    return f"{n_bytes / MIB:.0f} MiB"


class WontFit(UserFacingError):
    """A model load refused because it would not fit the memory that is free.

    Attributes:
        needed_bytes: the new model's estimate.
        free_bytes: available memory minus loaded models' estimates and the margin.
        loaded_count: how many models were loaded.
        loaded_bytes: what they are estimated to use.
    """

    def __init__(
        self, name: str, estimate: MemoryEstimate, free_bytes: int, loaded: tuple[int, int]
    ) -> None:
        count, loaded_bytes = loaded
        needed = estimate.total_bytes
        free = max(0, free_bytes)
        if count:
            them = f"{count} model{'s' if count != 1 else ''} loaded use{'s' if count == 1 else ''}"
            where = f" ({them} {format_size(loaded_bytes)})"
            advice = "Unload a model or choose a smaller quantization."
        else:
            where = ""
            advice = "Choose a smaller quantization or a shorter context."
        super().__init__(
            f"Loading {name} needs ~{format_size(needed)} but only {format_size(free)} is "
            f"free{where}. {advice}",
            details=(
                f"weights {format_size(estimate.weights_bytes)} (file + 10 %), KV cache "
                f"{format_size(estimate.kv_bytes)}; {format_size(MARGIN_BYTES)} is kept free "
                "for the system and llama.cpp's compute buffers."
            ),
        )
        self.needed_bytes = needed
        self.free_bytes = free_bytes
        self.loaded_count = count
        self.loaded_bytes = loaded_bytes


def check_fits(
    path: str | os.PathLike[str],
    estimate: MemoryEstimate,
    available_bytes: int,
    loaded: tuple[int, int] = (0, 0),
    margin_bytes: int = MARGIN_BYTES,
) -> None:
    """Refuse a load whose estimate exceeds what is free.

    Args:
        path: the model (its file name names it in the message).
        estimate: what the load needs.
        available_bytes: memory available now (RAM, plus a discrete GPU's free memory when
            the load offloads to it).
        loaded: (count, estimated bytes) of the models already loaded.
        margin_bytes: memory to keep free.

    Raises:
        WontFit: the estimate exceeds available − loaded − margin.
    """
    free = available_bytes - loaded[1] - margin_bytes
    if estimate.total_bytes > free:
        raise WontFit(Path(os.fspath(path)).name, estimate, free, loaded)


def _per_layer(header: GGUFHeader, suffix: str, n_layers: int) -> tuple[int, ...]:
    """`{arch}.{suffix}` for each of `n_layers` layers (a number repeated, or the array)."""
    value = header.metadata.get(f"{header.architecture}.{suffix}")
    if isinstance(value, list):
        numbers = [v if isinstance(v, int) and not isinstance(v, bool) else 0 for v in value]
        return tuple(numbers[:n_layers])
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * n_layers
    return (0,) * n_layers
