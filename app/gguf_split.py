"""Split GGUF models (`name-00001-of-0000N.gguf`): part names, merged headers, sparse copies."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType

from runtimes.errors import ExternalFailure, InvalidModelFile
from runtimes.gguf_header import GGUFHeader, GGUFTensor, read_header

__all__ = ["merge_split_headers", "read_model_header", "split_part_names", "write_sparse_copy"]

# As llama.cpp's `llama_split_path` names the parts ("%s-%05d-of-%05d.gguf").
_SPLIT_NAME = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")


def split_part_names(name: str) -> list[str] | None:
    """All part names of a split model (`x-00001-of-00003.gguf` ...), given any part's name.

    Works on bare names, paths and URL paths (only the end of the text changes).
    Returns None when the name is not a part name.
    """
    match = _SPLIT_NAME.match(name)
    if match is None:
        return None
    number, count = int(match["no"]), int(match["count"])
    if not 1 <= number <= count:
        return None
    return [f"{match['stem']}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]


def read_model_header(path: str | os.PathLike[str]) -> GGUFHeader:
    """Read a local model's header: one file, or every part of a split model, merged.

    Raises:
        InvalidModelFile: as `read_header`; a missing part (named); parts that do not fit.
    """
    given = Path(path)
    names = split_part_names(given.name)
    if names is None:
        return merge_split_headers([read_header(given)], source=str(given))
    paths = [given.with_name(name) for name in names]
    for number, part in enumerate(paths, start=1):
        if not part.is_file():
            raise InvalidModelFile(
                str(given), f"part {number} of {len(paths)} of this split model is missing: {part}"
            )
    return merge_split_headers([read_header(p) for p in paths], source=str(paths[0]))


def merge_split_headers(headers: Sequence[GGUFHeader], *, source: str) -> GGUFHeader:
    """One header for a model from its parts' headers, in part order.

    Metadata comes from the first part, tensors from all parts (each tensor's `offset`
    stays relative to its own part's data), sizes are summed. A single header that is
    not a split part is returned as is.

    Raises:
        InvalidModelFile: a part numbered wrongly, `split.count` differing from the number
            of parts, a tensor total differing from `split.tensors.count`, duplicate tensors.
    """
    first = headers[0]
    count = first.get_int("split.count")
    if len(headers) == 1 and count in (None, 1):
        return first
    if len(headers) == 1 and count is not None:
        raise InvalidModelFile(
            source,
            f"it is one part of a model split in {count}, but its name does not say so; "
            f"keep the part names llama-gguf-split gave (...-00001-of-{count:05d}.gguf)",
        )
    if count is None:
        raise InvalidModelFile(
            source, "its name says it is a split model, but split.count is missing"
        )
    for index, part in enumerate(headers):
        _check_part(part, index, len(headers), source)
    tensors = tuple(t for part in headers for t in part.tensors)
    declared = first.get_int("split.tensors.count")
    if declared != len(tensors):
        raise InvalidModelFile(
            source,
            f"its parts hold {len(tensors)} tensors, but split.tensors.count says {declared}",
        )
    by_name: dict[str, GGUFTensor] = {}
    for tensor in tensors:
        if by_name.setdefault(tensor.name, tensor) is not tensor:
            raise InvalidModelFile(source, f"tensor {tensor.name!r} is in more than one part")
    return dataclasses.replace(
        first,
        source=source,
        tensor_count=len(tensors),
        tensors=tensors,
        file_size=sum(p.file_size for p in headers),
        expected_size=sum(p.expected_size for p in headers),
        _by_name=MappingProxyType(by_name),
    )


def _check_part(part: GGUFHeader, index: int, total: int, source: str) -> None:
    count = part.get_int("split.count")
    if count != total:
        raise InvalidModelFile(
            source,
            f"part {index + 1} ({part.source}) says split.count {count}, but the model has "
            f"{total} parts",
        )
    number = part.get_int("split.no")  # 0-based, as llama-gguf-split writes it
    if number != index:
        raise InvalidModelFile(
            source, f"part {index + 1} ({part.source}) says split.no {number}, expected {index}"
        )


def write_sparse_copy(prefix: bytes, file_size: int, path: str | os.PathLike[str]) -> None:
    """Write a file holding `prefix` and then zeros up to `file_size` bytes, sparsely.

    The header parses like the original's (`gguf.GGUFReader`, llama.cpp), the tensor data
    reads as zeros, and on file systems with sparse files (ext4, APFS, XFS) only the prefix
    takes disk space.

    Raises:
        ValueError: the prefix is longer than `file_size`.
        ExternalFailure: the file cannot be written.
    """
    if len(prefix) > file_size:
        raise ValueError(f"prefix of {len(prefix):,} bytes is longer than {file_size:,}")
    try:
        with open(path, "wb") as out:
            out.write(prefix)
            out.truncate(file_size)
    except OSError as exc:
        Path(path).unlink(missing_ok=True)  # no half-written copy left behind
        raise ExternalFailure(f"Could not write {os.fspath(path)}: {exc.strerror or exc}.") from exc
