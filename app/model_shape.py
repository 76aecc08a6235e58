"""The memory-relevant shape of a GGUF model: layers, heads, KV widths, SWA, MLA, tensor bytes.

`ModelShape.from_header` reads it from a parsed header (a local file, a remote header fetched
with HTTP Range, or a synthetic header built from a published config); the fit estimator
(`app.fit`) works only from this. Facts and defaults follow llama.cpp (reference/fit.md §1.2,
§2.2–2.5): `head_count_kv` defaults to `head_count`; head sizes default to
`embedding_length / head_count`; sliding-window layers follow the architecture's pattern;
an MLA model (DeepSeek V2/V3: `attention.kv_lora_rank` set) caches only its latent K in the
llama.cpp vendored by llama-cpp-python 0.3.36 (`has_v = !is_mla`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from runtimes.gguf_header import GGUFHeader
from runtimes.llamacpp.options import head_dims

SWA_PATTERNS: dict[str, int] = {
    "gemma2": 2,
    "gemma3": 6,
    "cohere2": 4,
    "exaone4": 4,
    "gpt-oss": 2,
}
"""Architectures whose sliding-window layers follow `il % n < n - 1` (llama-model.cpp
`set_swa_pattern(n)`): in every n layers, n - 1 use the window and the last is global."""

_BLOCK = re.compile(r"^blk\.(\d+)\.")


@dataclass(frozen=True, slots=True)
class ModelShape:
    """What the estimator needs to know about a model.

    Attributes:
        name: a display name (general.name, else the file name).
        architecture: general.architecture.
        n_layers: repeating blocks (`block_count`).
        n_embd: embedding length.
        n_ff: feed-forward length (largest per layer).
        n_head: attention heads (largest per layer).
        n_vocab: vocabulary size.
        n_ctx_train: trained context length (0 when unknown).
        k_widths: K values cached per token for each layer (`key_length × head_count_kv`).
        v_widths: V values cached per token for each layer (0: no V cache, MLA).
        swa_layers: which layers use the sliding window.
        n_swa: the sliding window (0 when none).
        is_mla: multi-head latent attention (DeepSeek V2/V3).
        expert_count: routed experts (0: dense).
        expert_used_count: experts used per token.
        layer_bytes: tensor bytes of each block.
        layer_expert_bytes: bytes of the routed-expert tensors (`*_exps`) of each block.
        input_bytes: bytes outside the blocks that stay on the CPU (token embedding, ...).
        output_bytes: bytes of the output layer (output norm + output matrix; for tied
            embeddings, the token embedding, which then also sits on the GPU as output).
        tied_embeddings: the output matrix is the token embedding.
        layer_repack_bytes: bytes of each block's tensors that llama.cpp's CPU backend
            copies into an interleaved layout on x86 with AVX2 (Q4_0, Q4_K, IQ4_NL with rows
            in multiples of 8): they take RAM twice on a CPU load (mapped file + copy).
        n_merges: BPE merges in the tokenizer (llama.cpp keeps them in memory).
        weights_bytes: all tensor bytes.
        file_size: bytes of the file(s).
        parameter_count: parameters (general.parameter_count, else the tensors' elements).
        quantization: file type label ("Q4_K_M"), or the dominant tensor type.
    """

    name: str
    architecture: str
    n_layers: int
    n_embd: int
    n_ff: int
    n_head: int
    n_vocab: int
    n_ctx_train: int
    k_widths: tuple[int, ...]
    v_widths: tuple[int, ...]
    swa_layers: tuple[bool, ...]
    n_swa: int
    is_mla: bool
    expert_count: int
    expert_used_count: int
    layer_bytes: tuple[int, ...]
    layer_expert_bytes: tuple[int, ...]
    input_bytes: int
    output_bytes: int
    tied_embeddings: bool
    layer_repack_bytes: tuple[int, ...]
    n_merges: int
    weights_bytes: int
    file_size: int
    parameter_count: int
    quantization: str

    @classmethod
    def from_header(cls, header: GGUFHeader, name: str = "") -> ModelShape:
        """Read the shape from a parsed header.

        Raises:
            ValueError: the header lacks what any estimate needs (architecture, block count,
                embedding length or tensors), with the reason as message.
        """
        from app.gguf import parameter_count, quantization_label

        arch = header.architecture
        n_layers = header.arch_int("block_count") or 0
        n_embd = header.arch_int("embedding_length") or 0
        if not arch or n_layers <= 0 or n_embd <= 0 or not header.tensors:
            missing = [
                what
                for what, ok in (
                    ("general.architecture", bool(arch)),
                    (f"{arch or '{arch}'}.block_count", n_layers > 0),
                    (f"{arch or '{arch}'}.embedding_length", n_embd > 0),
                    ("tensors", bool(header.tensors)),
                )
                if not ok
            ]
            raise ValueError(f"the header has no {', '.join(missing)}")
        k_widths, v_widths, is_mla = _kv_widths(header, n_layers)
        n_swa = header.arch_int("attention.sliding_window") or 0
        groups = tensor_groups(
            ((t.name, t.n_bytes, t.ggml_type, t.shape) for t in header.tensors), n_layers
        )
        return cls(
            name=name or header.get_str("general.name") or header.source.rsplit("/", 1)[-1],
            architecture=arch,
            n_layers=n_layers,
            n_embd=n_embd,
            n_ff=max(_per_layer(header, "feed_forward_length", n_layers), default=0),
            n_head=max(_per_layer(header, "attention.head_count", n_layers), default=0),
            n_vocab=_vocab(header),
            n_ctx_train=header.arch_int("context_length") or 0,
            k_widths=k_widths,
            v_widths=v_widths,
            swa_layers=_swa_layers(header, n_layers, n_swa),
            n_swa=n_swa,
            is_mla=is_mla,
            expert_count=header.arch_int("expert_count") or 0,
            expert_used_count=header.arch_int("expert_used_count") or 0,
            layer_bytes=groups.layers,
            layer_expert_bytes=groups.experts,
            input_bytes=groups.input_bytes,
            output_bytes=groups.output_bytes,
            tied_embeddings=groups.tied,
            layer_repack_bytes=groups.repack,
            n_merges=header.array_lengths.get("tokenizer.ggml.merges", 0),
            weights_bytes=sum(t.n_bytes for t in header.tensors),
            file_size=header.file_size,
            parameter_count=parameter_count(header),
            quantization=quantization_label(header)[0],
        )

    @property
    def is_moe(self) -> bool:
        """Whether tokens are routed to a subset of experts."""
        return self.expert_count > 1 and 0 < self.expert_used_count < self.expert_count

    @property
    def active_bytes_per_token(self) -> int:
        """Weight bytes read to generate one token (reference/fit.md §6.1).

        Every block's tensors except the unused share of routed experts, and the output
        matrix; the token embedding is a row lookup unless it is also the output (tied).
        """
        dense = sum(self.layer_bytes) - sum(self.layer_expert_bytes)
        experts = sum(self.layer_expert_bytes)
        if self.is_moe:
            experts = experts * self.expert_used_count // self.expert_count
        return dense + experts + self.output_bytes


def _kv_widths(header: GGUFHeader, n_layers: int) -> tuple[tuple[int, ...], tuple[int, ...], bool]:
    key, value = head_dims(header)
    kv_heads = _per_layer(header, "attention.head_count_kv", n_layers)
    if not any(kv_heads):
        kv_heads = _per_layer(header, "attention.head_count", n_layers)
    is_mla = bool(header.arch_int("attention.kv_lora_rank"))
    k_widths = tuple(key * h for h in kv_heads)
    v_widths = tuple(0 if is_mla else value * h for h in kv_heads)
    return k_widths, v_widths, is_mla


def _swa_layers(header: GGUFHeader, n_layers: int, n_swa: int) -> tuple[bool, ...]:
    """Which layers use the sliding window: a per-layer bool array in the header when the
    converter wrote one, else the architecture's fixed pattern; none without a window."""
    if n_swa <= 0:
        return (False,) * n_layers
    value = header.metadata.get(f"{header.architecture}.attention.sliding_window_pattern")
    if isinstance(value, list) and len(value) >= n_layers:
        return tuple(bool(v) for v in value[:n_layers])
    pattern = value if isinstance(value, int) and not isinstance(value, bool) and value > 1 else 0
    pattern = pattern or SWA_PATTERNS.get(header.architecture, 0)
    if pattern <= 1:
        # llama.cpp reads the window only for the architectures it knows to use it (a
        # `llama.attention.sliding_window` key in an old Mistral file is ignored)
        return (False,) * n_layers
    return tuple(il % pattern < pattern - 1 for il in range(n_layers))


REPACKED_TYPES = frozenset({2, 12, 20})
"""ggml types the x86 AVX2 CPU backend repacks (Q4_0, Q4_K, IQ4_NL; ggml-cpu repack.cpp)."""


@dataclass(frozen=True, slots=True)
class TensorGroups:
    """Tensor bytes grouped the way llama.cpp places them (see `tensor_groups`)."""

    layers: tuple[int, ...]
    experts: tuple[int, ...]
    repack: tuple[int, ...]
    input_bytes: int
    output_bytes: int
    tied: bool


def tensor_groups(
    tensors: Iterable[tuple[str, int, int, tuple[int, ...]]], n_layers: int
) -> TensorGroups:
    """Group (name, bytes, ggml type, shape) tensor entries by block, input and output.

    Without an `output.weight` the token embedding is the output matrix too (tied), so it
    counts in both input and output.
    """
    layers = [0] * n_layers
    experts = [0] * n_layers
    repack = [0] * n_layers
    input_bytes = output_bytes = embedding = 0
    has_output = False
    for name, n_bytes, ggml_type, shape in tensors:
        match = _BLOCK.match(name)
        if match and int(match.group(1)) < n_layers:
            il = int(match.group(1))
            layers[il] += n_bytes
            if "_exps" in name:
                experts[il] += n_bytes
            if ggml_type in REPACKED_TYPES and len(shape) >= 2 and shape[1] % 8 == 0:
                repack[il] += n_bytes
        elif name.startswith("output"):
            output_bytes += n_bytes
            has_output = has_output or name == "output.weight"
        else:
            input_bytes += n_bytes
            if name == "token_embd.weight":
                embedding = n_bytes
    tied = not has_output
    if tied:
        output_bytes += embedding
    return TensorGroups(
        tuple(layers), tuple(experts), tuple(repack), input_bytes, output_bytes, tied
    )


def _per_layer(header: GGUFHeader, suffix: str, n_layers: int) -> tuple[int, ...]:
    value = header.metadata.get(f"{header.architecture}.{suffix}")
    if isinstance(value, list):
        numbers = [v if isinstance(v, int) and not isinstance(v, bool) else 0 for v in value]
        return tuple(numbers[:n_layers])
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * n_layers
    return (0,) * n_layers


def _vocab(header: GGUFHeader) -> int:
    tokens = header.array_lengths.get("tokenizer.ggml.tokens")
    return tokens or header.arch_int("vocab_size") or 0
