"""Discover against a loopback Hugging Face Hub: search, listings, fit badges, the CLI, the view.

The real huggingface_hub client talks to `tests/servers/hf_server.py`, which serves the real
SmolLM2 file (and synthetic bytes for the other quantizations of a listing).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.errors import UserFacingError
from app.fit_types import FitRequest
from app.hardware import CPUInfo, HardwareProfile, MemoryInfo, OSInfo
from app.hub_search import fit_quants, repo_files, search_hub
from tests.servers.hf_server import HFServer, HubRepo

pytestmark = pytest.mark.integration
GIB = 1 << 30
PROFILE = HardwareProfile(
    os=OSInfo("Linux", "6.8", "x86_64"),
    cpu=CPUInfo("x86", 8, 8, 0, 16, ("AVX2",)),
    memory=MemoryInfo(32 * GIB, 30 * GIB, 0, 0),
)
SMOL_REPO = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"


def _serve(server: HFServer, smollm2_path: Path) -> None:
    server.add(
        HubRepo(
            SMOL_REPO,
            {
                "smollm2-135m-instruct-q4_1.gguf": smollm2_path,
                "smollm2-135m-instruct-q8_0.gguf": b"GGUF" + bytes(4_000),
                "Q2_K/smollm2-Q2_K-00001-of-00002.gguf": b"GGUF" + bytes(1_000),
                "Q2_K/smollm2-Q2_K-00002-of-00002.gguf": bytes(600),
                "mmproj-f16.gguf": b"GGUF" + bytes(100),
                "README.md": b"# SmolLM2",
            },
            downloads=900,
            license="apache-2.0",
        )
    )
    server.add(HubRepo("other/smol-notes", {"notes.txt": b"x"}, tags=("text",), downloads=5))
    server.add(HubRepo("meta/Gated-GGUF", {"g-Q4_K_M.gguf": b"GGUF" + bytes(10)}, gated=True))


def test_search_finds_gguf_repositories_only(hf_server: HFServer, smollm2_path: Path) -> None:
    _serve(hf_server, smollm2_path)
    hits = search_hub("smol", endpoint=hf_server.endpoint)
    assert [h.repo_id for h in hits] == [SMOL_REPO]
    assert hits[0].downloads == 900
    assert "gguf" in hits[0].tags


def test_listing_groups_quants_with_sizes_and_sha256(
    hf_server: HFServer, smollm2_path: Path
) -> None:
    _serve(hf_server, smollm2_path)
    info = repo_files(SMOL_REPO, endpoint=hf_server.endpoint)
    assert info.license == "apache-2.0"
    assert [(q.quant, q.files, q.size_bytes) for q in info.quants] == [
        (
            "Q2_K",
            ("Q2_K/smollm2-Q2_K-00001-of-00002.gguf", "Q2_K/smollm2-Q2_K-00002-of-00002.gguf"),
            1_604,
        ),
        ("Q8_0", ("smollm2-135m-instruct-q8_0.gguf",), 4_004),
        ("Q4_1", ("smollm2-135m-instruct-q4_1.gguf",), smollm2_path.stat().st_size),
    ]
    digest = hashlib.sha256(smollm2_path.read_bytes()).hexdigest()
    assert info.quants[2].sha256 == (digest,)


def test_fit_badges_come_from_a_real_header(hf_server: HFServer, smollm2_path: Path) -> None:
    hf_server.add(
        HubRepo(
            "org/smol",
            {"smol-Q4_1.gguf": smollm2_path},
            gguf={"total": 134_515_008, "architecture": "llama", "context_length": 8192},
        )
    )
    info = repo_files("org/smol", endpoint=hf_server.endpoint)
    assert (info.architecture, info.parameters, info.context_length) == ("llama", 134_515_008, 8192)
    assert info.summary == "llama · 135M parameters · 8,192 context · apache-2.0"
    verdicts = fit_quants(info, PROFILE, FitRequest(n_ctx=2048), endpoint=hf_server.endpoint)
    verdict = verdicts["smol-Q4_1.gguf"]
    assert verdict.verdict == "cpu_only"
    assert verdict.n_layers == 30
    assert verdict.memory is not None
    assert verdict.memory.kv_cache_bytes == 2048 * 30 * 384 * 2


def test_a_listing_whose_smallest_file_is_not_gguf_gives_unknown_badges(
    hf_server: HFServer, smollm2_path: Path
) -> None:
    _serve(hf_server, smollm2_path)
    info = repo_files(SMOL_REPO, endpoint=hf_server.endpoint)
    verdicts = fit_quants(info, PROFILE, FitRequest(), endpoint=hf_server.endpoint)
    assert {v.verdict for v in verdicts.values()} == {"unknown"}
    assert all(v.reason for v in verdicts.values())


def test_gated_repositories_list_but_their_headers_need_access(hf_server: HFServer) -> None:
    """As on the Hub: a gated repository's listing is public, its files are not."""
    hf_server.add(HubRepo("meta/Gated-GGUF", {"g-Q4_K_M.gguf": b"GGUF"}, gated=True))
    info = repo_files("meta/Gated-GGUF", endpoint=hf_server.endpoint)
    assert info.gated
    assert [q.quant for q in info.quants] == ["Q4_K_M"]
    verdict = fit_quants(info, PROFILE, FitRequest(), endpoint=hf_server.endpoint)["g-Q4_K_M.gguf"]
    assert verdict.verdict == "unknown"
    assert "401" in verdict.reason


def test_a_missing_repository_says_so(hf_server: HFServer) -> None:
    with pytest.raises(UserFacingError, match="There is no repository nobody/none"):
        repo_files("nobody/none", endpoint=hf_server.endpoint)


def _cli(server: HFServer, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLM_WORKBENCH_HOME": str(home), "HF_ENDPOINT": server.endpoint}
    return subprocess.run(
        [sys.executable, "-m", "ui.entry", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_cli_search_and_repo_listing(
    hf_server: HFServer, smollm2_path: Path, workbench_home: Path
) -> None:
    _serve(hf_server, smollm2_path)
    text = _cli(hf_server, workbench_home, "search", "smol")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith(SMOL_REPO)
    assert "900 downloads" in text.stdout
    listed = _cli(hf_server, workbench_home, "search", "--repo", SMOL_REPO, "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert [f["quant"] for f in data["files"]] == ["Q2_K", "Q8_0", "Q4_1"]
    assert data["files"][2]["size_bytes"] == smollm2_path.stat().st_size


def test_cli_search_without_the_hub_is_one_line_and_exit_3(workbench_home: Path) -> None:
    env = {**os.environ, "LLM_WORKBENCH_HOME": str(workbench_home)}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"
    result = subprocess.run(
        [sys.executable, "-m", "ui.entry", "search", "qwen"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 3
    assert "Could not reach Hugging Face at http://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr
