"""Remote GGUF headers over HTTP Range from a loopback server: real models, faults, splits."""

from __future__ import annotations

import dataclasses
import io
import os
import socket
from pathlib import Path

import gguf
import numpy as np
import pytest

from app.gguf_remote import (
    FIRST_CHUNK,
    RemoteHeaderError,
    fetch_remote_header,
    fetch_remote_model,
    parse_model_ref,
    read_model_header,
    write_sparse_copy,
)
from runtimes.errors import ExternalFailure, InvalidModelFile
from runtimes.gguf_header import GGUFHeader, parse_header, read_header
from tests.servers.range_server import Fault, RangeServer, range_server_fixture  # noqa: F401

MiB = 1 << 20


def as_local(header: GGUFHeader, source: str) -> GGUFHeader:
    return dataclasses.replace(header, source=source)


def expected_ranges(end: int, file_size: int) -> list[str]:
    """The Range headers of growing chunks (2, 4, 8, 16, 16 ... MiB) that cover `end` bytes."""
    ranges, start, chunk = [], 0, FIRST_CHUNK
    while start < end:
        stop = min(start + chunk, file_size)
        ranges.append(f"bytes={start}-{stop - 1}")
        start, chunk = stop, min(chunk * 2, 16 * MiB)
    return ranges


def write_synthetic(path: Path, n_tensors: int = 3, name: str = "Tiny") -> Path:
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name(name)
    writer.add_block_count(n_tensors)
    for i in range(n_tensors):
        writer.add_tensor(f"blk.{i}.w", np.full((4, 32), i, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    return write_synthetic(tmp_path / "tiny.gguf")


# --- real models --------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["smollm2_path", "gemma_path"])
def test_real_model_header_read_remotely_matches_local_and_fetches_little(
    model: str, request: pytest.FixtureRequest, range_server: RangeServer
) -> None:
    path: Path = request.getfixturevalue(model)
    local = read_header(path)
    url = range_server.add("/m.gguf", path)

    remote = fetch_remote_header(url)

    assert as_local(remote.header, str(path)) == local
    assert remote.header.source == url
    assert remote.url == url
    assert remote.file_size == path.stat().st_size
    gets = [r.range for r in range_server.requests if r.method == "GET"]
    assert gets == expected_ranges(local.data_offset, local.file_size)
    assert remote.bytes_fetched == len(remote.prefix) == range_server.bytes_sent()
    assert remote.prefix == path.read_bytes()[: len(remote.prefix)]
    reparsed = parse_header(io.BytesIO(remote.prefix), file_size=local.file_size, source="p")
    assert as_local(reparsed, str(path)) == local
    share = remote.bytes_fetched / local.file_size
    assert share < 0.10
    print(f"\n{path.name}: fetched {remote.bytes_fetched:,} of {local.file_size:,} ({share:.2%})")


def test_server_ignoring_range_is_read_only_as_far_as_needed(
    gemma_path: Path, range_server: RangeServer
) -> None:
    url = range_server.add("/m.gguf", gemma_path, Fault(ignore_range=True))
    size = gemma_path.stat().st_size

    remote = fetch_remote_header(url)

    assert as_local(remote.header, str(gemma_path)) == read_header(gemma_path)
    assert remote.bytes_fetched < remote.header.data_offset + 2 * MiB
    assert [r.method for r in range_server.requests] == ["HEAD", "GET"]
    assert range_server.bytes_sent() < size // 10  # the body was closed, not drained


def test_header_over_the_bound_fails_without_fetching_more(
    smollm2_path: Path, range_server: RangeServer
) -> None:
    url = range_server.add("/m.gguf", smollm2_path)

    with pytest.raises(InvalidModelFile) as info:
        fetch_remote_header(url, max_header_bytes=MiB)

    assert info.value.path == url
    assert info.value.reason == (
        "its header is larger than 1,048,576 bytes, the most read from a remote file"
    )
    assert [r.range for r in range_server.requests if r.method == "GET"] == ["bytes=0-1048575"]


def test_header_over_the_bound_with_range_ignored_is_bounded(
    smollm2_path: Path, range_server: RangeServer
) -> None:
    url = range_server.add("/m.gguf", smollm2_path, Fault(ignore_range=True))

    with pytest.raises(InvalidModelFile, match="larger than 1,048,576 bytes"):
        fetch_remote_header(url, max_header_bytes=MiB)

    assert range_server.bytes_sent() < smollm2_path.stat().st_size // 10


# --- redirects and tokens ----------------------------------------------------------------


def test_redirect_is_followed_and_range_kept(tiny: Path, range_server: RangeServer) -> None:
    range_server.add("/cdn/blob", tiny)
    url = range_server.redirect("/org/repo/resolve/main/tiny.gguf", "/cdn/blob")

    remote = fetch_remote_header(url)

    size = tiny.stat().st_size
    assert remote.url == range_server.url("/cdn/blob")
    assert remote.header.source == url
    assert as_local(remote.header, str(tiny)) == read_header(tiny)
    seen = [(r.method, r.path, r.range) for r in range_server.requests]
    assert seen == [
        ("HEAD", "/org/repo/resolve/main/tiny.gguf", ""),
        ("HEAD", "/cdn/blob", ""),
        ("GET", "/org/repo/resolve/main/tiny.gguf", f"bytes=0-{size - 1}"),
        ("GET", "/cdn/blob", f"bytes=0-{size - 1}"),
    ]


def test_hf_reference_uses_hf_endpoint_and_hf_token(
    tiny: Path, range_server: RangeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", range_server.base_url)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    range_server.add("/cdn/blob", tiny, Fault(token="hf_secret"))
    range_server.redirect("/org/repo/resolve/main/tiny.gguf", "/cdn/blob")
    url = parse_model_ref("hf://org/repo/tiny.gguf")

    remote = fetch_remote_header(url)

    assert url == range_server.url("/org/repo/resolve/main/tiny.gguf")
    assert remote.header.get_str("general.name") == "Tiny"
    assert {r.authorization for r in range_server.requests} == {"Bearer hf_secret"}


def test_hf_token_is_not_sent_to_other_hosts(
    tiny: Path, range_server: RangeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    url = range_server.add("/tiny.gguf", tiny)

    fetch_remote_header(url)

    assert {r.authorization for r in range_server.requests} == {""}


def test_explicit_token_is_sent(tiny: Path, range_server: RangeServer) -> None:
    url = range_server.add("/tiny.gguf", tiny, Fault(token="t0k"))

    assert fetch_remote_header(url, token="t0k").header.tensor_count == 3
    assert {r.authorization for r in range_server.requests} == {"Bearer t0k"}


# --- network failures -----------------------------------------------------------------------

STATUS_REASONS = {
    401: "the server wants a token (HTTP 401): set HF_TOKEN or enter a Hugging Face token; "
    "for a gated model, accept its license on the model page first (Hugging Face also "
    "answers 401 for a repository that does not exist)",
    403: "access denied (HTTP 403): the token lacks permission, or the model's license has "
    "not been accepted yet; accept it on the model page and try again",
    404: "no such file (HTTP 404): check the repository, revision and file name",
    500: "the server failed (HTTP 500 Internal Server Error)",
    503: "the server failed (HTTP 503 Service Unavailable)",
}


@pytest.mark.parametrize("status", sorted(STATUS_REASONS))
def test_http_error_status_gives_a_one_line_reason(
    status: int, tiny: Path, range_server: RangeServer
) -> None:
    url = range_server.add("/m.gguf", tiny, Fault(status=status))

    with pytest.raises(RemoteHeaderError) as info:
        fetch_remote_header(url)

    assert info.value.status == status
    assert info.value.reason == STATUS_REASONS[status]
    assert str(info.value) == f"Could not read {url}: {STATUS_REASONS[status]}."


def test_missing_token_gives_401_reason(tiny: Path, range_server: RangeServer) -> None:
    url = range_server.add("/m.gguf", tiny, Fault(token="right"))

    with pytest.raises(RemoteHeaderError) as info:
        fetch_remote_header(url, token="wrong")

    assert info.value.status == 401
    assert info.value.reason == STATUS_REASONS[401]


def test_unknown_path_gives_404(range_server: RangeServer) -> None:
    with pytest.raises(RemoteHeaderError) as info:
        fetch_remote_header(range_server.url("/nothing.gguf"))

    assert info.value.status == 404


def test_unreachable_port_gives_cannot_connect() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/m.gguf"

    with pytest.raises(RemoteHeaderError) as info:
        fetch_remote_header(url)

    assert info.value.status is None
    assert info.value.reason.startswith(f"cannot connect to 127.0.0.1:{port} (")
    assert "\n" not in str(info.value)


def test_slow_server_gives_timeout(tiny: Path, range_server: RangeServer) -> None:
    url = range_server.add("/m.gguf", tiny, Fault(delay_s=1.0))

    with pytest.raises(RemoteHeaderError) as info:
        fetch_remote_header(url, timeout=0.2)

    assert info.value.reason == "the server did not answer within 0.2 s"


# --- bad content ----------------------------------------------------------------------------


def test_html_page_is_not_a_gguf_file(range_server: RangeServer) -> None:
    page = b"<!doctype html><html><body>Sign in to continue</body></html>"
    url = range_server.add("/m.gguf", page, Fault(content_type="text/html; charset=utf-8"))

    with pytest.raises(InvalidModelFile) as info:
        fetch_remote_header(url)

    assert info.value.path == url
    assert info.value.reason == 'it does not start with "GGUF"; the server sent a web page'


def test_file_of_only_1000_bytes_is_truncated(
    smollm2_path: Path, range_server: RangeServer
) -> None:
    url = range_server.add("/m.gguf", smollm2_path.read_bytes()[:1000])

    with pytest.raises(InvalidModelFile) as info:
        fetch_remote_header(url)

    assert info.value.path == url
    assert info.value.reason.startswith("truncated: 1,000 bytes, but ")


@pytest.mark.parametrize("ignore_range", [False, True])
def test_connection_dropped_mid_header_is_truncated(
    ignore_range: bool, smollm2_path: Path, range_server: RangeServer
) -> None:
    fault = Fault(drop_at=1000, ignore_range=ignore_range)
    url = range_server.add("/m.gguf", smollm2_path, fault)
    size = smollm2_path.stat().st_size

    with pytest.raises(InvalidModelFile) as info:
        fetch_remote_header(url)

    assert info.value.reason == (
        f"truncated: the server sent 1,000 of {size:,} bytes and then nothing more, "
        "before the header's end"
    )


# --- split models ---------------------------------------------------------------------------


def write_split(folder: Path, n_tensors: int = 6, per_part: int = 2) -> list[Path]:
    """A synthetic model split the way llama.cpp's tools split it (gguf's own splitter)."""
    writer = gguf.GGUFWriter(folder / "tiny.gguf", "llama", split_max_tensors=per_part)
    writer.add_name("Tiny split")
    writer.add_block_count(n_tensors)
    for i in range(n_tensors):
        writer.add_tensor(f"blk.{i}.w", np.full((4, 32), i, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    count = -(-n_tensors // per_part)
    return [folder / f"tiny-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]


def write_part(path: Path, number: int, count: int, total: int, names: list[str]) -> Path:
    """One hand-made part with the given split.* values (for inconsistent splits)."""
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_uint16("split.no", number)
    writer.add_uint16("split.count", count)
    writer.add_int32("split.tensors.count", total)
    for name in names:
        writer.add_tensor(name, np.zeros((4, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_split_model_parts_are_merged_remotely_and_locally(
    tmp_path: Path, range_server: RangeServer
) -> None:
    parts = write_split(tmp_path)
    for part in parts:
        range_server.add(f"/org/repo/{part.name}", part)
    second = range_server.url(f"/org/repo/{parts[1].name}")

    model = fetch_remote_model(second)
    local = read_model_header(parts[2])

    first = range_server.url(f"/org/repo/{parts[0].name}")
    assert [p.url for p in model.parts] == [range_server.url(f"/org/repo/{p.name}") for p in parts]
    merged = model.header
    assert merged.source == first
    assert merged.tensor_count == 6
    assert [t.name for t in merged.tensors] == [f"blk.{i}.w" for i in range(6)]
    assert merged.file_size == sum(p.stat().st_size for p in parts)
    assert merged.is_complete
    assert merged.get_str("general.name") == "Tiny split"
    assert merged.get_int("split.count") == 3
    assert merged.tensor("blk.5.w") is not None
    assert local == as_local(merged, str(parts[0]))
    assert local.source == str(parts[0])


def test_single_file_model_is_one_part(tiny: Path, range_server: RangeServer) -> None:
    url = range_server.add("/tiny.gguf", tiny)

    model = fetch_remote_model(url)

    assert len(model.parts) == 1
    assert model.header == model.parts[0].header
    assert read_model_header(tiny) == read_header(tiny)


def test_missing_local_part_is_named(tmp_path: Path) -> None:
    parts = write_split(tmp_path)
    parts[1].unlink()

    with pytest.raises(InvalidModelFile) as info:
        read_model_header(parts[0])

    assert info.value.reason == f"part 2 of 3 of this split model is missing: {parts[1]}"


def test_missing_remote_part_gives_404(tmp_path: Path, range_server: RangeServer) -> None:
    parts = write_split(tmp_path)
    range_server.add(f"/{parts[0].name}", parts[0])
    range_server.add(f"/{parts[2].name}", parts[2])

    with pytest.raises(RemoteHeaderError) as info:
        fetch_remote_model(range_server.url(f"/{parts[0].name}"))

    assert info.value.status == 404
    assert info.value.url == range_server.url(f"/{parts[1].name}")


def test_inconsistent_split_count_is_refused(tmp_path: Path, range_server: RangeServer) -> None:
    p1 = write_part(tmp_path / "x-00001-of-00002.gguf", 0, 2, 2, ["a"])
    p2 = write_part(tmp_path / "x-00002-of-00002.gguf", 1, 3, 2, ["b"])
    for part in (p1, p2):
        range_server.add(f"/{part.name}", part)

    with pytest.raises(InvalidModelFile) as local:
        read_model_header(p1)
    with pytest.raises(InvalidModelFile) as remote:
        fetch_remote_model(range_server.url(f"/{p1.name}"))

    assert local.value.reason == f"part 2 ({p2}) says split.count 3, but the model has 2 parts"
    assert remote.value.reason == (
        f"part 2 ({range_server.url('/' + p2.name)}) says split.count 3, but the model has 2 parts"
    )


def test_tensor_total_must_match_split_tensors_count(tmp_path: Path) -> None:
    p1 = write_part(tmp_path / "x-00001-of-00002.gguf", 0, 2, 3, ["a"])
    write_part(tmp_path / "x-00002-of-00002.gguf", 1, 2, 3, ["b"])

    with pytest.raises(InvalidModelFile) as info:
        read_model_header(p1)

    assert info.value.reason == "its parts hold 2 tensors, but split.tensors.count says 3"


def test_renamed_part_of_a_split_model_is_refused(tmp_path: Path) -> None:
    renamed = write_part(tmp_path / "model.gguf", 0, 2, 2, ["a"])

    with pytest.raises(InvalidModelFile) as info:
        read_model_header(renamed)

    assert info.value.reason == (
        "it is one part of a model split in 2, but its name does not say so; "
        "keep the part names llama-gguf-split gave (...-00001-of-00002.gguf)"
    )


def test_parts_out_of_order_are_refused(tmp_path: Path) -> None:
    p1 = write_part(tmp_path / "x-00001-of-00002.gguf", 1, 2, 2, ["a"])
    write_part(tmp_path / "x-00002-of-00002.gguf", 0, 2, 2, ["b"])

    with pytest.raises(InvalidModelFile) as info:
        read_model_header(p1)

    assert info.value.reason == f"part 1 ({p1}) says split.no 1, expected 0"


def test_duplicate_tensor_across_parts_is_refused(tmp_path: Path) -> None:
    p1 = write_part(tmp_path / "x-00001-of-00002.gguf", 0, 2, 2, ["a"])
    write_part(tmp_path / "x-00002-of-00002.gguf", 1, 2, 2, ["a"])

    with pytest.raises(InvalidModelFile) as info:
        read_model_header(p1)

    assert info.value.reason == "tensor 'a' is in more than one part"


# --- sparse copies --------------------------------------------------------------------------


def test_sparse_copy_of_remote_header_reads_back_with_gguf(
    smollm2_path: Path, range_server: RangeServer, tmp_path: Path
) -> None:
    remote = fetch_remote_header(range_server.add("/m.gguf", smollm2_path))
    copy = tmp_path / "sparse.gguf"

    write_sparse_copy(remote.prefix, remote.file_size, copy)

    stat = copy.stat()
    assert stat.st_size == smollm2_path.stat().st_size
    assert stat.st_blocks * 512 < stat.st_size // 10
    real, sparse = gguf.GGUFReader(smollm2_path), gguf.GGUFReader(copy)
    assert len(sparse.tensors) == len(real.tensors) == remote.header.tensor_count
    assert [(t.name, t.shape.tolist(), t.tensor_type) for t in sparse.tensors] == [
        (t.name, t.shape.tolist(), t.tensor_type) for t in real.tensors
    ]
    assert sparse.data_offset == real.data_offset
    assert not sparse.tensors[-1].data.any()  # the data region reads as zeros
    assert read_header(copy) == as_local(remote.header, str(copy))


def test_sparse_copy_into_a_missing_folder_is_an_external_failure(tmp_path: Path) -> None:
    target = tmp_path / "no-such-folder" / "x.gguf"

    with pytest.raises(ExternalFailure) as info:
        write_sparse_copy(b"GGUF", 10, target)

    assert info.value.message == f"Could not write {target}: No such file or directory."


def test_sparse_copy_refuses_a_prefix_longer_than_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="longer than 2"):
        write_sparse_copy(b"GGUF", 2, tmp_path / "x.gguf")
    assert not os.path.exists(tmp_path / "x.gguf")
