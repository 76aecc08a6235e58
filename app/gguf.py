"""GGUF model metadata for the workbench: architecture, size, quantization, context, heads."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

from runtimes.gguf_header import GGUFHeader, validate_gguf

# general.file_type ids (llama.h `llama_ftype`; reference/fit.md §1.3). 4-6, 33-35 were removed.
FILE_TYPE_LABELS: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
}
_FILE_TYPE_GUESSED = 1024


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    """What the workbench needs to know about a GGUF model, read from its header.

    Integer fields are None when the file does not carry that key (unknown, not an error).

    Attributes:
        path: the file.
        architecture: `general.architecture`, e.g. "llama", "gemma3"; "" when missing.
        name: `general.name`; "" when missing.
        size_label: `general.size_label`, e.g. "135M"; "" when missing.
        parameter_count: `general.parameter_count`, else the sum of tensor elements.
        quantization: file-level label such as "Q4_K_M" (from `general.file_type`), else the
            dominant tensor type such as "Q4_K".
        quantization_source: "file_type" or "tensors", saying where the label came from.
        context_length: `{arch}.context_length` (training context).
        block_count: `{arch}.block_count` (layers).
        embedding_length: `{arch}.embedding_length`.
        head_count: `{arch}.attention.head_count` (largest value when per layer).
        head_count_kv: `{arch}.attention.head_count_kv` (largest; defaults to head_count).
        vocab_size: number of tokens in `tokenizer.ggml.tokens`.
        has_chat_template: whether `tokenizer.chat_template` is present and non-empty.
        file_size: bytes on disk.
        tensor_bytes: bytes of tensor data (the weights).
    """

    path: str
    architecture: str
    name: str
    size_label: str
    parameter_count: int
    quantization: str
    quantization_source: str
    context_length: int | None
    block_count: int | None
    embedding_length: int | None
    head_count: int | None
    head_count_kv: int | None
    vocab_size: int | None
    has_chat_template: bool
    file_size: int
    tensor_bytes: int


def read_model_metadata(path: str | os.PathLike[str]) -> ModelMetadata:
    """Read and validate a local GGUF file's header and summarize it.

    Raises:
        InvalidModelFile: the file is missing, unreadable, not GGUF, corrupt or truncated.
    """
    return metadata_from_header(validate_gguf(path))


def metadata_from_header(header: GGUFHeader) -> ModelMetadata:
    """Summarize a parsed header (local or remote)."""
    quant, quant_source = quantization_label(header)
    head_count = _largest(header, "attention.head_count")
    head_count_kv = _largest(header, "attention.head_count_kv")
    template = header.get_str("tokenizer.chat_template")
    return ModelMetadata(
        path=header.source,
        architecture=header.architecture,
        name=header.get_str("general.name") or "",
        size_label=header.get_str("general.size_label") or "",
        parameter_count=parameter_count(header),
        quantization=quant,
        quantization_source=quant_source,
        context_length=header.arch_int("context_length"),
        block_count=header.arch_int("block_count"),
        embedding_length=header.arch_int("embedding_length"),
        head_count=head_count,
        head_count_kv=head_count_kv if head_count_kv is not None else head_count,
        vocab_size=header.array_lengths.get("tokenizer.ggml.tokens"),
        has_chat_template=bool(template and template.strip()),
        file_size=header.file_size,
        tensor_bytes=sum(t.n_bytes for t in header.tensors),
    )


def parameter_count(header: GGUFHeader) -> int:
    """`general.parameter_count` when positive, else the sum of all tensors' elements."""
    declared = header.get_int("general.parameter_count")
    if declared is not None and declared > 0:
        return declared
    return sum(t.n_elements for t in header.tensors)


def quantization_label(header: GGUFHeader) -> tuple[str, str]:
    """The file's quantization label and where it came from ("file_type" or "tensors").

    `general.file_type` names the mix ("Q4_K_M"); without it (or when it is "guessed" or
    unknown), the tensor type holding the most weights among matrices names it ("Q4_K").
    """
    file_type = header.get_int("general.file_type")
    if file_type is not None and file_type != _FILE_TYPE_GUESSED:
        label = FILE_TYPE_LABELS.get(file_type)
        if label is not None:
            return label, "file_type"
    return dominant_tensor_type(header), "tensors"


def dominant_tensor_type(header: GGUFHeader) -> str:
    """The type holding the most elements among 2-D+ tensors (norms and biases are F32)."""
    weights: Counter[str] = Counter()
    for tensor in header.tensors:
        if len(tensor.shape) >= 2:
            weights[tensor.type_name] += tensor.n_elements
    if not weights:
        weights.update({t.type_name: t.n_elements for t in header.tensors})
    if not weights:
        return "unknown"
    return weights.most_common(1)[0][0]


def _largest(header: GGUFHeader, suffix: str) -> int | None:
    """A scalar `{arch}.{suffix}`, or the largest entry when it is a per-layer array."""
    key = f"{header.architecture}.{suffix}"
    value = header.metadata.get(key)
    if isinstance(value, list):
        numbers = [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
        return max(numbers) if numbers else None
    return header.get_int(key)
