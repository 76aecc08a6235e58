"""Our resumable downloader against the loopback Hub serving the real SmolLM2 file."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.downloads import (
    DiskFull,
    DownloadCorrupt,
    DownloadFailed,
    DownloadPaused,
    DownloadProgress,
    download_model,
    download_model_file,
)
from app.hf_cache import DISK_MARGIN_BYTES, GatedRepo, RemoteFileNotFound, UnsafeFileName
from runtimes.base import CancelToken
from tests.servers.hf_server import Fault, HFServer, HubRepo, file_sha256

REPO = "bartowski/SmolLM2-135M-Instruct-GGUF"
FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER = "models--bartowski--SmolLM2-135M-Instruct-GGUF"
_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def hub(hf_server: HFServer, smollm2_path: Path) -> HFServer:
    hf_server.add(HubRepo(REPO, {FILE: smollm2_path}))
    hf_server.add(
        HubRepo(
            "org/Split-GGUF",
            {
                "Q8_0/m-Q8_0-00001-of-00002.gguf": b"a" * 300_000,
                "Q8_0/m-Q8_0-00002-of-00002.gguf": b"b" * 200_000,
                "m-Q4_K_M.gguf": b"c" * 1000,
            },
        )
    )
    hf_server.add(HubRepo("org/Gated-GGUF", {"g.gguf": b"gated" * 1000}, gated=True))
    return hf_server


def _get(hub: HFServer, cache: Path, **kwargs: object) -> object:
    options: dict[str, object] = {"cache_dir": cache, "token": None, "endpoint": hub.endpoint}
    options.update(kwargs)
    return download_model_file(REPO, FILE, backoff_s=0.01, **options)  # type: ignore[arg-type]


def test_download_lands_in_the_hf_cache_layout(
    hub: HFServer, smollm2_path: Path, tmp_path: Path
) -> None:
    seen: list[DownloadProgress] = []

    result = download_model_file(
        REPO, FILE, cache_dir=tmp_path, token=None, endpoint=hub.endpoint, progress=seen.append
    )

    sha = file_sha256(smollm2_path)
    commit = hub.repos[REPO].commit
    folder = tmp_path / FOLDER
    assert result.path == folder / "snapshots" / commit / FILE
    assert result.path.read_bytes() == smollm2_path.read_bytes()
    assert (result.sha256, result.commit, result.size) == (sha, commit, smollm2_path.stat().st_size)
    assert os.readlink(result.path) == f"../../blobs/{sha}"
    assert (folder / "refs" / "main").read_text() == commit
    assert sorted(p.name for p in (folder / "blobs").iterdir()) == [sha]
    assert seen[-1].state == "done"
    assert seen[-1].done_bytes == seen[-1].total_bytes == result.size
    assert "verifying" in {p.state for p in seen}


def test_a_dropped_connection_is_resumed_with_range_in_the_same_call(
    hub: HFServer, smollm2_path: Path, tmp_path: Path
) -> None:
    hub.fault(REPO, FILE, Fault(drop_at=10_000_000, times=1))

    result = _get(hub, tmp_path)

    assert result.path.read_bytes() == smollm2_path.read_bytes()  # type: ignore[attr-defined]
    assert [r.range for r in hub.data_requests(FILE)] == ["", "bytes=10000000-"]
    assert [r.status for r in hub.data_requests(FILE)] == [200, 206]


def test_a_failed_run_leaves_a_partial_file_that_the_next_run_resumes(
    hub: HFServer, smollm2_path: Path, tmp_path: Path
) -> None:
    hub.fault(REPO, FILE, Fault(drop_at=20_000_000, times=1))
    with pytest.raises(DownloadFailed, match="already fetched are kept"):
        _get(hub, tmp_path, retries=0)
    partial = tmp_path / FOLDER / "blobs" / f"{file_sha256(smollm2_path)}.incomplete"
    assert partial.stat().st_size == 20_000_000

    result = _get(hub, tmp_path)  # "after a restart": a fresh call

    assert result.path.read_bytes() == smollm2_path.read_bytes()  # type: ignore[attr-defined]
    assert hub.data_requests(FILE)[-1].range == "bytes=20000000-"
    assert hub.data_requests(FILE)[-1].sent == smollm2_path.stat().st_size - 20_000_000
    assert not partial.exists()


def test_a_server_ignoring_range_starts_over_and_still_verifies(
    hub: HFServer, smollm2_path: Path, tmp_path: Path
) -> None:
    hub.fault(REPO, FILE, Fault(drop_at=5_000_000, times=1))
    with pytest.raises(DownloadFailed):
        _get(hub, tmp_path, retries=0)
    hub.fault(REPO, FILE, Fault(ignore_range=True))

    result = _get(hub, tmp_path)

    assert result.path.read_bytes() == smollm2_path.read_bytes()  # type: ignore[attr-defined]
    last = hub.data_requests(FILE)[-1]
    assert (last.range, last.status, last.sent) == (
        "bytes=5000000-",
        200,
        smollm2_path.stat().st_size,
    )


def test_wrong_bytes_raise_corrupt_and_leave_no_file(hub: HFServer, tmp_path: Path) -> None:
    hub.fault(REPO, FILE, Fault(wrong_bytes=True))

    with pytest.raises(DownloadCorrupt, match="arrived damaged"):
        _get(hub, tmp_path)

    assert list((tmp_path / FOLDER / "blobs").iterdir()) == []
    assert not (tmp_path / FOLDER / "snapshots").exists()


def test_server_errors_are_retried_then_give_up_keeping_nothing_wrong(
    hub: HFServer, smollm2_path: Path, tmp_path: Path
) -> None:
    hub.fault(REPO, FILE, Fault(status=500, times=2))

    result = _get(hub, tmp_path, retries=2)

    assert [r.status for r in hub.data_requests(FILE)] == [500, 500, 200]
    assert result.size == smollm2_path.stat().st_size  # type: ignore[attr-defined]


def test_unsafe_names_are_refused_before_any_request(hub: HFServer, tmp_path: Path) -> None:
    for name in ("../../etc/passwd", "/etc/passwd", "a/../../b.gguf", "C:\\x.gguf"):
        with pytest.raises(UnsafeFileName):
            download_model_file(REPO, name, cache_dir=tmp_path, token=None, endpoint=hub.endpoint)

    assert hub.requests == []
    assert not any(tmp_path.iterdir())


def test_gated_repo_without_token_names_the_license_page(hub: HFServer, tmp_path: Path) -> None:
    with pytest.raises(GatedRepo) as caught:
        download_model_file(
            "org/Gated-GGUF", "g.gguf", cache_dir=tmp_path, token=None, endpoint=hub.endpoint
        )

    assert caught.value.license_url == f"{hub.endpoint}/org/Gated-GGUF"
    assert f"{hub.endpoint}/org/Gated-GGUF" in str(caught.value)
    assert "token is needed" in str(caught.value)


def test_gated_repo_with_a_granted_token_downloads(hub: HFServer, tmp_path: Path) -> None:
    hub.grant("hf_ok")

    result = download_model_file(
        "org/Gated-GGUF", "g.gguf", cache_dir=tmp_path, token="hf_ok", endpoint=hub.endpoint
    )

    assert result.path.read_bytes() == b"gated" * 1000
    assert hub.data_requests("g.gguf")[-1].authorization == "Bearer hf_ok"


def test_gated_repo_with_an_ungranted_token_says_access_is_missing(
    hub: HFServer, tmp_path: Path
) -> None:
    with pytest.raises(GatedRepo, match="not been granted access"):
        download_model_file(
            "org/Gated-GGUF", "g.gguf", cache_dir=tmp_path, token="hf_no", endpoint=hub.endpoint
        )


def test_missing_file_is_a_clear_error(hub: HFServer, tmp_path: Path) -> None:
    with pytest.raises(RemoteFileNotFound, match=re.escape("has no file 'nope.gguf'")):
        download_model_file(
            REPO, "nope.gguf", cache_dir=tmp_path, token=None, endpoint=hub.endpoint
        )
    with pytest.raises(RemoteFileNotFound, match="There is no repository nobody/none"):
        download_model_file(
            "nobody/none", "x.gguf", cache_dir=tmp_path, token=None, endpoint=hub.endpoint
        )


def test_a_slow_download_cancelled_keeps_the_partial_and_resumes_later(
    hub: HFServer, smollm2_path: Path, tmp_path: Path
) -> None:
    hub.fault(REPO, FILE, Fault(bytes_per_second=20_000_000, times=1))
    cancel = CancelToken()

    def stop_after_a_while(progress: DownloadProgress) -> None:
        if progress.done_bytes >= 3_000_000:
            cancel.cancel()

    with pytest.raises(DownloadPaused):
        _get(hub, tmp_path, cancel=cancel, progress=stop_after_a_while)
    partial = tmp_path / FOLDER / "blobs" / f"{file_sha256(smollm2_path)}.incomplete"
    kept = partial.stat().st_size
    assert 3_000_000 <= kept < smollm2_path.stat().st_size

    result = _get(hub, tmp_path)

    assert result.path.read_bytes() == smollm2_path.read_bytes()  # type: ignore[attr-defined]
    assert hub.data_requests(FILE)[-1].range == f"bytes={kept}-"


def test_split_set_downloads_with_one_combined_progress(hub: HFServer, tmp_path: Path) -> None:
    names = ["Q8_0/m-Q8_0-00001-of-00002.gguf", "Q8_0/m-Q8_0-00002-of-00002.gguf"]
    seen: list[DownloadProgress] = []

    results = download_model(
        "org/Split-GGUF",
        names,
        cache_dir=tmp_path,
        token=None,
        endpoint=hub.endpoint,
        progress=seen.append,
    )

    assert [r.path.read_bytes() for r in results] == [b"a" * 300_000, b"b" * 200_000]
    assert results[1].path.parent == results[0].path.parent  # snapshots/<commit>/Q8_0/
    assert {p.total_bytes for p in seen} == {500_000}
    assert seen[-1].done_bytes == 500_000
    assert [p.done_bytes for p in seen] == sorted(p.done_bytes for p in seen)


def test_not_enough_disk_is_refused_before_the_first_byte(
    hub: HFServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12, 50_000_000)
    )

    with pytest.raises(DiskFull, match="Not enough free disk"):
        _get(hub, tmp_path)

    assert hub.data_requests() == []


@pytest.fixture()
def small_disk(tmp_path: Path, smollm2_path: Path) -> Iterator[Path]:
    """A tmpfs just big enough to pass the disk check for SmolLM2 (needs root)."""
    mount = tmp_path / "small"
    mount.mkdir()
    size = smollm2_path.stat().st_size + DISK_MARGIN_BYTES + 4 * 1024 * 1024
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_enospc_mid_download_removes_the_partial_and_says_disk_full(
    hub: HFServer, small_disk: Path
) -> None:
    filler = small_disk / "filler"

    def fill_the_disk(progress: DownloadProgress) -> None:
        # Another program takes the space once we have started (the check passed).
        if progress.state == "downloading" and not filler.exists():
            free = shutil.disk_usage(small_disk).free
            with filler.open("wb") as handle:
                handle.truncate(0)
                handle.write(b"\0" * (free - 20 * 1024 * 1024))

    with pytest.raises(DiskFull, match="disk filled up"):
        _get(hub, small_disk / "cache", progress=fill_the_disk)

    assert list((small_disk / "cache" / FOLDER / "blobs").iterdir()) == []


def test_cli_pull_prints_the_snapshot_path(
    hub: HFServer, tmp_path: Path, smollm2_path: Path
) -> None:
    done = _pull(hub, tmp_path, f"{REPO}:Q4_1")

    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    assert path == tmp_path / FOLDER / "snapshots" / hub.repos[REPO].commit / FILE
    assert path.read_bytes() == smollm2_path.read_bytes()
    assert "100%" in done.stderr


def test_cli_pull_with_a_quant_takes_the_whole_split_set(hub: HFServer, tmp_path: Path) -> None:
    done = _pull(hub, tmp_path, "org/Split-GGUF:Q8_0")

    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).name == "m-Q8_0-00001-of-00002.gguf"
    assert (Path(done.stdout.strip()).parent / "m-Q8_0-00002-of-00002.gguf").read_bytes() == (
        b"b" * 200_000
    )


def test_cli_pull_without_a_choice_lists_the_files_and_exits_2(
    hub: HFServer, tmp_path: Path
) -> None:
    done = _pull(hub, tmp_path, "org/Split-GGUF")

    assert done.returncode == 2
    assert done.stdout == ""
    assert "Q8_0 (2 parts)" in done.stderr
    assert "m-Q4_K_M.gguf" in done.stderr


def _pull(hub: HFServer, cache: Path, ref: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_CACHE": str(cache),
        "HF_TOKEN": "",
        "PYTHONPATH": str(_ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli_download", "pull", ref],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=_ROOT,
    )
