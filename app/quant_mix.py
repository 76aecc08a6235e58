"""Per-tensor types that llama-quantize picks for a file type (llama.cpp src/llama-quant.cpp)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

__all__ = [
    "FILE_TYPES",
    "QUANT_NAMES",
    "MixContext",
    "assign_types",
    "file_type_id",
    "tensor_bytes",
]

_T = GGMLQuantizationType

# file type name -> (llama_ftype id, default ggml type); llama.h and llama_ftype_get_default_type.
FILE_TYPES: dict[str, tuple[int, int]] = {
    "F16": (1, _T.F16),
    "BF16": (32, _T.BF16),
    "Q8_0": (7, _T.Q8_0),
    "Q6_K": (18, _T.Q6_K),
    "Q5_K_M": (17, _T.Q5_K),
    "Q5_K_S": (16, _T.Q5_K),
    "Q4_K_M": (15, _T.Q4_K),
    "Q4_K_S": (14, _T.Q4_K),
    "Q4_0": (2, _T.Q4_0),
    "Q4_1": (3, _T.Q4_1),
    "Q3_K_L": (13, _T.Q3_K),
    "Q3_K_M": (12, _T.Q3_K),
    "Q3_K_S": (11, _T.Q3_K),
    "Q2_K": (10, _T.Q2_K),
    "IQ4_XS": (30, _T.IQ4_XS),
}
QUANT_NAMES: tuple[str, ...] = tuple(FILE_TYPES)

# tensor_type_fallback: a type whose block does not divide the row length falls back.
_FALLBACK = {
    _T.IQ4_XS: _T.IQ4_NL,
    _T.Q2_K: _T.Q4_0,
    _T.Q3_K: _T.Q4_0,
    _T.Q4_K: _T.Q5_0,
    _T.Q5_K: _T.Q5_1,
    _T.Q6_K: _T.Q8_0,
}
_UNQUANTIZED = (_T.F32, _T.F16, _T.BF16)
_LAYER = re.compile(r"blk\.(\d+)\.")


@dataclass(frozen=True, slots=True)
class MixContext:
    """The model facts llama-quantize consults.

    Attributes:
        n_layer: Number of blocks (`n_ffn_down` and friends).
        n_expert: `{arch}.expert_count` (0 for dense models).
        n_gqa: `n_head / n_head_kv`.
        is_70b: Whether llama.cpp classifies the model as LLM_TYPE_70B (attn_v bump).
    """

    n_layer: int
    n_expert: int
    n_gqa: int
    is_70b: bool


def file_type_id(quant: str) -> int:
    """Return the `general.file_type` id of a file type name such as "Q4_K_M"."""
    return FILE_TYPES[_check(quant)][0]


def tensor_bytes(shape: Sequence[int], ggml_type: int) -> int:
    """Return the data bytes of a tensor (shape ne0 first) stored as `ggml_type`."""
    block, size = GGML_QUANT_SIZES[_T(ggml_type)]
    n = 1
    for d in shape:
        n *= d
    return n // int(block) * int(size)


def _check(quant: str) -> str:
    if quant not in FILE_TYPES:
        raise ValueError(f"unsupported file type {quant!r}; choose one of {', '.join(QUANT_NAMES)}")
    return quant


def _category(name: str) -> str:
    """tensor_get_category: broad roles matched on substrings of the tensor name."""
    if name == "output.weight":
        return "output"
    if name == "token_embd.weight":
        return "token_embd"
    for needle, cat in (
        ("attn_qkv.weight", "attn_v"),
        ("attn_kv_b.weight", "attn_v"),
        ("attn_v.weight", "attn_v"),
        ("attn_k.weight", "attn_k"),
        ("attn_q.weight", "attn_q"),
        ("attn_output.weight", "attn_output"),
        ("ffn_up", "ffn_up"),
        ("ffn_gate", "ffn_gate"),
        ("ffn_down", "ffn_down"),
    ):
        if needle in name:
            return cat
    return "other"


def _allows_quantization(name: str, shape: Sequence[int]) -> bool:
    """tensor_allows_quantization for the architectures planned here."""
    return (
        len(shape) >= 2
        and name.endswith("weight")
        and "_norm.weight" not in name
        and "ffn_gate_inp.weight" not in name
    )


def _use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _fallback(ncols: int, t: int) -> int:
    block = GGML_QUANT_SIZES[_T(t)][0]
    if ncols % block == 0:
        return t
    new = _FALLBACK.get(_T(t), _T(t))
    return int(new) if ncols % GGML_QUANT_SIZES[new][0] == 0 else int(_T.F16)


class _Counters:
    """The running counters of quantize_state_impl (i_attention_wv, i_ffn_down)."""

    __slots__ = ("attn_v", "ffn_down", "n_attn_v")

    def __init__(self, n_attn_v: int) -> None:
        self.attn_v = 0
        self.ffn_down = 0
        self.n_attn_v = n_attn_v


def _attn_v_type(t: int, quant: str, ctx: MixContext, c: _Counters) -> int:
    i = c.attn_v
    c.attn_v += 1
    if quant == "Q2_K":
        t = _T.Q4_K if ctx.n_gqa >= 4 else _T.Q3_K
    elif quant == "Q3_K_M":
        t = _T.Q5_K if i < 2 else _T.Q4_K
    elif quant == "Q3_K_L" or (quant == "IQ4_XS" and ctx.n_gqa >= 4):
        t = _T.Q5_K
    elif quant in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i, c.n_attn_v):
        t = _T.Q6_K
    elif quant == "Q4_K_S" and i < 4:
        t = _T.Q5_K
    if ctx.is_70b and t in (_T.Q3_K, _T.Q4_K):
        t = _T.Q5_K
    if ctx.n_expert == 8:
        t = _T.Q8_0
    return int(t)


def _ffn_down_type(t: int, name: str, quant: str, ctx: MixContext, c: _Counters) -> int:
    i, n = c.ffn_down, ctx.n_layer
    c.ffn_down += 1
    if ctx.n_expert > 1:  # experts are not consecutive: llama.cpp parses the layer from the name
        found = _LAYER.match(name)
        i = int(found.group(1)) if found else i
    if quant == "Q2_K":
        return int(_T.Q3_K)
    if quant == "Q3_K_M":
        return int(_T.Q5_K if i < n // 16 else _T.Q4_K)
    if quant == "Q3_K_L":
        return int(_T.Q5_K)
    if quant == "Q4_K_M":
        return int(_T.Q6_K) if _use_more_bits(i, n) else t
    if quant in ("IQ4_XS", "Q4_K_S") and i < n // 8:  # IQ4_XS rule assumes no imatrix
        return int(_T.Q5_K)
    if quant == "Q5_K_M" and _use_more_bits(i, n):
        return int(_T.Q6_K)
    return t


def _attn_output_type(t: int, quant: str, ctx: MixContext) -> int:
    if ctx.n_expert == 8:
        bumped = ("Q2_K", "Q3_K_S", "Q3_K_M", "Q4_K_S", "Q4_K_M", "IQ4_XS")
        return int(_T.Q5_K) if quant in bumped else t
    table = {"Q2_K": _T.Q3_K, "Q3_K_M": _T.Q4_K, "Q3_K_L": _T.Q5_K}
    return int(table.get(quant, t))


def _mixed_type(
    name: str, ncols: int, quant: str, ctx: MixContext, c: _Counters, tied: bool
) -> int:
    """llama_tensor_get_type_impl for one quantizable tensor (before the fallback)."""
    t = int(FILE_TYPES[quant][1])
    cat = _category(name)
    if cat == "output" or (tied and cat == "token_embd"):
        if ncols % GGML_QUANT_SIZES[_T(t)][0] != 0:
            return int(_T.Q8_0)
        return t if t == _T.Q8_0 else int(_T.Q6_K)
    if cat == "attn_v":
        return _attn_v_type(t, quant, ctx, c)
    if cat == "attn_k" and ctx.n_expert == 8:
        return int(_T.Q8_0)
    if cat == "ffn_down":
        return _ffn_down_type(t, name, quant, ctx, c)
    if cat == "attn_output":
        return _attn_output_type(t, quant, ctx)
    return t


def assign_types(
    tensors: Sequence[tuple[str, tuple[int, ...]]], quant: str, ctx: MixContext
) -> tuple[int, ...]:
    """Choose each tensor's ggml type as llama-quantize would from an F16/BF16 source.

    Args:
        tensors: (name, shape ne0 first) in llama.cpp's weight order (layer, then name).
        quant: File type name, one of `QUANT_NAMES`.
        ctx: Model facts the rules depend on.

    Returns:
        One ggml type id per tensor. Tensors that are never quantized (norms, biases,
        router weights) are F32.
    """
    default = int(FILE_TYPES[_check(quant)][1])
    names = [name for name, _ in tensors]
    tied = "output.weight" not in names
    counters = _Counters(sum(_category(n) == "attn_v" for n in names))
    types: list[int] = []
    for name, shape in tensors:
        if not _allows_quantization(name, shape):
            types.append(int(_T.F32))
        elif default in _UNQUANTIZED:
            types.append(default)
        else:
            chosen = _mixed_type(name, shape[0], quant, ctx, counters, tied)
            types.append(_fallback(shape[0], chosen))
    return tuple(types)
