"""The settings a worker's "load" request carries to `llama_cpp.Llama` (worker side, no gguf)."""

from __future__ import annotations

from dataclasses import dataclass

from runtimes.llamacpp import protocol
from runtimes.llamacpp.protocol import Message, ProtocolError

GGML_KV_TYPES = {"f16": "GGML_TYPE_F16", "q8_0": "GGML_TYPE_Q8_0", "q4_0": "GGML_TYPE_Q4_0"}
"""KV cache type name -> the `llama_cpp` constant of its ggml type."""


@dataclass(frozen=True, slots=True)
class LlamaSettings:
    """What `Engine.load` passes to `llama_cpp.Llama` (see `protocol`'s "load" request)."""

    n_ctx: int
    n_gpu_layers: int
    n_threads: int
    n_batch: int
    flash_attn: bool
    kv_cache_type: str
    use_mmap: bool
    use_mlock: bool


def load_settings_from_wire(message: Message) -> LlamaSettings:
    """The settings of a "load" request; raises ProtocolError on a missing or bad field."""
    kv = protocol.get_str(message, "kv_cache_type")
    if kv not in GGML_KV_TYPES:
        raise ProtocolError(f"unknown kv_cache_type {kv!r}")
    return LlamaSettings(
        n_ctx=protocol.get_int(message, "n_ctx"),
        n_gpu_layers=protocol.get_int(message, "n_gpu_layers"),
        n_threads=protocol.get_int(message, "n_threads"),
        n_batch=protocol.get_int(message, "n_batch"),
        flash_attn=protocol.get_bool(message, "flash_attn"),
        kv_cache_type=kv,
        use_mmap=protocol.get_bool(message, "use_mmap"),
        use_mlock=protocol.get_bool(message, "use_mlock"),
    )
