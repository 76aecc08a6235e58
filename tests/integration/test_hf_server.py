"""The loopback Hub answers the real `huggingface_hub` as huggingface.co does, faults included."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.servers.hf_server import Fault, HFServer, HubRepo, file_sha256

SMOL_REPO = "bartowski/SmolLM2-135M-Instruct-GGUF"
SMOL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GATED_REPO = "meta-llama/Gated-GGUF"
GATED_BYTES = bytes(range(256)) * 4096  # 1 MiB
SPLIT_BYTES = b"split part " * 1000


@pytest.fixture()
def hub(hf_server: HFServer, smollm2_path: Path) -> HFServer:
    hf_server.add(
        HubRepo(SMOL_REPO, {SMOL_FILE: smollm2_path}, downloads=500, likes=7, license="mit")
    )
    hf_server.add(
        HubRepo(
            "unsloth/Qwen-Big-GGUF",
            {
                "Q8_0/qwen-Q8_0-00001-of-00002.gguf": SPLIT_BYTES,
                "Q8_0/qwen-Q8_0-00002-of-00002.gguf": SPLIT_BYTES[:100],
                "qwen-Q4_K_M.gguf": b"q4km",
            },
            downloads=900,
            likes=3,
        )
    )
    hf_server.add(HubRepo("org/safetensors-only", {"model.safetensors": b"st"}, tags=("pt",)))
    hf_server.add(HubRepo(GATED_REPO, {"gated.gguf": GATED_BYTES}, gated=True, downloads=10))
    return hf_server


def test_search_finds_gguf_repos_by_text_and_sorts_by_downloads(hub: HFServer) -> None:
    api = HfApi(endpoint=hub.endpoint)

    found = [m.id for m in api.list_models(search="smollm2", filter="gguf")]
    ranked = [
        (m.id, m.downloads, m.likes) for m in api.list_models(filter="gguf", sort="downloads")
    ]

    assert found == [SMOL_REPO]
    assert ranked == [
        ("unsloth/Qwen-Big-GGUF", 900, 3),
        (SMOL_REPO, 500, 7),
        (GATED_REPO, 10, 0),
    ]
    assert [m.id for m in api.list_models(author="unsloth", limit=5)] == ["unsloth/Qwen-Big-GGUF"]


def test_model_info_gives_sizes_and_lfs_sha256(hub: HFServer, smollm2_path: Path) -> None:
    info = HfApi(endpoint=hub.endpoint).model_info(SMOL_REPO, files_metadata=True)

    assert info.sha == hub.repos[SMOL_REPO].commit
    assert len(info.sha) == 40
    assert info.card_data is not None and info.card_data.license == "mit"
    assert info.gated is False
    assert info.siblings is not None
    [sibling] = info.siblings
    assert sibling.rfilename == SMOL_FILE
    assert sibling.size == smollm2_path.stat().st_size
    assert sibling.lfs is not None
    assert sibling.lfs.sha256 == hashlib.sha256(smollm2_path.read_bytes()).hexdigest()
    assert sibling.lfs.size == smollm2_path.stat().st_size


def test_model_info_of_a_gated_repo_is_public_and_says_gated(hub: HFServer) -> None:
    info = HfApi(endpoint=hub.endpoint).model_info(GATED_REPO, revision="main")

    assert info.gated == "manual"


def test_repo_tree_lists_files_with_lfs_oid_and_folders(hub: HFServer) -> None:
    api = HfApi(endpoint=hub.endpoint)

    top = [(e.path, type(e).__name__) for e in api.list_repo_tree("unsloth/Qwen-Big-GGUF")]
    deep = {
        e.path: (e.size, e.lfs.sha256 if e.lfs else None)
        for e in api.list_repo_tree("unsloth/Qwen-Big-GGUF", recursive=True)
        if type(e).__name__ == "RepoFile"
    }

    assert top == [("Q8_0", "RepoFolder"), ("qwen-Q4_K_M.gguf", "RepoFile")]
    assert deep == {
        "Q8_0/qwen-Q8_0-00001-of-00002.gguf": (
            len(SPLIT_BYTES),
            hashlib.sha256(SPLIT_BYTES).hexdigest(),
        ),
        "Q8_0/qwen-Q8_0-00002-of-00002.gguf": (
            100,
            hashlib.sha256(SPLIT_BYTES[:100]).hexdigest(),
        ),
        "qwen-Q4_K_M.gguf": (4, hashlib.sha256(b"q4km").hexdigest()),
    }


def test_file_metadata_etag_is_the_sha256(hub: HFServer, smollm2_path: Path) -> None:
    url = hf_hub_url(SMOL_REPO, SMOL_FILE, endpoint=hub.endpoint)

    meta = get_hf_file_metadata(url)

    assert meta.etag == file_sha256(smollm2_path)
    assert meta.size == smollm2_path.stat().st_size
    assert meta.commit_hash == hub.repos[SMOL_REPO].commit
    assert meta.location.startswith(f"{hub.endpoint}/cdn/{SMOL_REPO}/")


def test_hf_hub_download_fetches_the_real_file_into_the_cache(
    hub: HFServer, smollm2_path: Path, tmp_path: Path
) -> None:
    path = Path(hf_hub_download(SMOL_REPO, SMOL_FILE, cache_dir=tmp_path, endpoint=hub.endpoint))

    commit = hub.repos[SMOL_REPO].commit
    folder = tmp_path / "models--bartowski--SmolLM2-135M-Instruct-GGUF"
    assert path == folder / "snapshots" / commit / SMOL_FILE
    assert path.read_bytes() == smollm2_path.read_bytes()
    assert path.resolve() == folder / "blobs" / file_sha256(smollm2_path)
    assert (folder / "refs" / "main").read_text() == commit


def test_gated_repo_without_token_raises_gated_repo_error_with_401(hub: HFServer) -> None:
    url = hf_hub_url(GATED_REPO, "gated.gguf", endpoint=hub.endpoint)

    with pytest.raises(GatedRepoError) as caught:
        get_hf_file_metadata(url, token=False)

    assert caught.value.response is not None
    assert caught.value.response.status_code == 401


def test_gated_repo_with_an_ungranted_token_raises_with_403(hub: HFServer) -> None:
    url = hf_hub_url(GATED_REPO, "gated.gguf", endpoint=hub.endpoint)

    with pytest.raises(GatedRepoError) as caught:
        get_hf_file_metadata(url, token="hf_not_granted")

    assert caught.value.response is not None
    assert caught.value.response.status_code == 403


def test_gated_repo_with_a_granted_token_downloads(hub: HFServer, tmp_path: Path) -> None:
    hub.grant("hf_granted")

    path = hf_hub_download(
        GATED_REPO, "gated.gguf", cache_dir=tmp_path, endpoint=hub.endpoint, token="hf_granted"
    )

    assert Path(path).read_bytes() == GATED_BYTES
    assert "Bearer hf_granted" in {r.authorization for r in hub.requests}


def test_unknown_repo_file_and_revision_raise_the_library_errors(hub: HFServer) -> None:
    api = HfApi(endpoint=hub.endpoint)

    with pytest.raises(RepositoryNotFoundError):
        api.model_info("nobody/nothing")
    with pytest.raises(RepositoryNotFoundError):
        get_hf_file_metadata(hf_hub_url("nobody/nothing", "x.gguf", endpoint=hub.endpoint))
    with pytest.raises(EntryNotFoundError):
        get_hf_file_metadata(hf_hub_url(SMOL_REPO, "missing.gguf", endpoint=hub.endpoint))
    with pytest.raises(RevisionNotFoundError):
        api.model_info(SMOL_REPO, revision="v9")


def _cdn(hub: HFServer, repo_id: str, filename: str) -> str:
    return f"{hub.endpoint}/cdn/{repo_id}/{hub.repos[repo_id].commit}/{filename}"


def test_range_requests_get_206_with_content_range(hub: HFServer) -> None:
    answer = httpx.get(_cdn(hub, GATED_REPO, "gated.gguf"), headers={"Range": "bytes=1000-1999"})

    assert answer.status_code == 206
    assert answer.headers["Content-Range"] == f"bytes 1000-1999/{len(GATED_BYTES)}"
    assert answer.headers["Accept-Ranges"] == "bytes"
    assert answer.content == GATED_BYTES[1000:2000]


def test_faults_ignore_range_and_wrong_bytes_keep_the_length(hub: HFServer) -> None:
    url = _cdn(hub, GATED_REPO, "gated.gguf")
    hub.fault(GATED_REPO, "gated.gguf", Fault(ignore_range=True, wrong_bytes=True))

    answer = httpx.get(url, headers={"Range": "bytes=10-"})

    assert answer.status_code == 200
    assert "Accept-Ranges" not in answer.headers
    assert len(answer.content) == len(GATED_BYTES)
    assert answer.content != GATED_BYTES


def test_fault_drop_at_hangs_up_at_that_offset_then_behaves_after_times(hub: HFServer) -> None:
    url = _cdn(hub, GATED_REPO, "gated.gguf")
    hub.fault(GATED_REPO, "gated.gguf", Fault(drop_at=300_000, times=1))

    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url)
    again = httpx.get(url, headers={"Range": "bytes=300000-"})

    deadline = time.monotonic() + 5  # the hung-up answer is logged after its socket closes
    while len(hub.data_requests("gated.gguf")) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    sent = sorted(r.sent for r in hub.data_requests("gated.gguf"))
    assert sent == sorted([300_000, len(GATED_BYTES) - 300_000])
    assert again.content == GATED_BYTES[300_000:]


def test_fault_status_answers_that_status_on_the_data_only(hub: HFServer) -> None:
    hub.fault(GATED_REPO, "gated.gguf", Fault(status=500))
    hub.grant("t")

    meta = get_hf_file_metadata(
        hf_hub_url(GATED_REPO, "gated.gguf", endpoint=hub.endpoint), token="t"
    )
    answer = httpx.get(_cdn(hub, GATED_REPO, "gated.gguf"))

    assert meta.size == len(GATED_BYTES)
    assert answer.status_code == 500
