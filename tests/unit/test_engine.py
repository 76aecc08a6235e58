"""Load planning: threads, context and GPU offload chosen for the machine, with reasons."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

from app.catalog import find_model, load_catalog
from app.engine import GIB, gpu_budget_bytes, plan_load
from app.fit_service import fit_file
from app.fit_types import FitRequest
from app.hardware import GPU, CPUInfo, HardwareProfile, MemoryInfo, OSInfo
from app.synth_gguf import ArchConfig, write_sparse_gguf
from runtimes.base import LoadOptions

MODEL_4GB = 4 * GIB


def test_cpu_build_offloads_nothing_and_uses_physical_cores() -> None:
    plan = plan_load(8192, backend="CPU", threads=2, n_ctx=4096)
    assert plan.options.n_gpu_layers == 0
    assert plan.options.n_threads == 2
    assert plan.options.n_ctx == 4096
    assert plan.explanation == "CPU build · CPU only · 2 threads (physical cores) · context 4096"


def test_context_is_capped_at_the_trained_length() -> None:
    assert plan_load(2048, backend="CPU", threads=1, n_ctx=4096).options.n_ctx == 2048
    assert plan_load(0, backend="CPU", threads=1, n_ctx=4096).options.n_ctx == 4096


def test_gpu_build_offloads_everything_when_it_fits() -> None:
    plan = plan_load(
        8192, backend="CUDA", threads=8, file_size=MODEL_4GB, n_layers=32, gpu_budget=24 * GIB
    )
    assert plan.options.n_gpu_layers == -1
    assert "all layers on the GPU (needs ~4.9 of 24.0 GiB)" in plan.explanation


def test_gpu_build_offloads_a_share_when_it_does_not_fit() -> None:
    plan = plan_load(
        8192, backend="Metal", threads=8, file_size=MODEL_4GB, n_layers=32, gpu_budget=3 * GIB
    )
    # (3 GiB - 0.5 GiB reserve) / (4 GiB x 1.1) of 32 layers = 18 layers.
    assert plan.options.n_gpu_layers == 18
    assert "18/32 layers on the GPU" in plan.explanation


def test_gpu_build_with_no_room_runs_on_the_cpu() -> None:
    plan = plan_load(
        8192, backend="CUDA", threads=8, file_size=MODEL_4GB, n_layers=32, gpu_budget=GIB // 4
    )
    assert plan.options.n_gpu_layers == 0
    assert plan.explanation.startswith("CUDA build · CPU only: needs ~4.9 GiB")


def test_unknown_budget_offloads_everything_and_says_it_was_not_checked() -> None:
    plan = plan_load(8192, backend="CUDA", threads=8, file_size=MODEL_4GB, n_layers=32)
    assert plan.options.n_gpu_layers == -1
    assert "memory not checked" in plan.explanation


def test_gpu_budget_comes_from_metal_limit_or_the_freest_gpu() -> None:
    apple = SimpleNamespace(apple=SimpleNamespace(gpu_limit_bytes=21 * GIB), gpus=())
    nvidia = SimpleNamespace(
        apple=None,
        gpus=(
            SimpleNamespace(memory_free_bytes=10 * GIB),
            SimpleNamespace(memory_free_bytes=None),
            SimpleNamespace(memory_free_bytes=20 * GIB),
        ),
    )
    nothing = SimpleNamespace(apple=None, gpus=())
    assert gpu_budget_bytes(apple) == 21 * GIB  # type: ignore[arg-type]
    assert gpu_budget_bytes(nvidia) == 20 * GIB  # type: ignore[arg-type]
    assert gpu_budget_bytes(nothing) is None  # type: ignore[arg-type]
    assert gpu_budget_bytes(None) is None


def test_plan_keeps_the_gpu_budget_for_the_hosts_memory_check() -> None:
    gpu = plan_load(8192, backend="CUDA", threads=8, file_size=MODEL_4GB, gpu_budget=24 * GIB)
    cpu = plan_load(8192, backend="CPU", threads=8, file_size=MODEL_4GB, gpu_budget=24 * GIB)
    assert (gpu.gpu_budget, cpu.gpu_budget) == (24 * GIB, None)


def test_saved_options_are_used_as_saved_with_the_context_capped() -> None:
    saved = LoadOptions(
        n_ctx=16384,
        n_gpu_layers=12,
        n_threads=None,
        n_batch=256,
        flash_attn=True,
        kv_cache_type="q8_0",
        use_mmap=False,
        use_mlock=True,
        keep_alive_s=300.0,
    )
    plan = plan_load(8192, backend="CUDA", threads=4, gpu_budget=GIB, saved=saved)
    assert plan.options == dataclasses.replace(saved, n_ctx=8192)
    assert plan.explanation == (
        "CUDA build · saved options · 12 layers on the GPU · 4 threads · context 8192 · "
        "flash attention · KV cache q8_0 · mmap off · mlock · unload after 300 s idle"
    )


def test_saved_defaults_on_a_cpu_build_explain_briefly() -> None:
    plan = plan_load(0, backend="CPU", threads=2, saved=LoadOptions(n_threads=1))
    assert plan.options == LoadOptions(n_threads=1)
    assert plan.explanation == "CPU build · saved options · CPU only · 1 thread · context 4096"


def _cuda_box(free_vram_gib: float) -> HardwareProfile:
    return HardwareProfile(
        os=OSInfo("Linux", "6.8", "x86_64"),
        cpu=CPUInfo("AMD Ryzen 9 7950X", 16, 16, 0, 32, ("AVX2",)),
        memory=MemoryInfo(128 * GIB, 120 * GIB, 0, 0),
        gpus=(
            GPU(
                "NVIDIA",
                "NVIDIA GeForce RTX 4090",
                24 * GIB,
                int(free_vram_gib * GIB),
                "550",
                "8.9",
                "nvml",
            ),
        ),
    )


def test_gpu_plan_places_layers_by_the_fit_estimator(tmp_path: Path) -> None:
    """A 70B Q4_K_M header on a 24 GB card: the estimator's partial offload, not a ratio."""
    config = ArchConfig.from_dict(find_model(load_catalog(), "llama-3.3-70b-instruct").arch)  # type: ignore[union-attr]
    path = write_sparse_gguf(config, "Q4_K_M", tmp_path / "llama-70b-Q4_K_M.gguf")
    plan = plan_load(
        131072, backend="CUDA", threads=16, n_ctx=8192, path=str(path), profile=_cuda_box(23)
    )
    verdict = fit_file(
        path, _cuda_box(23), FitRequest(n_ctx=8192), use_dry_run=False, backend="CUDA"
    )
    assert verdict.verdict == "partial"
    assert plan.options.n_gpu_layers == verdict.gpu_layers
    assert 35 <= plan.options.n_gpu_layers <= 45  # reference/fit.md §2.9: about 42
    assert f"{verdict.gpu_layers}/81 layers on the GPU" in plan.explanation


def test_gpu_plan_offloads_all_of_a_small_model_by_the_estimator(smollm2_path: Path) -> None:
    plan = plan_load(
        8192, backend="CUDA", threads=16, path=str(smollm2_path), profile=_cuda_box(20)
    )
    assert plan.options.n_gpu_layers == -1
    assert "all layers on the GPU (needs 0." in plan.explanation
    assert "of 20.0 GiB" in plan.explanation
