"""The formulas of app.fit_memory against llama.cpp's own dry run (no_alloc), and fit_file /
fit_url end to end on real and synthetic files.

KV caches must equal llama.cpp's figure to its 0.01 MiB print precision; compute buffers must
be within COMPUTE_TOLERANCE (5 %) of llama.cpp's reservation.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.fit_memory import compute_bytes_formula, kv_cache_bytes
from app.fit_service import fit_file, fit_url
from app.fit_types import GIB, MIB, FitRequest
from app.hardware import CPUInfo, HardwareProfile, MemoryInfo, OSInfo
from app.model_shape import ModelShape
from app.synth_gguf import ArchConfig, write_sparse_gguf
from runtimes.gguf_header import read_header
from runtimes.llamacpp.dryrun import DryRunFailed, dry_run
from tests.servers.range_server import Fault, RangeServer, range_server_fixture  # noqa: F401

pytestmark = pytest.mark.integration
CONFIGS = json.loads((Path(__file__).parent.parent / "fixtures" / "model_configs.json").read_text())
COMPUTE_TOLERANCE = 0.05
PRINT_PRECISION = 0.005 * MIB
PROFILE = HardwareProfile(
    OSInfo("Linux", "6.8", "x86_64"), CPUInfo("x", 2, 2, 0, 2), MemoryInfo(64 * GIB, 60 * GIB, 0, 0)
)
LARGE = (
    "llama-3.3-70b-instruct",
    "mistral-large-2407",
    "qwen2.5-72b-instruct",
    "gemma-3-27b-it",
    "deepseek-v3",
    "qwen3-30b-a3b",
)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("synth")
    return {
        key: write_sparse_gguf(ArchConfig.from_dict(CONFIGS[key]), "Q4_K_M", folder / f"{key}.gguf")
        for key in LARGE
    }


def model_path(name: str, request: pytest.FixtureRequest) -> Path:
    if name in ("smollm2", "gemma"):
        return Path(request.getfixturevalue(f"{name}_path"))
    return request.getfixturevalue("synthetic")[name]  # type: ignore[no-any-return]


def shape_of(path: Path) -> ModelShape:
    return ModelShape.from_header(read_header(path))


@pytest.mark.parametrize(
    ("name", "n_ctx", "kv_type", "flash_attn", "swa_full"),
    [
        ("smollm2", 1000, "f16", False, True),
        ("smollm2", 8192, "f16", True, True),
        ("smollm2", 4096, "q8_0", True, True),
        ("gemma", 2048, "f16", False, True),
        ("gemma", 32768, "f16", False, False),
        ("gemma", 32768, "f16", True, True),
        ("gemma", 4000, "q8_0", True, False),
    ],
)
def test_kv_cache_of_real_models_equals_llama_cpp(
    name: str,
    n_ctx: int,
    kv_type: str,
    flash_attn: bool,
    swa_full: bool,
    request: pytest.FixtureRequest,
) -> None:
    path = model_path(name, request)
    report = dry_run(path, n_ctx, kv_cache_type=kv_type, flash_attn=flash_attn, swa_full=swa_full)
    fit = FitRequest(n_ctx=n_ctx, kv_cache_type=kv_type, flash_attn=flash_attn, swa_full=swa_full)
    # each cache (global, sliding-window) is printed to 0.01 MiB
    tolerance = PRINT_PRECISION * len(report.kv_caches)
    assert abs(kv_cache_bytes(shape_of(path), n_ctx, fit) - report.kv_bytes) <= tolerance


@pytest.mark.parametrize("name", LARGE)
def test_kv_cache_of_large_synthetic_headers_equals_llama_cpp_at_8k(
    name: str, request: pytest.FixtureRequest
) -> None:
    path = model_path(name, request)
    report = dry_run(path, 8192)
    assert kv_cache_bytes(shape_of(path), 8192, FitRequest(n_ctx=8192)) == report.kv_bytes


COMPUTE_CASES = [(n, fa) for n in ("smollm2", "gemma", *LARGE) for fa in (False, True)]


@pytest.mark.parametrize(("name", "flash_attn"), COMPUTE_CASES)
def test_compute_buffer_formula_is_within_5_percent_of_llama_cpp_at_8k(
    name: str, flash_attn: bool, request: pytest.FixtureRequest
) -> None:
    if name == "deepseek-v3" and flash_attn:
        pytest.xfail("MLA with flash attention: formula 382 MiB vs llama.cpp 416 MiB (-8.2 %)")
    path = model_path(name, request)
    report = dry_run(path, 8192, flash_attn=flash_attn)
    formula = compute_bytes_formula(
        shape_of(path), 8192, FitRequest(n_ctx=8192, flash_attn=flash_attn)
    )
    error = (formula - report.compute_bytes) / report.compute_bytes
    print(
        f"{name} fa={flash_attn}: formula {formula / MIB:.2f} MiB, llama.cpp "
        f"{report.compute_bytes / MIB:.2f} MiB, {error:+.2%}"
    )
    assert abs(error) <= COMPUTE_TOLERANCE


def test_fit_file_on_a_real_model_uses_the_dry_run(smollm2_path: Path) -> None:
    verdict = fit_file(smollm2_path, PROFILE, FitRequest(n_ctx=2048), backend="CPU")
    assert verdict.verdict == "cpu_only"
    assert verdict.memory is not None
    assert verdict.memory.source == "llama.cpp dry run"
    assert verdict.memory.kv_cache_bytes == 45 * MIB  # fit.md §2.9


def test_fit_file_on_bad_files_is_unknown_with_a_reason(tmp_path: Path, smollm2_path: Path) -> None:
    text = tmp_path / "notes.gguf"
    text.write_text("not a model at all\n" * 10)
    truncated = tmp_path / "short.gguf"
    truncated.write_bytes(smollm2_path.read_bytes()[:1000])
    for path in (text, truncated):
        verdict = fit_file(path, PROFILE, FitRequest(), backend="CPU")
        assert verdict.verdict == "unknown"
        assert verdict.reason
        assert verdict.explanation == f"unknown: {verdict.reason}"


def test_fit_file_on_an_unknown_architecture_is_unknown(tmp_path: Path) -> None:
    config = ArchConfig.from_dict(CONFIGS["qwen3-8b"])
    path = write_sparse_gguf(config, "Q4_K_M", tmp_path / "alien.gguf")
    with path.open("r+b") as file:  # patch in place: the sparse file is gigabytes long
        head = file.read(1 << 16)
        old = b"general.architecture"
        at = head.index(old) + len(old) + 4 + 8  # key, value type, string length
        assert head[at : at + 5] == b"qwen3"
        file.seek(at)
        file.write(b"nosuc")  # same length: the rest of the header stays valid
    verdict = fit_file(path, PROFILE, FitRequest(), backend="CPU")
    assert verdict.verdict == "unknown"
    assert "nosuc" in verdict.reason


def test_fit_url_reads_only_the_header_and_matches_fit_file(
    smollm2_path: Path, range_server: RangeServer
) -> None:
    url = range_server.add("/smol.gguf", smollm2_path)
    request = FitRequest(n_ctx=2048)
    remote = fit_url(url, PROFILE, request, backend="CPU")
    local = fit_file(smollm2_path, PROFILE, request, backend="CPU")
    assert remote.memory is not None and local.memory is not None
    assert remote.memory.source == "llama.cpp dry run"
    assert remote.memory.total_bytes == local.memory.total_bytes
    assert range_server.bytes_sent() < smollm2_path.stat().st_size // 10


@pytest.mark.parametrize(
    "fault",
    [Fault(status=404), Fault(body=b"<html><body>Sign in</body></html>", content_type="text/html")],
)
def test_fit_url_of_a_bad_answer_is_unknown(
    fault: Fault, smollm2_path: Path, range_server: RangeServer
) -> None:
    url = range_server.add("/m.gguf", smollm2_path, fault)
    verdict = fit_url(url, PROFILE, FitRequest(), backend="CPU")
    assert verdict.verdict == "unknown"
    assert verdict.explanation.startswith("unknown: ")


def test_fit_url_of_a_truncated_file_is_unknown(
    smollm2_path: Path, range_server: RangeServer
) -> None:
    url = range_server.add("/short.gguf", smollm2_path.read_bytes()[:1000])
    verdict = fit_url(url, PROFILE, FitRequest(), backend="CPU")
    assert verdict.verdict == "unknown"
    assert verdict.explanation.startswith("unknown: ")


def test_dry_run_failure_carries_the_log_tail(smollm2_path: Path) -> None:
    with pytest.raises(DryRunFailed) as caught:
        dry_run(smollm2_path, 2048, kv_cache_type="q8_0", flash_attn=False)
    assert "llama.cpp could not size a context" in str(caught.value)
    assert caught.value.details
