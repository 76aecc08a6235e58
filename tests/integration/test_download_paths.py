"""Both transfer paths of the downloader: the lean http.client one (no proxy) and httpx (when
a proxy is configured), each resuming after a drop and verifying."""

from __future__ import annotations

from pathlib import Path

import pytest

import app.downloads as downloads
from app.download_stream import proxies_configured
from app.downloads import download_model_file
from tests.servers.hf_server import Fault, HFServer, HubRepo

pytestmark = pytest.mark.integration
REPO = "org/smol-GGUF"
FILE = "smol-Q4_1.gguf"


def test_proxy_variables_select_the_httpx_path() -> None:
    assert not proxies_configured({})
    assert proxies_configured({"HTTPS_PROXY": "http://proxy:3128"})
    assert proxies_configured({"all_proxy": "socks5://proxy:1080"})
    assert not proxies_configured({"NO_PROXY": "localhost"})


@pytest.mark.parametrize("proxied", [False, True], ids=["http.client", "httpx"])
def test_each_path_resumes_a_drop_and_verifies(
    hf_server: HFServer,
    smollm2_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    proxied: bool,
) -> None:
    monkeypatch.setattr(downloads, "proxies_configured", lambda: proxied)
    hf_server.add(HubRepo(REPO, {FILE: smollm2_path}))
    hf_server.fault(REPO, FILE, Fault(drop_at=30_000_000, times=1))
    got = download_model_file(
        REPO, FILE, cache_dir=tmp_path, token=None, endpoint=hf_server.endpoint, backoff_s=0.01
    )
    assert got.path.read_bytes() == smollm2_path.read_bytes()
    ranges = [r.range for r in hf_server.data_requests(FILE)]
    assert ranges[0] == ""
    assert ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"
    assert int(ranges[1].removeprefix("bytes=").rstrip("-")) <= 30_000_000


def test_a_killed_pull_resumes_where_it_stopped(
    hf_server: HFServer, smollm2_path: Path, tmp_path: Path, workbench_home: Path
) -> None:
    """SIGKILL mid-download (no chance to clean up), then the same command again."""
    import os
    import signal
    import subprocess
    import sys
    import time

    hf_server.add(HubRepo(REPO, {FILE: smollm2_path}))
    hf_server.fault(REPO, FILE, Fault(bytes_per_second=10_000_000, times=1))
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "HF_ENDPOINT": hf_server.endpoint, "HF_HUB_CACHE": str(tmp_path),
           "HF_TOKEN": ""}  # fmt: skip
    command = [sys.executable, "-m", "ui.entry", "pull", f"{REPO}:{FILE}"]
    first = subprocess.Popen(command, env=env, cwd=root, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)  # fmt: skip
    partial = next(iter(tmp_path.glob("models--org--smol-GGUF/blobs")), None)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        partial = next(iter(tmp_path.glob("models--org--smol-GGUF/blobs/*.incomplete")), None)
        if partial is not None and partial.stat().st_size > 20_000_000:
            break
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert partial is not None
    kept = partial.stat().st_size
    assert 0 < kept < smollm2_path.stat().st_size

    second = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True,
                            timeout=120, check=False)  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert Path(second.stdout.strip()).read_bytes() == smollm2_path.read_bytes()
    last = hf_server.data_requests(FILE)[-1].range
    assert last.startswith("bytes=") and int(last.removeprefix("bytes=").rstrip("-")) >= kept - (
        1 << 20
    )
