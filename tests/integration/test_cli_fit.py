"""`llm-workbench fit`, `recommend` and `hw --json`: the documented JSON interface, for real.

Run as a user would: a real process, the real SmolLM2 file, llama.cpp's real dry run, a real
loopback HTTP server for a remote header, the shipped catalog.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_cli import _cli
from tests.servers.range_server import Fault, RangeServer, serve_files

pytestmark = pytest.mark.integration

FIT_KEYS = {
    "verdict",
    "badge",
    "gpu_layers",
    "n_layers",
    "context_length",
    "kv_cache_type",
    "flash_attn",
    "memory",
    "budget_bytes",
    "headroom_bytes",
    "tight",
    "max_context",
    "decode_tokens_per_second",
    "prompt_tokens_per_second",
    "speed_basis",
    "speed_detail",
    "explanation",
    "reason",
}
MEMORY_KEYS = {
    "weights_bytes",
    "kv_cache_bytes",
    "compute_bytes",
    "overhead_bytes",
    "gpu_bytes",
    "host_bytes",
    "total_bytes",
    "resident_bytes",
    "source",
}


def test_fit_json_of_a_local_file_has_the_documented_fields(
    workbench_home: Path, smollm2_path: Path
) -> None:
    result = _cli(workbench_home, "fit", str(smollm2_path), "--ctx", "2048", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= FIT_KEYS
    assert set(data["memory"]) == MEMORY_KEYS
    assert data["model"] == {"path": str(smollm2_path)}
    assert data["verdict"] == "cpu_only"  # this machine: CPU build, no GPU
    assert data["n_layers"] == 30
    assert data["context_length"] == 2048
    memory = data["memory"]
    assert memory["source"] == "llama.cpp dry run"
    assert memory["kv_cache_bytes"] == 2048 * 30 * (192 + 192) * 2  # 45 MiB, reference §2.3
    assert memory["weights_bytes"] == 96_576_768  # the file's tensor data
    assert memory["total_bytes"] == (
        memory["weights_bytes"]
        + memory["kv_cache_bytes"]
        + memory["compute_bytes"]
        + memory["overhead_bytes"]
    )
    assert memory["gpu_bytes"] == 0
    assert data["decode_tokens_per_second"] > 0
    assert data["speed_basis"] in ("estimated", "measured")
    assert data["max_context"] == 8192


def test_fit_of_a_catalog_model_dry_runs_its_synthetic_header(workbench_home: Path) -> None:
    result = _cli(
        workbench_home, "fit", "llama-3.3-70b-instruct", "--quant", "q4_k_m", "--ctx", "8192",
        "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model"]["catalog_id"] == "llama-3.3-70b-instruct"
    assert data["model"]["quant"] == "Q4_K_M"
    assert data["memory"]["source"] == "llama.cpp dry run"
    assert data["memory"]["kv_cache_bytes"] == 2560 * 1024**2  # reference/fit.md §2.9
    assert 39.5 < data["memory"]["weights_bytes"] / 1024**3 < 39.7
    assert data["n_layers"] == 80


def test_fit_of_a_remote_file_reads_only_its_header(
    workbench_home: Path, smollm2_path: Path
) -> None:
    with serve_files({"/org/repo/resolve/main/smol.gguf": smollm2_path}) as server:
        url = server.url("/org/repo/resolve/main/smol.gguf")
        result = _cli(workbench_home, "fit", url, "--ctx", "2048", "--json")
        fetched = server.bytes_sent()
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model"] == {"url": url}
    assert data["memory"]["source"] == "llama.cpp dry run"
    assert data["memory"]["kv_cache_bytes"] == 2048 * 30 * 384 * 2
    assert data["memory"]["weights_bytes"] == 96_576_768
    assert fetched < smollm2_path.stat().st_size / 10


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault(status=404), "no such file (HTTP 404)"),
        (Fault(body=b"<!doctype html><html><body>Sign in</body></html>"), "GGUF"),
    ],
    ids=["404", "web-page"],
)
def test_fit_of_a_bad_url_exits_non_zero_with_one_line(
    workbench_home: Path, smollm2_path: Path, fault: Fault, expected: str
) -> None:
    server = RangeServer().start()
    try:
        url = server.add("/m.gguf", smollm2_path, fault)
        result = _cli(workbench_home, "fit", url)
    finally:
        server.stop()
    assert result.returncode == 4
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("unknown: ")
    assert expected.lower() in lines[0].lower()
    assert "Traceback" not in result.stderr


def test_fit_of_a_truncated_file_is_unknown_not_a_guess(
    workbench_home: Path, smollm2_path: Path, tmp_path: Path
) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(smollm2_path.read_bytes()[:4096])
    result = _cli(workbench_home, "fit", str(cut), "--json")
    assert result.returncode == 4
    data = json.loads(result.stdout)
    assert data["verdict"] == "unknown"
    assert data["memory"] is None
    assert data["decode_tokens_per_second"] is None
    assert "truncated" in data["reason"]
    assert result.stderr.startswith("unknown: ")


def test_fit_of_an_unknown_name_says_what_exists(workbench_home: Path) -> None:
    result = _cli(workbench_home, "fit", "no-such-model")
    assert result.returncode == 2
    assert "No local model is called" in result.stderr
    assert "Traceback" not in result.stderr


def test_recommend_json_lists_the_best_quant_of_each_catalog_model(workbench_home: Path) -> None:
    result = _cli(workbench_home, "recommend", "--ctx", "4096", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["context_length"] == 4096
    rows = data["recommendations"]
    assert rows and all(row["best"] for row in rows)
    assert len({row["model_id"] for row in rows}) == len(rows)
    smol = next(row for row in rows if row["model_id"] == "smollm2-135m-instruct")
    assert smol["verdict"] in ("cpu_only", "full_gpu")
    assert set(smol) >= FIT_KEYS
    assert smol["memory"]["source"] == "formula"
    everything = json.loads(_cli(workbench_home, "recommend", "--all", "--json").stdout)
    assert len(everything["recommendations"]) > len(rows)


def test_recommend_text_groups_by_size_class_with_the_advice(workbench_home: Path) -> None:
    result = _cli(workbench_home, "recommend", "--ctx", "2048")
    assert result.returncode == 0, result.stderr
    assert "Under 3B: prototyping and tests, not production" in result.stdout
    assert "★ SmolLM2 135M Instruct" in result.stdout


def test_hw_json_has_the_documented_fields(workbench_home: Path) -> None:
    data = json.loads(_cli(workbench_home, "hw", "--json").stdout)
    for key in ("ram_total_bytes", "ram_available_bytes", "gpu_memory_limit_bytes", "gpus"):
        assert key in data
    assert data["ram_total_bytes"] == data["memory"]["total_bytes"]
    assert isinstance(data["cpu"], dict)
    assert data["apple"] is None or isinstance(data["apple"], dict)
