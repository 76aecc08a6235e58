"""llama.cpp "loads" synthetic headers of large models (no_alloc) and reports exact KV sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.synth_gguf import ArchConfig, write_sparse_gguf
from tests.synth_dryrun_helper import dry_run

pytestmark = pytest.mark.integration

CONFIGS = json.loads((Path(__file__).parent.parent / "fixtures" / "model_configs.json").read_text())
N_CTX = 8192

# model -> (KV MiB per cache as llama.cpp prints it, layers per cache) at n_ctx 8192, f16 KV.
# Equal to cells x layers x (k_gqa + v_gqa) x 2 bytes (fit.md §2.3); Gemma 3 keeps SWA
# layers at full size because the C API defaults to swa_full=true; DeepSeek V3's MLA
# cache stores only the 576-wide latent K (fit.md §2.5).
EXPECTED_KV = {
    "llama-3.3-70b-instruct": ((2560.0,), (80,)),
    "mistral-large-2407": ((2816.0,), (88,)),
    "qwen2.5-72b-instruct": ((2560.0,), (80,)),
    "gemma-3-27b-it": ((640.0, 3328.0), (10, 52)),
    "deepseek-v3": ((549.0,), (61,)),
    "qwen3-8b": ((1152.0,), (36,)),
    "qwen3-30b-a3b": ((768.0,), (48,)),
    "phi-4": ((1600.0,), (40,)),
}


@pytest.mark.parametrize("key", list(EXPECTED_KV))
def test_llama_cpp_loads_the_synthetic_header_and_reports_its_kv_cache(
    key: str, tmp_path: Path
) -> None:
    config = ArchConfig.from_dict(CONFIGS[key])
    path = write_sparse_gguf(config, "Q4_K_M", tmp_path / f"{key}.gguf", name=key)
    result = dry_run(path, N_CTX)
    assert result.ok, result.log[-2000:]
    print(key, *result.kv_lines, result.compute_mib, sep="\n  ")
    kv_mib, layers = EXPECTED_KV[key]
    assert result.kv_mib == kv_mib
    assert result.kv_layers == layers
    assert result.compute_mib["CPU"] > 0


def test_kv_size_follows_the_formula_for_gqa_models(tmp_path: Path) -> None:
    config = ArchConfig.from_dict(CONFIGS["llama-3.3-70b-instruct"])
    result = dry_run(write_sparse_gguf(config, "Q4_K_M", tmp_path / "m.gguf"), 4096)
    per_layer = 2 * 8 * 128 * 2  # (K + V) x head_count_kv x head_dim x f16
    assert result.kv_mib == (4096 * 80 * per_layer / 2**20,)
    assert result.kv_cells == (4096,)


def test_a_broken_header_is_reported_not_crashed_on(tmp_path: Path) -> None:
    config = ArchConfig.from_dict({**CONFIGS["qwen3-8b"], "architecture": "qwen3moe"})
    result = dry_run(write_sparse_gguf(config, "Q4_K_M", tmp_path / "bad.gguf"), N_CTX)
    assert not result.model_loaded
    assert "error loading model: n_expert must be > 0 for QWEN3MOE" in result.log
