"""A bounded, streaming GGUF (v2/v3, little-endian) header parser that never reads tensor data.

`read_header(path)` parses the metadata and the tensor-info table; `validate_gguf(path)` also
checks that the file holds all the tensor data the header promises. Both raise
`InvalidModelFile` with a reason a user can act on. `parse_header(stream, file_size=..)` works
on any binary file object, so a remote file's first bytes (HTTP Range) can be parsed too.

Layout: magic "GGUF", u32 version, u64 tensor count, u64 KV count, KV entries, tensor infos,
padding to `general.alignment` (default 32), tensor data (reference/fit.md §1.1). How single
values are encoded (scalars, strings, arrays) is `gguf_reader`'s part.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from runtimes.errors import InvalidModelFile
from runtimes.gguf_reader import (
    ARRAY_TYPE,
    MAX_ARRAY_DEPTH,
    MAX_SPECIAL_TOKEN_CHARS,
    MAX_STRING_BYTES,
    SMALL_ARRAY_LIMIT,
    ByteStream,
    Reader,
    align_up,
    read_array,
    read_value,
)

__all__ = [
    "DEFAULT_ALIGNMENT",
    "MAGIC",
    "MAX_ARRAY_DEPTH",
    "MAX_COUNT",
    "MAX_DIMS",
    "MAX_SPECIAL_TOKEN_CHARS",
    "MAX_STRING_BYTES",
    "MAX_TENSOR_NAME_BYTES",
    "SMALL_ARRAY_LIMIT",
    "SUPPORTED_VERSIONS",
    "ByteStream",
    "GGUFHeader",
    "GGUFTensor",
    "check_complete",
    "has_token",
    "parse_header",
    "read_header",
    "validate_gguf",
]

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_COUNT = 1_000_000
MAX_DIMS = 4
MAX_TENSOR_NAME_BYTES = 64  # GGML_MAX_NAME, including the NUL llama.cpp appends
_INT63 = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class GGUFTensor:
    """One entry of the tensor-info table.

    Attributes:
        name: tensor name, e.g. "blk.0.attn_q.weight".
        shape: dimensions, innermost (row length) first, as stored in the file.
        ggml_type: the tensor's `ggml_type` id (not a `general.file_type` id).
        type_name: that type's name, e.g. "Q4_K".
        offset: byte offset relative to the start of the tensor data.
        n_elements: product of the dimensions.
        n_bytes: bytes of tensor data, from `gguf.GGML_QUANT_SIZES`.
    """

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    type_name: str
    offset: int
    n_elements: int
    n_bytes: int


@dataclass(frozen=True, slots=True)
class GGUFHeader:
    """Everything in a GGUF file before its tensor data.

    Attributes:
        source: the path (or URL) the header was read from, for messages.
        version: GGUF version (2 or 3).
        tensor_count: number of tensors.
        metadata: key -> value; strings, numbers, bools, and arrays of up to
            `SMALL_ARRAY_LIMIT` elements as lists. Longer arrays are left out.
        array_lengths: key -> element count, for every array (kept or not).
        special_tokens: the tokens of `tokenizer.ggml.tokens` that look like control tokens
            (`<...>` or `[...]`, at most 64 characters), e.g. "<|start_header_id|>".
        tensors: the tensor-info table, in file order.
        alignment: `general.alignment`, or 32.
        data_offset: where tensor data starts (absolute byte offset).
        file_size: size of the file in bytes.
        expected_size: data_offset + end of the last tensor: the size a complete file has.
    """

    source: str
    version: int
    tensor_count: int
    metadata: Mapping[str, object]
    array_lengths: Mapping[str, int]
    special_tokens: frozenset[str]
    tensors: tuple[GGUFTensor, ...]
    alignment: int
    data_offset: int
    file_size: int
    expected_size: int
    _by_name: Mapping[str, GGUFTensor] = field(repr=False, compare=False, default_factory=dict)

    @property
    def architecture(self) -> str:
        """`general.architecture`, or "" when the file does not say."""
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else ""

    @property
    def is_complete(self) -> bool:
        """Whether the file is at least as long as its tensor data requires."""
        return self.file_size >= self.expected_size

    def get_int(self, key: str) -> int | None:
        """An integer value (any integer type), or None when absent or not an integer."""
        value = self.metadata.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return None

    def get_str(self, key: str) -> str | None:
        """A string value, or None when absent or not a string."""
        value = self.metadata.get(key)
        return value if isinstance(value, str) else None

    def arch_int(self, suffix: str) -> int | None:
        """`{architecture}.{suffix}` as an integer, e.g. `arch_int("block_count")`."""
        return self.get_int(f"{self.architecture}.{suffix}")

    def tensor(self, name: str) -> GGUFTensor | None:
        """The tensor with that name, or None."""
        return self._by_name.get(name)


def has_token(header: GGUFHeader, text: str) -> bool:
    """Whether the vocabulary holds the control-like token `text` (e.g. "<|start_header_id|>").

    Only tokens kept in `header.special_tokens` can be found (see `GGUFHeader`).
    """
    return text in header.special_tokens


def read_header(path: str | os.PathLike[str]) -> GGUFHeader:
    """Parse a local file's GGUF header (metadata and tensor infos), reading no tensor data.

    Raises:
        InvalidModelFile: the file is missing, unreadable, not GGUF, or its header is corrupt
            or cut short. A file whose tensor data is cut short still parses: see
            `validate_gguf`.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            return parse_header(stream, file_size=size, source=name)
    except FileNotFoundError:
        raise InvalidModelFile(name, "file not found") from None
    except IsADirectoryError:
        raise InvalidModelFile(name, "it is a folder, not a file") from None
    except OSError as exc:
        raise InvalidModelFile(name, f"cannot read it ({exc.strerror or exc})") from exc


def validate_gguf(path: str | os.PathLike[str]) -> GGUFHeader:
    """Parse the header and check the file holds all the tensor data it promises.

    Raises:
        InvalidModelFile: as `read_header`, or "truncated: X bytes of Y" when the file is
            shorter than its data offset plus tensor data.
    """
    header = read_header(path)
    check_complete(header)
    return header


def check_complete(header: GGUFHeader) -> None:
    """Raise `InvalidModelFile` when `header.file_size` is short of the tensor data's end."""
    if not header.is_complete:
        raise InvalidModelFile(
            header.source,
            f"truncated: {header.file_size:,} bytes of {header.expected_size:,}",
        )


def parse_header(stream: ByteStream, *, file_size: int, source: str) -> GGUFHeader:
    """Parse a GGUF header from a binary stream positioned at the file's first byte.

    Args:
        stream: any readable binary file object; read sequentially, never seeked.
        file_size: the whole file's size in bytes (e.g. an HTTP Content-Length); bounds
            every length read from the header.
        source: path or URL, used in error messages.

    Raises:
        InvalidModelFile: bad magic, unsupported version, absurd counts or lengths,
            unknown types, inconsistent tensor offsets, or a header that runs past the end.
    """
    return _HeaderParser(Reader(stream, file_size, source)).parse()


class _HeaderParser:
    """Walks the header once, collecting metadata, array lengths, special tokens, tensors."""

    def __init__(self, reader: Reader) -> None:
        self._r = reader
        self._metadata: dict[str, object] = {}
        self._array_lengths: dict[str, int] = {}
        self._special: set[str] = set()

    def parse(self) -> GGUFHeader:
        r = self._r
        if r.file_size == 0:
            raise r.fail("the file is empty")
        if r.file_size < 4 or r.take(4) != MAGIC:
            raise r.fail('it does not start with "GGUF"')
        version = r.u32()
        if version not in SUPPORTED_VERSIONS:
            hint = " (a big-endian file?)" if version >= 1 << 16 else ""
            raise r.fail(f"unsupported GGUF version {version}{hint}; versions 2 and 3 are read")
        tensor_count = r.u64()
        kv_count = r.u64()
        if tensor_count > MAX_COUNT:
            raise r.fail(f"absurd tensor count {tensor_count:,}")
        if kv_count > MAX_COUNT:
            raise r.fail(f"absurd metadata count {kv_count:,}")
        for _ in range(kv_count):
            self._read_kv()
        alignment = self._alignment()
        infos = [self._read_tensor_info() for _ in range(tensor_count)]
        data_offset = align_up(r.pos, alignment)
        tensors = self._check_offsets(infos, alignment)
        end = max((t.offset + t.n_bytes for t in tensors), default=None)
        expected = r.pos if end is None else data_offset + end
        return GGUFHeader(
            source=r.source,
            version=version,
            tensor_count=tensor_count,
            metadata=MappingProxyType(self._metadata),
            array_lengths=MappingProxyType(self._array_lengths),
            special_tokens=frozenset(self._special),
            tensors=tuple(tensors),
            alignment=alignment,
            data_offset=data_offset,
            file_size=r.file_size,
            expected_size=expected,
            _by_name=MappingProxyType({t.name: t for t in tensors}),
        )

    def _read_kv(self) -> None:
        r = self._r
        key = r.string("a metadata key")
        if key in self._metadata or key in self._array_lengths:
            raise r.fail(f"duplicate metadata key {key!r}")
        value_type = r.u32()
        if value_type != ARRAY_TYPE:
            self._metadata[key] = read_value(r, key, value_type)
            return
        hook = self._note_token if key == "tokenizer.ggml.tokens" else None
        count, items = read_array(r, key, on_string=hook)
        self._array_lengths[key] = count
        if items is not None:
            self._metadata[key] = items

    def _note_token(self, token: str) -> None:
        if len(token) <= MAX_SPECIAL_TOKEN_CHARS and (
            (token.startswith("<") and token.endswith(">"))
            or (token.startswith("[") and token.endswith("]"))
        ):
            self._special.add(token)

    def _alignment(self) -> int:
        value = self._metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or value <= 0
            or value & (value - 1)
        ):
            raise self._r.fail(f"general.alignment {value!r} is not a power of two")
        return value

    def _read_tensor_info(self) -> tuple[str, tuple[int, ...], int, int]:
        r = self._r
        name = r.string("a tensor name")
        if len(name.encode("utf-8")) >= MAX_TENSOR_NAME_BYTES:
            raise r.fail(f"tensor name {name[:80]!r} is longer than 63 bytes")
        n_dims = r.u32()
        if n_dims > MAX_DIMS:
            raise r.fail(f"tensor {name!r} has {n_dims} dimensions (at most {MAX_DIMS})")
        shape = tuple(r.u64() for _ in range(n_dims))
        ggml_type = r.u32()
        offset = r.u64()
        return name, shape, ggml_type, offset

    def _check_offsets(
        self, infos: list[tuple[str, tuple[int, ...], int, int]], alignment: int
    ) -> list[GGUFTensor]:
        """Build tensors; like llama.cpp, require each to start where the previous ends."""
        r = self._r
        tensors: list[GGUFTensor] = []
        seen: set[str] = set()
        expected = 0
        for name, shape, ggml_type, offset in infos:
            if name in seen:
                raise r.fail(f"duplicate tensor name {name!r}")
            seen.add(name)
            tensor = _make_tensor(r, name, shape, ggml_type, offset)
            if offset != expected:
                raise r.fail(
                    f"tensor {name!r} has offset {offset:,} but should start at {expected:,}: "
                    "tensor offsets point outside the data"
                )
            expected = align_up(offset + tensor.n_bytes, alignment)
            tensors.append(tensor)
        return tensors


def _make_tensor(
    r: Reader, name: str, shape: tuple[int, ...], ggml_type: int, offset: int
) -> GGUFTensor:
    try:
        qtype = GGMLQuantizationType(ggml_type)
        block_size, type_size = GGML_QUANT_SIZES[qtype]
    except (ValueError, KeyError):
        raise r.fail(f"tensor {name!r} has unknown type {ggml_type}") from None
    n_elements = 1
    for dim in shape:
        n_elements *= dim
        if dim > _INT63 or n_elements > _INT63:
            raise r.fail(f"tensor {name!r} has absurd dimensions {list(shape)}")
    row = shape[0] if shape else 1
    if row % block_size:
        raise r.fail(
            f"tensor {name!r} has row length {row}, not a multiple of the {qtype.name} "
            f"block size {block_size}"
        )
    return GGUFTensor(
        name=name,
        shape=shape,
        ggml_type=ggml_type,
        type_name=qtype.name,
        offset=offset,
        n_elements=n_elements,
        n_bytes=n_elements // block_size * type_size,
    )
