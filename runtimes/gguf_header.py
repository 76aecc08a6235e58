"""A bounded, streaming GGUF (v2/v3, little-endian) header parser that never reads tensor data.

`read_header(path)` parses the metadata and the tensor-info table; `validate_gguf(path)` also
checks that the file holds all the tensor data the header promises. Both raise
`InvalidModelFile` with a reason a user can act on. `parse_header(stream, file_size=..)` works
on any binary file object, so a remote file's first bytes (HTTP Range) can be parsed too.

Layout: magic "GGUF", u32 version, u64 tensor count, u64 KV count, KV entries, tensor infos,
padding to `general.alignment` (default 32), tensor data (reference/fit.md §1.1).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from runtimes.errors import InvalidModelFile

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_COUNT = 1_000_000
MAX_STRING_BYTES = 64 * 1024 * 1024
MAX_DIMS = 4
MAX_TENSOR_NAME_BYTES = 64  # GGML_MAX_NAME, including the NUL llama.cpp appends
MAX_ARRAY_DEPTH = 4
SMALL_ARRAY_LIMIT = 1024
"""Arrays up to this many elements are kept in `metadata`; longer ones only by length."""
MAX_SPECIAL_TOKEN_CHARS = 64
_CHUNK = 1 << 20
_INT63 = (1 << 63) - 1

# value type id -> (struct format, size); 8 string and 9 array are handled apart.
_SCALARS: dict[int, tuple[str, int]] = {
    0: ("<B", 1),
    1: ("<b", 1),
    2: ("<H", 2),
    3: ("<h", 2),
    4: ("<I", 4),
    5: ("<i", 4),
    6: ("<f", 4),
    7: ("<?", 1),
    10: ("<Q", 8),
    11: ("<q", 8),
    12: ("<d", 8),
}
_STRING = 8
_ARRAY = 9


class ByteStream(Protocol):
    """What the parser reads from: a local file, or an adapter over HTTP Range requests."""

    def read(self, size: int, /) -> bytes:
        """Up to `size` bytes; b"" at the end."""
        ...


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
    return _HeaderParser(_Reader(stream, file_size, source)).parse()


class _Reader:
    """Sequential little-endian reads over a stream, buffered, bounded by the file size."""

    def __init__(self, stream: ByteStream, file_size: int, source: str) -> None:
        self._stream = stream
        self.file_size = file_size
        self.source = source
        self._buf = b""
        self._at = 0  # index into _buf
        self._base = 0  # absolute offset of _buf[0]

    @property
    def pos(self) -> int:
        """Absolute offset of the next byte."""
        return self._base + self._at

    def fail(self, reason: str) -> InvalidModelFile:
        """An error about this file."""
        return InvalidModelFile(self.source, reason)

    def _need(self, n: int) -> None:
        if len(self._buf) - self._at >= n:
            return
        if self.pos + n > self.file_size:
            raise self.fail(self._truncated(self.pos + n))
        rest = self._buf[self._at :]
        want = max(n - len(rest), _CHUNK)
        parts = [rest]
        got = len(rest)
        while got < n:
            chunk = self._stream.read(want)
            if not chunk:
                raise self.fail(self._truncated(self.pos + n))
            parts.append(chunk)
            got += len(chunk)
            want = n - got
        self._base = self.pos
        self._buf = b"".join(parts)
        self._at = 0

    def _truncated(self, needed: int) -> str:
        return f"truncated: {self.file_size:,} bytes, but the header needs at least {needed:,}"

    def take(self, n: int) -> bytes:
        """The next n bytes."""
        self._need(n)
        out = self._buf[self._at : self._at + n]
        self._at += n
        return out

    def scalar(self, fmt: str, size: int) -> int | float | bool:
        """One struct-formatted value of `size` bytes."""
        self._need(size)
        (value,) = struct.unpack_from(fmt, self._buf, self._at)
        self._at += size
        return value  # type: ignore[no-any-return]

    def u32(self) -> int:
        """An unsigned 32-bit integer."""
        return int(self.scalar("<I", 4))

    def u64(self) -> int:
        """An unsigned 64-bit integer."""
        return int(self.scalar("<Q", 8))

    def string(self, what: str) -> str:
        """A gguf string (u64 length + UTF-8), bounded to 64 MiB and to the file's end."""
        start = self.pos
        length = self.u64()
        if length > MAX_STRING_BYTES:
            raise self.fail(f"{what} at byte {start:,} claims an absurd length of {length:,}")
        if self.pos + length > self.file_size:
            raise self.fail(
                f"truncated: {self.file_size:,} bytes, but {what} at byte {start:,} "
                f"claims {length:,} bytes, past the end of the file"
            )
        return self.take(length).decode("utf-8", errors="replace")

    def skip_strings(self, count: int, what: str, hook: Callable[[str], None] | None) -> None:
        """Read `count` strings without keeping them (a vocabulary), passing each to `hook`.

        The fast path works on the buffer directly: a 262k-token vocabulary is most of a
        header, and per-string method calls would triple the parse time.
        """
        unpack = struct.unpack_from
        for _ in range(count):
            buf, at = self._buf, self._at
            if len(buf) - at >= 8:
                (length,) = unpack("<Q", buf, at)
                if length <= MAX_STRING_BYTES and len(buf) - at - 8 >= length:
                    self._at = at + 8 + length
                    if hook is not None and length <= MAX_SPECIAL_TOKEN_CHARS * 4:
                        hook(buf[at + 8 : at + 8 + length].decode("utf-8", errors="replace"))
                    continue
            value = self.string(what)  # slow path: refill, bounds checks, errors
            if hook is not None:
                hook(value)


class _HeaderParser:
    """Walks the header once, collecting metadata, array lengths, special tokens, tensors."""

    def __init__(self, reader: _Reader) -> None:
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
        data_offset = _align_up(r.pos, alignment)
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
        if value_type == _ARRAY:
            self._read_array(key)
        else:
            self._metadata[key] = self._read_value(key, value_type)

    def _read_value(self, key: str, value_type: int) -> object:
        r = self._r
        if value_type == _STRING:
            return r.string(f"the value of {key!r}")
        scalar = _SCALARS.get(value_type)
        if scalar is None:
            raise r.fail(f"metadata {key!r} has unknown value type {value_type}")
        return r.scalar(*scalar)

    def _read_array(self, key: str) -> None:
        hook = self._note_token if key == "tokenizer.ggml.tokens" else None
        count, items = self._read_array_items(key, depth=1, on_string=hook)
        self._array_lengths[key] = count
        if items is not None:
            self._metadata[key] = items

    def _read_array_items(
        self,
        key: str,
        depth: int,
        on_string: Callable[[str], None] | None = None,
    ) -> tuple[int, list[object] | None]:
        """Read one array; returns its length and its items when it is small enough to keep."""
        r = self._r
        start = r.pos
        elem_type = r.u32()
        count = r.u64()
        if elem_type == _ARRAY:
            if depth >= MAX_ARRAY_DEPTH:
                raise r.fail(f"metadata {key!r} nests arrays deeper than {MAX_ARRAY_DEPTH}")
            min_size = 12
        elif elem_type == _STRING:
            min_size = 8
        elif elem_type in _SCALARS:
            min_size = _SCALARS[elem_type][1]
        else:
            raise r.fail(f"metadata {key!r} is an array of unknown value type {elem_type}")
        if r.pos + count * min_size > r.file_size:
            raise r.fail(
                f"truncated: {r.file_size:,} bytes, but metadata {key!r} at byte {start:,} "
                f"claims {count:,} elements, past the end of the file"
            )
        keep = count <= SMALL_ARRAY_LIMIT
        items: list[object] = []
        if not keep and elem_type in _SCALARS:
            r.take(count * min_size)  # skip in one read: nobody needs long numeric arrays
            return count, None
        if not keep and elem_type == _STRING:
            r.skip_strings(count, f"an element of {key!r}", on_string)
            return count, None
        for _ in range(count):
            value: object
            if elem_type == _ARRAY:
                value = self._read_array_items(key, depth + 1)[1]
            else:
                value = self._read_value(key, elem_type)
                if on_string is not None and isinstance(value, str):
                    on_string(value)
            if keep:
                items.append(value)
        return count, items if keep else None

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
            expected = _align_up(offset + tensor.n_bytes, alignment)
            tensors.append(tensor)
        return tensors


def _make_tensor(
    r: _Reader, name: str, shape: tuple[int, ...], ggml_type: int, offset: int
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


def _align_up(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment
