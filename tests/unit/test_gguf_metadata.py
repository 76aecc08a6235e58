"""Model metadata from GGUF headers: the two real models and synthetic edge cases."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from app.errors import InvalidModelFile
from app.gguf import FILE_TYPE_LABELS, ModelMetadata, read_model_metadata


def test_smollm2_metadata(smollm2_path: Path) -> None:
    meta = read_model_metadata(smollm2_path)

    assert meta.architecture == "llama"
    assert meta.size_label == "135M"
    assert meta.quantization == "Q4_1"
    assert meta.quantization_source == "file_type"
    assert meta.has_chat_template is True
    assert (meta.context_length, meta.block_count, meta.embedding_length) == (8192, 30, 576)
    assert (meta.head_count, meta.head_count_kv) == (9, 3)
    assert meta.vocab_size == 49152
    assert meta.parameter_count == 134_515_008  # sum of tensor elements: no parameter_count key
    assert meta.file_size == smollm2_path.stat().st_size
    assert 0 < meta.tensor_bytes < meta.file_size


def test_gemma_metadata_has_no_chat_template(gemma_path: Path) -> None:
    meta = read_model_metadata(gemma_path)

    assert meta.architecture == "gemma3"
    assert meta.name == "Gemma 3 270m"
    assert meta.quantization == "Q4_K_M"
    assert meta.has_chat_template is False
    assert (meta.context_length, meta.block_count, meta.embedding_length) == (32768, 18, 640)
    assert (meta.head_count, meta.head_count_kv) == (4, 1)
    assert meta.vocab_size == 262144
    assert 260_000_000 < meta.parameter_count < 280_000_000


def write_model(
    path: Path,
    *,
    file_type: int | None = None,
    parameter_count: int | None = None,
    head_count_kv: int | list[int] | None = None,
    template: str | None = None,
) -> Path:
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_name("Tiny Test")
    writer.add_block_count(2)
    writer.add_head_count(8)
    if file_type is not None:
        writer.add_file_type(file_type)
    if parameter_count is not None:
        writer.add_uint64("general.parameter_count", parameter_count)
    if isinstance(head_count_kv, list):
        writer.add_array("qwen2.attention.head_count_kv", head_count_kv)
    elif head_count_kv is not None:
        writer.add_head_count_kv(head_count_kv)
    if template is not None:
        writer.add_chat_template(template)
    q8 = np.zeros((64, 34), dtype=np.uint8)  # 64 rows of 32 Q8_0 weights each (34 bytes)
    writer.add_tensor("blk.0.ffn_up.weight", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((8, 16), dtype=np.float16))
    writer.add_tensor("blk.0.attn_norm.weight", np.zeros((4096,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_quantization_falls_back_to_dominant_matrix_type(tmp_path: Path) -> None:
    meta = read_model_metadata(write_model(tmp_path / "m.gguf"))
    # The F32 norm has more elements (4096) than Q8_0 (2048), but only matrices count.
    assert (meta.quantization, meta.quantization_source) == ("Q8_0", "tensors")


@pytest.mark.parametrize("file_type", [1024, 5, 999])
def test_guessed_or_unknown_file_type_falls_back_to_tensors(tmp_path: Path, file_type: int) -> None:
    meta = read_model_metadata(write_model(tmp_path / "m.gguf", file_type=file_type))
    assert (meta.quantization, meta.quantization_source) == ("Q8_0", "tensors")


@pytest.mark.parametrize(("file_type", "label"), [(15, "Q4_K_M"), (30, "IQ4_XS"), (32, "BF16")])
def test_file_type_names_the_mix(tmp_path: Path, file_type: int, label: str) -> None:
    meta = read_model_metadata(write_model(tmp_path / "m.gguf", file_type=file_type))
    assert (meta.quantization, meta.quantization_source) == (label, "file_type")


def test_file_type_table_has_no_removed_ids() -> None:
    assert not {4, 5, 6, 33, 34, 35} & FILE_TYPE_LABELS.keys()
    assert FILE_TYPE_LABELS[7] == "Q8_0" and FILE_TYPE_LABELS[18] == "Q6_K"


def test_declared_parameter_count_wins(tmp_path: Path) -> None:
    meta = read_model_metadata(write_model(tmp_path / "m.gguf", parameter_count=7_000_000_000))
    assert meta.parameter_count == 7_000_000_000


def test_parameter_count_sums_tensor_elements(tmp_path: Path) -> None:
    meta = read_model_metadata(write_model(tmp_path / "m.gguf"))
    assert meta.parameter_count == 64 * 32 + 8 * 16 + 4096


def test_head_count_kv_defaults_to_head_count(tmp_path: Path) -> None:
    meta = read_model_metadata(write_model(tmp_path / "m.gguf"))
    assert (meta.head_count, meta.head_count_kv) == (8, 8)


def test_per_layer_head_count_kv_takes_the_largest(tmp_path: Path) -> None:
    meta = read_model_metadata(write_model(tmp_path / "m.gguf", head_count_kv=[2, 0]))
    assert meta.head_count_kv == 2


def test_missing_keys_are_unknown_not_errors(tmp_path: Path) -> None:
    meta: ModelMetadata = read_model_metadata(write_model(tmp_path / "m.gguf"))
    assert meta.architecture == "qwen2"
    assert meta.context_length is None
    assert meta.embedding_length is None
    assert meta.vocab_size is None
    assert meta.size_label == ""


def test_blank_chat_template_does_not_count(tmp_path: Path) -> None:
    assert not read_model_metadata(
        write_model(tmp_path / "a.gguf", template="  ")
    ).has_chat_template
    assert read_model_metadata(write_model(tmp_path / "b.gguf", template="{{x}}")).has_chat_template


def test_bad_file_raises_invalid_model_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(b"not a model")
    with pytest.raises(InvalidModelFile, match="does not start with"):
        read_model_metadata(path)
