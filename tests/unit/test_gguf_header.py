"""The GGUF header parser: real files, synthetic files, and one hand-built file per defect."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import BinaryIO

import gguf
import numpy as np
import pytest

from runtimes import gguf_header
from runtimes.errors import InvalidModelFile
from runtimes.gguf_header import (
    GGUFHeader,
    has_token,
    parse_header,
    read_header,
    validate_gguf,
)

# --- hand-built bytes -------------------------------------------------------------------


def s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv_u32(key: str, value: int) -> bytes:
    return s(key) + struct.pack("<II", 4, value)


def kv_str(key: str, value: str) -> bytes:
    return s(key) + struct.pack("<I", 8) + s(value)


def tensor_info(name: str, dims: tuple[int, ...], ggml_type: int = 0, offset: int = 0) -> bytes:
    return (
        s(name)
        + struct.pack("<I", len(dims))
        + b"".join(struct.pack("<Q", d) for d in dims)
        + struct.pack("<IQ", ggml_type, offset)
    )


def build(
    kvs: list[bytes] | None = None,
    tensors: list[bytes] | None = None,
    *,
    version: int = 3,
    magic: bytes = b"GGUF",
    kv_count: int | None = None,
    tensor_count: int | None = None,
    data: bytes = b"",
) -> bytes:
    kvs = [kv_str("general.architecture", "llama")] if kvs is None else kvs
    tensors = tensors or []
    head = magic + struct.pack(
        "<IQQ",
        version,
        len(tensors) if tensor_count is None else tensor_count,
        len(kvs) if kv_count is None else kv_count,
    )
    body = head + b"".join(kvs) + b"".join(tensors)
    padding = b"\0" * (-len(body) % 32)
    return body + padding + data


def write(tmp_path: Path, content: bytes, name: str = "m.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def reason_of(path: Path) -> str:
    with pytest.raises(InvalidModelFile) as info:
        validate_gguf(path)
    assert info.value.path == str(path)
    assert info.value.reason in str(info.value)
    return info.value.reason


# --- synthetic files from gguf.GGUFWriter ------------------------------------------------


def write_synthetic(path: Path, tokens: list[str], *, n_rows: int = 4) -> Path:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(2)
    writer.add_context_length(4096)
    writer.add_chat_template("{{ messages }}")
    writer.add_token_list(tokens)
    writer.add_array("llama.attention.head_count_kv", [4, 0])
    writer.add_tensor("token_embd.weight", np.zeros((n_rows, 32), dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.zeros((3,), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_synthetic_file_gives_metadata_tensors_and_sizes(tmp_path: Path) -> None:
    path = write_synthetic(tmp_path / "s.gguf", ["<s>", "</s>", "<|start_header_id|>", "hi"])

    header = validate_gguf(path)

    assert header.version == 3
    assert header.architecture == "llama"
    assert header.arch_int("block_count") == 2
    assert header.arch_int("context_length") == 4096
    assert header.get_str("tokenizer.chat_template") == "{{ messages }}"
    assert header.metadata["llama.attention.head_count_kv"] == [4, 0]
    assert header.array_lengths["tokenizer.ggml.tokens"] == 4
    assert has_token(header, "<|start_header_id|>")
    assert not has_token(header, "hi")
    assert [t.name for t in header.tensors] == ["token_embd.weight", "output_norm.weight"]
    embd = header.tensors[0]
    assert (embd.shape, embd.type_name, embd.offset, embd.n_bytes) == ((32, 4), "F32", 0, 512)
    norm = header.tensor("output_norm.weight")
    assert norm is not None and (norm.offset, norm.n_bytes, norm.type_name) == (512, 6, "F16")
    assert header.alignment == 32
    assert header.data_offset % 32 == 0
    assert header.expected_size == header.data_offset + 512 + 6
    assert header.file_size == path.stat().st_size


def test_long_vocabulary_is_kept_as_length_and_special_tokens(tmp_path: Path) -> None:
    tokens = [f"tok{i}" for i in range(5000)] + ["<|im_start|>", "[INST]", "<" + "x" * 80 + ">"]
    header = read_header(write_synthetic(tmp_path / "v.gguf", tokens))

    assert "tokenizer.ggml.tokens" not in header.metadata
    assert header.array_lengths["tokenizer.ggml.tokens"] == 5003
    assert header.special_tokens == {"<|im_start|>", "[INST]"}


def test_version_2_files_are_read(tmp_path: Path) -> None:
    header = validate_gguf(write(tmp_path, build(version=2)))
    assert header.version == 2
    assert header.tensors == ()


def test_alignment_key_moves_the_data_offset(tmp_path: Path) -> None:
    kvs = [kv_str("general.architecture", "llama"), kv_u32("general.alignment", 64)]
    infos = [tensor_info("t", (8,))]
    head = b"GGUF" + struct.pack("<IQQ", 3, 1, 2) + b"".join(kvs) + b"".join(infos)
    content = head + b"\0" * (-len(head) % 64) + b"\0" * 32
    header = validate_gguf(write(tmp_path, content))
    assert header.alignment == 64
    assert header.data_offset % 64 == 0
    assert header.expected_size == header.data_offset + 32


def test_parse_header_reads_a_stream_holding_only_the_header(smollm2_path: Path) -> None:
    size = smollm2_path.stat().st_size
    with smollm2_path.open("rb") as f:
        prefix = f.read(2 * 1024 * 1024)

    header = parse_header(io.BytesIO(prefix), file_size=size, source="https://x/m.gguf")

    assert header.source == "https://x/m.gguf"
    assert header.is_complete
    assert header.tensor_count == len(header.tensors) == 272


class CountingReader:
    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.read_bytes = 0

    def read(self, n: int, /) -> bytes:
        data = self.inner.read(n)
        self.read_bytes += len(data)
        return data


# --- the real models --------------------------------------------------------------------


def test_real_smollm2_header(smollm2_path: Path) -> None:
    header = validate_gguf(smollm2_path)

    assert header.architecture == "llama"
    assert header.arch_int("block_count") == 30
    assert header.arch_int("context_length") == 8192
    assert header.get_int("general.file_type") == 3
    assert (header.get_str("tokenizer.chat_template") or "").startswith("{% for message")
    assert header.array_lengths["tokenizer.ggml.tokens"] == 49152
    assert has_token(header, "<|im_start|>")
    assert not has_token(header, "<|start_header_id|>")
    assert header.expected_size == header.file_size == smollm2_path.stat().st_size
    reader = gguf.GGUFReader(smollm2_path)
    assert header.data_offset == reader.data_offset
    assert [(t.name, t.n_bytes, t.offset) for t in header.tensors] == [
        (t.name, int(t.n_bytes), int(t.data_offset) - reader.data_offset) for t in reader.tensors
    ]


def test_real_file_reads_only_its_header(smollm2_path: Path) -> None:
    size = smollm2_path.stat().st_size
    with smollm2_path.open("rb") as f:
        counting = CountingReader(f)
        header = parse_header(counting, file_size=size, source=str(smollm2_path))
    assert counting.read_bytes <= header.data_offset + 1024 * 1024
    assert counting.read_bytes < 4 * 1024 * 1024


def test_real_gemma_header_has_no_chat_template(gemma_path: Path) -> None:
    header = validate_gguf(gemma_path)
    assert header.architecture == "gemma3"
    assert header.arch_int("block_count") == 18
    assert "tokenizer.chat_template" not in header.metadata
    assert header.array_lengths["tokenizer.ggml.tokens"] == 262144
    assert has_token(header, "<start_of_turn>")


def test_truncated_copy_of_real_file_says_how_much_is_missing(
    smollm2_path: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "cut.gguf"
    with smollm2_path.open("rb") as src, copy.open("wb") as dst:
        dst.write(src.read(3 * 1024 * 1024))
        dst.truncate(50_000_000)  # sparse: cheap to make, the header is intact

    header = read_header(copy)
    assert not header.is_complete
    full = smollm2_path.stat().st_size
    assert reason_of(copy) == f"truncated: 50,000,000 bytes of {full:,}"


def test_real_file_cut_inside_its_header(smollm2_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "head.gguf"
    with smollm2_path.open("rb") as src:
        copy.write_bytes(src.read(100_000))
    assert reason_of(copy).startswith("truncated: 100,000 bytes")


# --- one defect each ----------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    assert reason_of(tmp_path / "nope.gguf") == "file not found"


def test_empty_file(tmp_path: Path) -> None:
    assert reason_of(write(tmp_path, b"")) == "the file is empty"


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "dir.gguf"
    folder.mkdir()
    assert reason_of(folder) == "it is a folder, not a file"


def test_permission_error_gives_the_os_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, build())

    def denied(*args: object, **kwargs: object) -> object:
        raise PermissionError(13, os.strerror(13), str(path))

    monkeypatch.setattr(gguf_header, "open", denied, raising=False)
    assert reason_of(path) == f"cannot read it ({os.strerror(13)})"


def test_bad_magic(tmp_path: Path) -> None:
    assert reason_of(write(tmp_path, b"PK\x03\x04" + b"\0" * 60)) == (
        'it does not start with "GGUF"'
    )


def test_tiny_file(tmp_path: Path) -> None:
    assert reason_of(write(tmp_path, b"GG")) == 'it does not start with "GGUF"'


@pytest.mark.parametrize("version", [1, 4, 3 << 24])
def test_unsupported_version(tmp_path: Path, version: int) -> None:
    reason = reason_of(write(tmp_path, build(version=version)))
    assert reason.startswith(f"unsupported GGUF version {version}")
    assert ("big-endian" in reason) == (version == 3 << 24)


def test_absurd_tensor_count(tmp_path: Path) -> None:
    assert reason_of(write(tmp_path, build(tensor_count=2_000_000))) == (
        "absurd tensor count 2,000,000"
    )


def test_absurd_kv_count(tmp_path: Path) -> None:
    assert reason_of(write(tmp_path, build(kv_count=10**12))) == (
        "absurd metadata count 1,000,000,000,000"
    )


def test_absurd_string_length(tmp_path: Path) -> None:
    key = struct.pack("<Q", 65 * 1024 * 1024) + b"general.architecture"
    reason = reason_of(write(tmp_path, build([key])))
    assert reason == "a metadata key at byte 24 claims an absurd length of 68,157,440"


def test_string_past_the_end(tmp_path: Path) -> None:
    value = s("general.name") + struct.pack("<I", 8) + struct.pack("<Q", 5000) + b"short"
    reason = reason_of(write(tmp_path, build([value])))
    assert reason.startswith("truncated: ")
    assert "the value of 'general.name' at byte 48 claims 5,000 bytes, past the end" in reason


def test_unknown_value_type(tmp_path: Path) -> None:
    entry = s("general.weird") + struct.pack("<I", 13) + b"\0" * 8
    assert reason_of(write(tmp_path, build([entry]))) == (
        "metadata 'general.weird' has unknown value type 13"
    )


def test_unknown_array_element_type(tmp_path: Path) -> None:
    entry = s("general.tags") + struct.pack("<IIQ", 9, 77, 1) + b"\0" * 8
    assert reason_of(write(tmp_path, build([entry]))) == (
        "metadata 'general.tags' is an array of unknown value type 77"
    )


def test_array_count_past_the_end(tmp_path: Path) -> None:
    entry = s("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, 10**9)
    reason = reason_of(write(tmp_path, build([entry])))
    assert reason.startswith("truncated: ")
    assert "claims 1,000,000,000 elements, past the end of the file" in reason


def test_duplicate_key(tmp_path: Path) -> None:
    entries = [kv_str("general.architecture", "a"), kv_str("general.architecture", "b")]
    assert reason_of(write(tmp_path, build(entries))) == (
        "duplicate metadata key 'general.architecture'"
    )


def test_alignment_not_a_power_of_two(tmp_path: Path) -> None:
    assert reason_of(write(tmp_path, build([kv_u32("general.alignment", 24)]))) == (
        "general.alignment 24 is not a power of two"
    )


def test_too_many_dimensions(tmp_path: Path) -> None:
    info = tensor_info("blk.0.x", (1, 1, 1, 1, 32))
    assert reason_of(write(tmp_path, build(tensors=[info], data=b"\0" * 128))) == (
        "tensor 'blk.0.x' has 5 dimensions (at most 4)"
    )


def test_unknown_tensor_type(tmp_path: Path) -> None:
    info = tensor_info("blk.0.x", (32,), ggml_type=4)  # Q4_2, removed from ggml
    assert reason_of(write(tmp_path, build(tensors=[info], data=b"\0" * 128))) == (
        "tensor 'blk.0.x' has unknown type 4"
    )


def test_row_not_a_multiple_of_the_block(tmp_path: Path) -> None:
    info = tensor_info("blk.0.x", (33,), ggml_type=2)
    reason = reason_of(write(tmp_path, build(tensors=[info], data=b"\0" * 128)))
    assert reason == "tensor 'blk.0.x' has row length 33, not a multiple of the Q4_0 block size 32"


def test_absurd_dimensions(tmp_path: Path) -> None:
    info = tensor_info("x", (1 << 40, 1 << 40))
    assert reason_of(write(tmp_path, build(tensors=[info]))) == (
        f"tensor 'x' has absurd dimensions {[1 << 40, 1 << 40]}"
    )


def test_tensor_offset_outside_the_data(tmp_path: Path) -> None:
    infos = [tensor_info("a", (8,), offset=0), tensor_info("b", (8,), offset=1 << 40)]
    reason = reason_of(write(tmp_path, build(tensors=infos, data=b"\0" * 64)))
    assert reason == (
        f"tensor 'b' has offset {1 << 40:,} but should start at 32: "
        "tensor offsets point outside the data"
    )


def test_duplicate_tensor_name(tmp_path: Path) -> None:
    infos = [tensor_info("a", (8,), offset=0), tensor_info("a", (8,), offset=32)]
    assert reason_of(write(tmp_path, build(tensors=infos, data=b"\0" * 64))) == (
        "duplicate tensor name 'a'"
    )


def test_tensor_name_too_long(tmp_path: Path) -> None:
    info = tensor_info("n" * 64, (8,))
    assert reason_of(write(tmp_path, build(tensors=[info], data=b"\0" * 32))).endswith(
        "is longer than 63 bytes"
    )


def test_missing_tensor_data_is_truncation(tmp_path: Path) -> None:
    infos = [tensor_info("a", (8,), offset=0), tensor_info("b", (64,), offset=32)]
    content = build(tensors=infos, data=b"\0" * 40)
    path = write(tmp_path, content)
    expected = len(content) - 40 + 32 + 256
    assert read_header(path).expected_size == expected
    assert reason_of(path) == f"truncated: {len(content):,} bytes of {expected:,}"


def test_header_cut_short(tmp_path: Path) -> None:
    content = build([kv_str("general.architecture", "llama")])[:30]
    assert reason_of(write(tmp_path, content)).startswith("truncated: 30 bytes")


def test_error_message_tells_the_user_what_to_do(tmp_path: Path) -> None:
    path = write(tmp_path, b"nope" * 10)
    with pytest.raises(InvalidModelFile) as info:
        validate_gguf(path)
    assert str(info.value) == (
        f'{path} is not a usable GGUF model: it does not start with "GGUF". '
        "Download it again or choose another file."
    )


def test_header_is_frozen(tmp_path: Path) -> None:
    header: GGUFHeader = validate_gguf(write(tmp_path, build()))
    with pytest.raises(AttributeError):
        header.version = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        header.metadata["x"] = 1  # type: ignore[index]
