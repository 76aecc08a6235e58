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
