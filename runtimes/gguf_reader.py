"""Low-level GGUF reading: a bounded byte reader and the metadata value decoders.

`gguf_header` walks a header's structure (magic, counts, KV entries, tensor infos) with these;
this module knows how single values are encoded: little-endian scalars, u64-length strings,
and typed, possibly nested arrays. Every length read from the file is checked against the
file's size before anything is allocated, so a corrupt header fails fast with a clear reason.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Protocol

from runtimes.errors import InvalidModelFile

MAX_STRING_BYTES = 64 * 1024 * 1024
MAX_ARRAY_DEPTH = 4
SMALL_ARRAY_LIMIT = 1024
"""Arrays up to this many elements are kept in `metadata`; longer ones only by length."""
MAX_SPECIAL_TOKEN_CHARS = 64
_CHUNK = 1 << 20

# value type id -> (struct format, size); 8 string and 9 array are handled apart.
SCALAR_TYPES: dict[int, tuple[str, int]] = {
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
STRING_TYPE = 8
ARRAY_TYPE = 9


class ByteStream(Protocol):
    """What the parser reads from: a local file, or an adapter over HTTP Range requests."""

    def read(self, size: int, /) -> bytes:
        """Up to `size` bytes; b"" at the end."""
        ...


class Reader:
    """Sequential little-endian reads over a stream, buffered, bounded by the file size.

    Args:
        stream: read sequentially, never seeked.
        file_size: the whole file's size; no read may go past it.
        source: path or URL, for error messages.
    """

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


def read_value(r: Reader, key: str, value_type: int) -> object:
    """One metadata value that is not an array (a string or a scalar) of `key`."""
    if value_type == STRING_TYPE:
        return r.string(f"the value of {key!r}")
    scalar = SCALAR_TYPES.get(value_type)
    if scalar is None:
        raise r.fail(f"metadata {key!r} has unknown value type {value_type}")
    return r.scalar(*scalar)


def read_array(
    r: Reader,
    key: str,
    depth: int = 1,
    on_string: Callable[[str], None] | None = None,
) -> tuple[int, list[object] | None]:
    """Read one array of `key`; its length, and its items when it is small enough to keep.

    Args:
        r: positioned at the array's element type.
        key: the metadata key, for messages.
        depth: nesting level of this array (1 for a top-level value).
        on_string: receives every string element (kept or not), e.g. to note special tokens.
    """
    start = r.pos
    elem_type = r.u32()
    count = r.u64()
    if elem_type == ARRAY_TYPE:
        if depth >= MAX_ARRAY_DEPTH:
            raise r.fail(f"metadata {key!r} nests arrays deeper than {MAX_ARRAY_DEPTH}")
        min_size = 12
    elif elem_type == STRING_TYPE:
        min_size = 8
    elif elem_type in SCALAR_TYPES:
        min_size = SCALAR_TYPES[elem_type][1]
    else:
        raise r.fail(f"metadata {key!r} is an array of unknown value type {elem_type}")
    if r.pos + count * min_size > r.file_size:
        raise r.fail(
            f"truncated: {r.file_size:,} bytes, but metadata {key!r} at byte {start:,} "
            f"claims {count:,} elements, past the end of the file"
        )
    keep = count <= SMALL_ARRAY_LIMIT
    if not keep and elem_type in SCALAR_TYPES:
        r.take(count * min_size)  # skip in one read: nobody needs long numeric arrays
        return count, None
    if not keep and elem_type == STRING_TYPE:
        r.skip_strings(count, f"an element of {key!r}", on_string)
        return count, None
    items: list[object] = []
    for _ in range(count):
        value: object
        if elem_type == ARRAY_TYPE:
            value = read_array(r, key, depth + 1)[1]
        else:
            value = read_value(r, key, elem_type)
            if on_string is not None and isinstance(value, str):
                on_string(value)
        if keep:
            items.append(value)
    return count, items if keep else None


def align_up(value: int, alignment: int) -> int:
    """`value` rounded up to a multiple of `alignment`."""
    return (value + alignment - 1) // alignment * alignment
