"""Load options as llama.cpp will get them: flash attention for a quantized KV cache, checks.

A quantized KV cache (`kv_cache_type` "q8_0" or "q4_0" quantizes both K and V) needs flash
attention: llama.cpp refuses to create the context otherwise ("quantized V cache requires
flash_attn to be enabled"), and llama-cpp-python maps `flash_attn=False` to *disabled*, not to
llama.cpp's own "auto" that would switch it on. So a quantized cache asked for without flash
attention gets it turned on here, before the worker starts, and the load's notice says so.
A model whose attention head size is not a multiple of the quantized type's block (32) cannot
use it at all; that is refused here with a clear message instead of llama.cpp's log line.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtimes.base import KVCacheType, LoadOptions
from runtimes.errors import UserFacingError
from runtimes.gguf_header import GGUFHeader
from runtimes.llamacpp.protocol import Message

KV_BLOCK_SIZE: dict[str, int] = {"f16": 1, "q8_0": 32, "q4_0": 32}
"""Elements per block of each KV cache type (ggml's `blck_size`)."""


class KVCacheTypeUnsupported(UserFacingError):
    """The model's attention head size cannot be stored in the asked-for KV cache type."""


@dataclass(frozen=True, slots=True)
class WorkerLoad:
    """Exactly what the worker is asked to load, after the checks of `resolve_load`.

    Attributes:
        n_ctx: context length in tokens.
        n_gpu_layers: layers on the GPU (-1 all).
        n_threads: decode threads.
        n_batch: prompt-processing batch size.
        flash_attn: whether flash attention is requested.
        kv_cache_type: type of both the K and the V cache.
        use_mmap: map the file instead of reading it.
        use_mlock: pin the weights in RAM.
        flash_attn_forced: flash attention is on only because the KV cache type needs it.
    """

    n_ctx: int
    n_gpu_layers: int
    n_threads: int
    n_batch: int
    flash_attn: bool
    kv_cache_type: KVCacheType
    use_mmap: bool
    use_mlock: bool
    flash_attn_forced: bool = False

    def to_wire(self, path: str, template: str) -> Message:
        """The worker's "load" request for `path` with prompt format `template`."""
        return {
            "op": "load",
            "path": path,
            "n_ctx": self.n_ctx,
            "n_gpu_layers": self.n_gpu_layers,
            "n_threads": self.n_threads,
            "n_batch": self.n_batch,
            "flash_attn": self.flash_attn,
            "kv_cache_type": self.kv_cache_type,
            "use_mmap": self.use_mmap,
            "use_mlock": self.use_mlock,
            "template": template,
        }


def head_dims(header: GGUFHeader) -> tuple[int, int]:
    """(K, V) attention head size: `attention.key_length` / `value_length` when the file has
    them, else `embedding_length / head_count`; (0, 0) when the header says neither."""
    heads = _largest_int(header, "attention.head_count")
    embedding = header.arch_int("embedding_length") or 0
    fallback = embedding // heads if heads else 0
    key = header.arch_int("attention.key_length") or fallback
    value = header.arch_int("attention.value_length") or fallback
    return key, value


def resolve_load(options: LoadOptions, header: GGUFHeader, n_threads: int) -> WorkerLoad:
    """Check `options` against the model and settle what the worker will be asked for.

    Raises:
        KVCacheTypeUnsupported: the model's head size is not a multiple of the KV type's block.
    """
    kv = options.kv_cache_type
    block = KV_BLOCK_SIZE[kv]
    for which, size in zip(("key", "value"), head_dims(header), strict=True):
        if size and size % block:
            raise KVCacheTypeUnsupported(
                f"This model's attention {which} heads have {size} values, which a {kv} KV "
                f"cache cannot store (it needs a multiple of {block}). Choose the f16 KV cache."
            )
    forced = kv != "f16" and not options.flash_attn
    return WorkerLoad(
        n_ctx=options.n_ctx,
        n_gpu_layers=options.n_gpu_layers,
        n_threads=n_threads,
        n_batch=options.n_batch,
        flash_attn=options.flash_attn or forced,
        kv_cache_type=kv,
        use_mmap=options.use_mmap,
        use_mlock=options.use_mlock,
        flash_attn_forced=forced,
    )


def _largest_int(header: GGUFHeader, suffix: str) -> int:
    """`{arch}.{suffix}`, or the largest entry of a per-layer array; 0 when absent."""
    value = header.metadata.get(f"{header.architecture}.{suffix}")
    if isinstance(value, list):
        numbers = [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
        return max(numbers, default=0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
