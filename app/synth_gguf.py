"""Synthetic GGUF headers of real architectures: exact tensor plans, file sizes, sparse files."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFValueType, GGUFWriter, TokenType

from app.quant_mix import FILE_TYPES, QUANT_NAMES, MixContext, assign_types, tensor_bytes

__all__ = [
    "ALIGNMENT",
    "ARCHITECTURES",
    "QUANT_NAMES",
    "ArchConfig",
    "PlannedTensor",
    "file_size_bytes",
    "header_size_bytes",
    "tensor_data_bytes",
    "tensor_plan",
    "write_sparse_gguf",
]

ALIGNMENT = 32
ARCHITECTURES = ("llama", "qwen2", "qwen3", "qwen3moe", "gemma3", "phi3", "deepseek2")
_LAYER = re.compile(r"blk\.(\d+)\.")
Shape = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ArchConfig:
    """The hyper-parameters that decide a model's tensors (0 or False = absent).

    Keys match resources/catalog.json "arch" objects; `key_length`/`value_length` default to
    `embedding_length / head_count`; MLA models (deepseek2) use the `*_lora_rank` and
    `qk_*`/`v_head_dim` fields as in the Hugging Face config.
    """

    architecture: str
    block_count: int
    embedding_length: int
    feed_forward_length: int
    head_count: int
    head_count_kv: int = 0
    key_length: int = 0
    value_length: int = 0
    vocab_size: int = 0
    context_length: int = 0
    tied_embeddings: bool = False
    sliding_window: int = 0
    sliding_window_pattern: int = 0
    expert_count: int = 0
    expert_used_count: int = 0
    expert_feed_forward_length: int = 0
    expert_shared_count: int = 0
    leading_dense_block_count: int = 0
    kv_lora_rank: int = 0
    q_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    attention_bias: bool = False
    rope_freq_base: float = 10000.0
    rms_norm_eps: float = 1e-6

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ArchConfig:
        """Build a config from a mapping with the field names; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a plain JSON-ready dict."""
        return asdict(self)

    @property
    def n_head_kv(self) -> int:
        """KV heads (defaults to the query heads)."""
        return self.head_count_kv or self.head_count

    @property
    def head_dim_k(self) -> int:
        """Key head size."""
        return self.key_length or self.embedding_length // self.head_count

    @property
    def head_dim_v(self) -> int:
        """Value head size."""
        return self.value_length or self.head_dim_k


@dataclass(frozen=True, slots=True)
class PlannedTensor:
    """One tensor-info entry: name, shape (ne0 first, as GGUF stores it) and ggml type id."""

    name: str
    shape: Shape
    ggml_type: int

    @property
    def n_bytes(self) -> int:
        """Data bytes of the tensor (unpadded)."""
        return tensor_bytes(self.shape, self.ggml_type)


def _attn(c: ArchConfig) -> Iterator[tuple[str, Shape]]:
    e, q, kv = c.embedding_length, c.head_count * c.head_dim_k, c.n_head_kv * c.head_dim_k
    v = c.n_head_kv * c.head_dim_v
    yield "attn_norm.weight", (e,)
    yield "attn_q.weight", (e, q)
    yield "attn_k.weight", (e, kv)
    yield "attn_v.weight", (e, v)
    yield "attn_output.weight", (c.head_count * c.head_dim_v, e)
    if c.attention_bias:
        yield from (("attn_q.bias", (q,)), ("attn_k.bias", (kv,)), ("attn_v.bias", (v,)))
    if c.architecture in ("qwen3", "qwen3moe", "gemma3"):
        yield from (
            ("attn_q_norm.weight", (c.head_dim_k,)),
            ("attn_k_norm.weight", (c.head_dim_k,)),
        )


def _dense_ffn(e: int, f: int) -> Iterator[tuple[str, Shape]]:
    yield from (("ffn_gate.weight", (e, f)), ("ffn_up.weight", (e, f)), ("ffn_down.weight", (f, e)))


def _experts(c: ArchConfig) -> Iterator[tuple[str, Shape]]:
    e, f, n = c.embedding_length, c.expert_feed_forward_length, c.expert_count
    yield "ffn_gate_inp.weight", (e, n)
    yield from (("ffn_gate_exps.weight", (e, f, n)), ("ffn_up_exps.weight", (e, f, n)))
    yield "ffn_down_exps.weight", (f, e, n)


def _block_standard(c: ArchConfig, il: int) -> Iterator[tuple[str, Shape]]:
    """llama, qwen2, qwen3, qwen3moe, gemma3 (load_arch_tensors of each)."""
    e = c.embedding_length
    yield from _attn(c)
    yield "ffn_norm.weight", (e,)
    if c.architecture == "qwen3moe":
        yield from _experts(c)
    else:
        yield from _dense_ffn(e, c.feed_forward_length)
    if c.architecture == "gemma3":
        yield from (("post_attention_norm.weight", (e,)), ("post_ffw_norm.weight", (e,)))


def _block_phi3(c: ArchConfig, il: int) -> Iterator[tuple[str, Shape]]:
    """phi3: fused attn_qkv and a fused gate+up `ffn_up` of 2 * n_ff rows."""
    e, f, kv = c.embedding_length, c.feed_forward_length, c.n_head_kv * c.head_dim_k
    yield "attn_norm.weight", (e,)
    yield "attn_qkv.weight", (e, e + 2 * kv)
    yield "attn_output.weight", (e, e)
    yield "ffn_norm.weight", (e,)
    yield from (("ffn_up.weight", (e, 2 * f)), ("ffn_down.weight", (f, e)))


def _block_deepseek2(c: ArchConfig, il: int) -> Iterator[tuple[str, Shape]]:
    """deepseek2 with split attn_k_b/attn_v_b (MLA), as current converters write it."""
    e, h, rope, nope = c.embedding_length, c.head_count, c.qk_rope_head_dim, c.qk_nope_head_dim
    kvr, qr = c.kv_lora_rank, c.q_lora_rank
    yield "attn_norm.weight", (e,)
    yield "attn_kv_a_norm.weight", (kvr,)
    if qr:
        yield "attn_q_a_norm.weight", (qr,)
        yield from (("attn_q_a.weight", (e, qr)), ("attn_q_b.weight", (qr, h * (nope + rope))))
    else:
        yield "attn_q.weight", (e, h * (nope + rope))
    yield "attn_kv_a_mqa.weight", (e, kvr + rope)
    yield "attn_k_b.weight", (nope, kvr, h)
    yield "attn_v_b.weight", (kvr, c.v_head_dim, h)
    yield "attn_output.weight", (h * c.v_head_dim, e)
    yield "ffn_norm.weight", (e,)
    if il < c.leading_dense_block_count:
        yield from _dense_ffn(e, c.feed_forward_length)
        return
    yield from _experts(c)
    yield "exp_probs_b.bias", (c.expert_count,)
    shared = c.expert_feed_forward_length * c.expert_shared_count
    yield from (("ffn_gate_shexp.weight", (e, shared)), ("ffn_up_shexp.weight", (e, shared)))
    yield "ffn_down_shexp.weight", (shared, e)


_BLOCKS: dict[str, Callable[[ArchConfig, int], Iterator[tuple[str, Shape]]]] = {
    "phi3": _block_phi3,
    "deepseek2": _block_deepseek2,
}


def _weight_order(name: str) -> tuple[int, str]:
    """llama_model_loader's weight_name_comparer: layer first (-1 outside blocks), then name."""
    found = _LAYER.match(name)
    return (int(found.group(1)) if found else -1, name)


def _shapes(c: ArchConfig) -> list[tuple[str, Shape]]:
    if c.architecture not in ARCHITECTURES:
        raise ValueError(f"unsupported architecture {c.architecture!r}")
    e = c.embedding_length
    out: list[tuple[str, Shape]] = [("token_embd.weight", (e, c.vocab_size))]
    out.append(("output_norm.weight", (e,)))
    if not c.tied_embeddings:
        out.append(("output.weight", (e, c.vocab_size)))
    block = _BLOCKS.get(c.architecture, _block_standard)
    for il in range(c.block_count):
        out.extend((f"blk.{il}.{name}", shape) for name, shape in block(c, il))
    return sorted(out, key=lambda item: _weight_order(item[0]))


def _is_70b(c: ArchConfig) -> bool:
    """LLM_TYPE_70B as load_arch_hparams decides it (llama: 80 GQA layers; qwen2: 80 layers)."""
    if c.block_count != 80:
        return False
    if c.architecture == "llama":
        return c.expert_count != 8 and c.n_head_kv != c.head_count
    return c.architecture == "qwen2"


def tensor_plan(config: ArchConfig, quant: str) -> tuple[PlannedTensor, ...]:
    """Return the tensors llama-quantize writes for `config` at file type `quant`.

    Args:
        config: The architecture's hyper-parameters.
        quant: File type name such as "Q4_K_M" (see `QUANT_NAMES`).

    Returns:
        The tensor-info table in the order llama-quantize writes it.

    Raises:
        ValueError: For an unsupported architecture or file type.
    """
    shapes = _shapes(config)
    ctx = MixContext(
        n_layer=config.block_count,
        n_expert=config.expert_count,
        n_gqa=config.head_count // config.n_head_kv,
        is_70b=_is_70b(config),
    )
    types = assign_types(shapes, quant, ctx)
    return tuple(PlannedTensor(n, s, t) for (n, s), t in zip(shapes, types, strict=True))


def _pad(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def tensor_data_bytes(plan: tuple[PlannedTensor, ...]) -> int:
    """Return the size of the data region: every tensor padded to the 32-byte alignment."""
    return sum(_pad(t.n_bytes) for t in plan)


def _tokens(n_vocab: int) -> tuple[list[str], list[int]]:
    """Short synthetic SPM vocabulary: specials, 256 byte tokens, then t<i>.

    `<|endoftext|>` is there because llama.cpp looks it up in models named "phi3"/"phi-3".
    """
    tokens = ["<unk>", "<s>", "</s>", "<|endoftext|>"] + [f"<0x{b:02X}>" for b in range(256)]
    control = [TokenType.CONTROL] * 3
    types = [TokenType.UNKNOWN, *control] + [TokenType.BYTE] * 256
    tokens = tokens[:n_vocab] + [f"t{i}" for i in range(len(tokens), n_vocab)]
    types = [int(t) for t in types[:n_vocab]] + [int(TokenType.NORMAL)] * (n_vocab - len(types))
    return tokens, types


def _add_hparams(w: GGUFWriter, c: ArchConfig) -> None:
    w.add_context_length(c.context_length or 4096)
    w.add_embedding_length(c.embedding_length)
    w.add_block_count(c.block_count)
    w.add_feed_forward_length(c.feed_forward_length)
    w.add_head_count(c.head_count)
    w.add_rope_freq_base(float(c.rope_freq_base))
    w.add_layer_norm_rms_eps(float(c.rms_norm_eps))
    w.add_vocab_size(c.vocab_size)
    if c.architecture == "deepseek2":
        _add_mla(w, c)
        return
    w.add_head_count_kv(c.n_head_kv)
    w.add_key_length(c.head_dim_k)
    w.add_value_length(c.head_dim_v)
    if c.architecture != "gemma3":
        w.add_rope_dimension_count(c.head_dim_k)
    if c.sliding_window:
        w.add_sliding_window(c.sliding_window)
    if c.expert_count:
        w.add_expert_count(c.expert_count)
        w.add_expert_used_count(c.expert_used_count)
        w.add_expert_feed_forward_length(c.expert_feed_forward_length)


def _add_mla(w: GGUFWriter, c: ArchConfig) -> None:
    """MLA as convert_hf_to_gguf's DeepSeek2 class writes it: MQA with larger heads."""
    w.add_head_count_kv(1)
    w.add_key_length(c.kv_lora_rank + c.qk_rope_head_dim)
    w.add_value_length(c.kv_lora_rank)
    w.add_key_length_mla(c.qk_nope_head_dim + c.qk_rope_head_dim)
    w.add_value_length_mla(c.v_head_dim)
    w.add_rope_dimension_count(c.qk_rope_head_dim)
    w.add_kv_lora_rank(c.kv_lora_rank)
    if c.q_lora_rank:
        w.add_q_lora_rank(c.q_lora_rank)
    w.add_leading_dense_block_count(c.leading_dense_block_count)
    w.add_expert_count(c.expert_count)
    w.add_expert_used_count(c.expert_used_count)
    w.add_expert_feed_forward_length(c.expert_feed_forward_length)
    w.add_expert_shared_count(c.expert_shared_count)


def _writer(config: ArchConfig, quant: str, path: Path, name: str) -> GGUFWriter:
    """A GGUFWriter holding all metadata and tensor infos (no file opened yet)."""
    w = GGUFWriter(path, config.architecture)
    w.add_name(name or f"synthetic model {quant}")
    w.add_file_type(FILE_TYPES[quant][0])
    if quant not in ("F16", "BF16"):
        w.add_quantization_version(2)
    _add_hparams(w, config)
    tokens, types = _tokens(config.vocab_size)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(np.zeros(len(tokens), dtype=np.float32).tolist())
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    for t in tensor_plan(config, quant):
        w.add_tensor_info(t.name, t.shape[::-1], np.dtype(np.float32), t.n_bytes, t.ggml_type)
    return w


_SCALAR_SIZES = {
    GGUFValueType.UINT8: 1, GGUFValueType.INT8: 1, GGUFValueType.BOOL: 1,
    GGUFValueType.UINT16: 2, GGUFValueType.INT16: 2,
    GGUFValueType.UINT32: 4, GGUFValueType.INT32: 4, GGUFValueType.FLOAT32: 4,
    GGUFValueType.UINT64: 8, GGUFValueType.INT64: 8, GGUFValueType.FLOAT64: 8,
}  # fmt: skip


def _value_size(value: Any, vtype: GGUFValueType, sub: GGUFValueType | None) -> int:
    if vtype == GGUFValueType.STRING:
        return 8 + len(value.encode() if isinstance(value, str) else value)
    if vtype == GGUFValueType.ARRAY:
        assert sub is not None or len(value) > 0
        item = sub or GGUFValueType.get_type(value[0])
        if item in _SCALAR_SIZES:
            return 12 + _SCALAR_SIZES[item] * len(value)
        return 12 + sum(_value_size(v, item, None) for v in value)
    return _SCALAR_SIZES[vtype]


def _header_size(w: GGUFWriter) -> int:
    """Bytes up to the data region, exactly as GGUFWriter serializes them, padded to 32."""
    size = 4 + 4 + 8 + 8
    for key, val in w.kv_data[0].items():
        size += 8 + len(key.encode()) + 4 + _value_size(val.value, val.type, val.sub_type)
    for name, info in w.tensors[0].items():
        size += 8 + len(name.encode()) + 4 + 8 * len(info.shape) + 4 + 8
    return _pad(size)


def header_size_bytes(config: ArchConfig, quant: str, *, name: str = "") -> int:
    """Return the bytes before the tensor data (metadata, vocabulary, tensor infos, padding)."""
    return _header_size(_writer(config, quant, Path(os.devnull), name))


def file_size_bytes(config: ArchConfig, quant: str, *, name: str = "") -> int:
    """Return the size of the synthetic GGUF file: header plus padded tensor data."""
    w = _writer(config, quant, Path(os.devnull), name)
    return _header_size(w) + tensor_data_bytes(tensor_plan(config, quant))


def write_sparse_gguf(config: ArchConfig, quant: str, path: Path, *, name: str = "") -> Path:
    """Write the full GGUF header and leave the tensor data as a sparse all-zero hole.

    Args:
        config: Architecture hyper-parameters.
        quant: File type name.
        path: Destination file (overwritten).
        name: `general.name`; a synthetic name when empty.

    Returns:
        The path written; its size equals `file_size_bytes(config, quant, name=name)`.
    """
    path = Path(path)
    w = _writer(config, quant, path, name)
    header = _header_size(w)
    try:
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
    finally:
        w.close()
    with path.open("r+b") as f:
        f.truncate(header + tensor_data_bytes(tensor_plan(config, quant)))
    return path
