"""Fit verdicts on hand-built machines: Apple working set, NVIDIA VRAM, plain CPUs.

Shapes come from the shipped catalog through `app.recommend.shape_for_quant` (the exact tensor
table llama-quantize writes); reference/fit.md §2.9 gives the expected orders of magnitude.
"""

from __future__ import annotations

import dataclasses

import pytest

from app.catalog import CatalogModel, find_model, load_catalog
from app.fit import MARGIN_BYTES, Budget, fit_shape, machine_budget
from app.fit_memory import breakdown
from app.fit_types import GIB, FitRequest
from app.hardware import GPU, AppleSilicon, CPUInfo, HardwareProfile, MemoryInfo, OSInfo
from app.model_shape import ModelShape
from app.recommend import shape_for_quant

LINUX = OSInfo("Linux", "6.8", "x86_64")


def catalog_model(model_id: str) -> CatalogModel:
    found = find_model(load_catalog(), model_id)
    assert found is not None, model_id
    return found


def shape(model_id: str, quant: str = "Q4_K_M") -> ModelShape:
    return shape_for_quant(catalog_model(model_id), quant)


def mac(ram_gib: int, limit_gib: float, available_gib: float) -> HardwareProfile:
    apple = AppleSilicon("Apple M3 Max", 12, 4, 40, ram_gib * GIB, int(limit_gib * GIB), "metal", 0)
    cpu = CPUInfo("Apple M3 Max", 16, 12, 4, 16, ("NEON",))
    memory = MemoryInfo(ram_gib * GIB, int(available_gib * GIB), 0, 0)
    return HardwareProfile(OSInfo("macOS", "15.1", "arm64"), cpu, memory, apple=apple)


def nvidia(*free_gib: float, ram_gib: float = 60, others: tuple[GPU, ...] = ()) -> HardwareProfile:
    gpus = tuple(
        GPU("NVIDIA", "NVIDIA GeForce RTX 4090", 24 * GIB, int(f * GIB), "550", "8.9", "nvml", i)
        for i, f in enumerate(free_gib)
    )
    cpu = CPUInfo("AMD Ryzen 9 7950X", 16, 16, 0, 32, ("AVX2",))
    memory = MemoryInfo(64 * GIB, int(ram_gib * GIB), 0, 0)
    return HardwareProfile(LINUX, cpu, memory, gpus=gpus, other_gpus=others)


def cpu_box(ram_gib: float = 16, available_gib: float = 14) -> HardwareProfile:
    cpu = CPUInfo("Intel Core i7-1260P", 12, 4, 8, 16, ("AVX2",))
    return HardwareProfile(
        LINUX, cpu, MemoryInfo(int(ram_gib * GIB), int(available_gib * GIB), 0, 0)
    )


def judge(model: ModelShape, profile: HardwareProfile | None, backend: str, **req: object):  # type: ignore[no-untyped-def]
    request = FitRequest(**req)  # type: ignore[arg-type]
    return fit_shape(model, machine_budget(profile, backend), request, profile=profile)


LLAMA_70B = shape("llama-3.3-70b-instruct")


def test_64gb_mac_runs_llama_70b_q4_k_m_at_8k_fully_on_the_gpu() -> None:
    profile = mac(64, 48, 56)
    verdict = judge(LLAMA_70B, profile, "Metal", n_ctx=8192)
    assert verdict.verdict == "full_gpu"
    assert verdict.badge == "Full GPU"
    assert (verdict.gpu_layers, verdict.n_layers, verdict.context_length) == (80, 80, 8192)
    memory = verdict.memory
    assert memory is not None
    assert memory.kv_cache_bytes == 2560 * (1 << 20)  # fit.md §2.9: 2560 MiB at 8k
    assert 39.5 * GIB < memory.weights_bytes < 39.7 * GIB  # fit.md §2.9: 39.55-39.6 GiB
    assert verdict.budget_bytes == 48 * GIB
    assert verdict.headroom_bytes == 48 * GIB - memory.gpu_bytes
    assert 42 * GIB < memory.gpu_bytes < 44 * GIB
    assert verdict.explanation == (
        "needs 42.9 GiB on the GPU: 39.6 weights + 2.5 KV at 8k + 1.1 compute + 0.32 overhead;"
        " GPU limit 48.0 GiB; 5.1 GiB headroom"
    )
    assert not verdict.tight


def test_24gb_rtx_4090_runs_llama_70b_partially_with_about_42_layers() -> None:
    verdict = judge(LLAMA_70B, nvidia(23), "CUDA", n_ctx=8192)
    assert verdict.verdict == "partial"
    assert 40 <= verdict.gpu_layers <= 44  # fit.md §2.9 estimates about 42
    assert verdict.badge.split(" · ")[0] == f"Partial {verdict.gpu_layers}/81"
    memory = verdict.memory
    assert memory is not None
    assert memory.gpu_bytes + MARGIN_BYTES <= 23 * GIB
    # one more layer would not fit
    budget = machine_budget(nvidia(23), "CUDA")
    assert budget is not None
    more = breakdown(LLAMA_70B, 8192, FitRequest(n_ctx=8192), verdict.gpu_layers + 1, "CUDA")
    assert more.gpu_bytes + MARGIN_BYTES > 23 * GIB
    assert verdict.explanation.startswith(f"{verdict.gpu_layers} of 81 layers on the GPU")


def test_plain_16gb_cpu_box_runs_a_7b_on_the_cpu_and_refuses_the_70b() -> None:
    small = judge(shape("mistral-7b-instruct-v0.3"), cpu_box(), "CPU", n_ctx=8192)
    assert small.verdict == "cpu_only"
    assert (small.badge, small.gpu_layers, small.reason) == ("CPU only", 0, "")
    assert small.budget_bytes == 14 * GIB
    assert small.explanation.startswith("CPU only (no usable GPU): needs ")
    big = judge(LLAMA_70B, cpu_box(), "CPU", n_ctx=8192)
    assert big.verdict == "wont_fit"
    assert big.badge == "Won't fit"
    assert big.reason == "only 14.0 GiB RAM available (1 GiB kept free)"
    assert big.headroom_bytes is not None and big.headroom_bytes < 0


def test_deepseek_v3_does_not_fit_a_192gb_mac() -> None:
    profile = mac(192, 144, 180)
    verdict = judge(shape("deepseek-v3"), profile, "Metal", n_ctx=8192)
    assert verdict.verdict == "wont_fit"
    assert verdict.reason == (
        "only 144.0 GiB GPU limit and 180.0 GiB RAM available (1 GiB kept free)"
    )
    assert verdict.memory is not None and verdict.memory.weights_bytes > 370 * GIB
    assert verdict.max_context is None


def test_an_explicit_gpu_layer_count_is_honoured() -> None:
    verdict = judge(LLAMA_70B, nvidia(23), "CUDA", n_ctx=8192, n_gpu_layers=10)
    assert (verdict.verdict, verdict.gpu_layers) == ("partial", 10)
    memory = verdict.memory
    assert memory is not None
    assert memory.weights_gpu_bytes == sum(LLAMA_70B.layer_bytes[70:])
    too_many = judge(LLAMA_70B, nvidia(23), "CUDA", n_ctx=8192, n_gpu_layers=-1)
    assert too_many.verdict == "wont_fit"
    cpu = judge(LLAMA_70B, nvidia(23, ram_gib=120), "CUDA", n_ctx=8192, n_gpu_layers=0)
    assert (cpu.verdict, cpu.gpu_layers) == ("cpu_only", 0)


def test_context_zero_means_the_trained_context() -> None:
    model = shape("qwen2.5-0.5b-instruct")
    verdict = judge(model, mac(64, 48, 56), "Metal", n_ctx=0)
    assert verdict.context_length == model.n_ctx_train == 32768
    memory = verdict.memory
    assert memory is not None
    assert memory.kv_cache_bytes == 24 * 32768 * (2 * 64) * 2 * 2  # 24 layers, 2 KV heads of 64


def test_tight_when_less_than_ten_percent_of_the_budget_is_left() -> None:
    need = breakdown(LLAMA_70B, 4096, FitRequest(), 81, "CUDA").gpu_bytes
    just_roomy = Budget("CUDA", need * 10 // 9 + 10, "free VRAM", 64 * GIB)  # 10 % left
    just_tight = Budget("CUDA", need * 10 // 9 - 10, "free VRAM", 64 * GIB)  # under 10 %
    roomy = fit_shape(LLAMA_70B, just_roomy, FitRequest())
    tight = fit_shape(LLAMA_70B, just_tight, FitRequest())
    assert (roomy.verdict, roomy.tight, roomy.badge) == ("full_gpu", False, "Full GPU")
    assert (tight.verdict, tight.tight, tight.badge) == ("full_gpu", True, "Full GPU · tight")
    assert tight.headroom_bytes == need * 10 // 9 - 10 - need


@pytest.mark.parametrize(
    ("profile", "backend"),
    [(mac(64, 48, 56), "Metal"), (nvidia(23), "CUDA"), (cpu_box(64, 30), "CPU")],
)
def test_max_context_is_the_largest_multiple_of_256_that_keeps_the_placement(
    profile: HardwareProfile, backend: str
) -> None:
    model = shape("llama-3.3-70b-instruct") if backend != "CPU" else shape("llama-3.1-8b-instruct")
    verdict = judge(model, profile, backend, n_ctx=8192)
    assert verdict.max_context is not None
    assert verdict.max_context % 256 == 0
    assert verdict.max_context >= 8192
    at_max = judge(model, profile, backend, n_ctx=verdict.max_context)
    beyond = judge(model, profile, backend, n_ctx=verdict.max_context + 256)
    assert at_max.verdict == verdict.verdict
    assert beyond.verdict != verdict.verdict


def test_max_context_stops_at_the_trained_context() -> None:
    model = shape("smollm2-135m-instruct")
    verdict = judge(model, mac(64, 48, 56), "Metal", n_ctx=2048)
    assert verdict.max_context == model.n_ctx_train == 8192


def test_unknown_without_a_hardware_profile() -> None:
    verdict = judge(LLAMA_70B, None, "CUDA", n_ctx=8192)
    assert verdict.verdict == "unknown"
    assert verdict.badge == "?"
    assert verdict.reason == "the hardware has not been probed yet"
    assert verdict.explanation == "unknown: the hardware has not been probed yet"
    assert (verdict.memory, verdict.budget_bytes, verdict.speed) == (None, None, None)
    assert machine_budget(None, "CPU") is None


def test_models_already_loaded_reduce_both_budgets() -> None:
    base = machine_budget(mac(64, 48, 56), "Metal")
    loaded = machine_budget(mac(64, 48, 56), "Metal", loaded_bytes=10 * GIB)
    assert base is not None and loaded is not None
    assert (loaded.gpu_bytes, loaded.host_bytes) == (38 * GIB, 46 * GIB)
    cuda = machine_budget(nvidia(23), "CUDA", loaded_bytes=3 * GIB)
    assert cuda is not None and (cuda.gpu_bytes, cuda.host_bytes) == (20 * GIB, 57 * GIB)
    assert fit_shape(LLAMA_70B, base, FitRequest(n_ctx=8192)).verdict == "full_gpu"
    assert fit_shape(LLAMA_70B, loaded, FitRequest(n_ctx=8192)).verdict == "partial"


def test_nvidia_budget_sums_free_vram_and_ignores_other_gpus() -> None:
    amd = GPU("AMD", "Radeon RX 7900", 24 * GIB, 24 * GIB, "", "", "sysfs")
    profile = nvidia(23, 22.5, others=(amd,))
    profile = dataclasses.replace(profile, gpus=(*profile.gpus, amd))
    budget = machine_budget(profile, "CUDA")
    assert budget is not None
    assert (budget.gpu_bytes, budget.n_gpus, budget.gpu_label) == (int(45.5 * GIB), 2, "free VRAM")
    assert budget.cpu_repack
    verdict = fit_shape(LLAMA_70B, budget, FitRequest(n_ctx=8192))
    assert verdict.verdict == "full_gpu"  # 2 x 24 GB runs the 70B (fit.md §2.9)
    assert verdict.memory is not None and verdict.memory.overhead_gpu_bytes == 2 * 457 * (1 << 20)


def test_nvidia_free_vram_falls_back_to_total_when_unknown() -> None:
    gpu = GPU("NVIDIA", "Tesla T4", 16 * GIB, None, "470", "", "nvidia-smi")
    profile = dataclasses.replace(nvidia(), gpus=(gpu,))
    budget = machine_budget(profile, "CUDA")
    assert budget is not None and budget.gpu_bytes == 16 * GIB


def test_only_amd_gpus_means_no_gpu_budget() -> None:
    amd = GPU("AMD", "Radeon RX 7900", 24 * GIB, 24 * GIB, "", "", "sysfs")
    profile = dataclasses.replace(nvidia(), gpus=(amd,))
    budget = machine_budget(profile, "CUDA")
    assert budget is not None and budget.gpu_bytes is None


def test_apple_checks_the_working_set_limit_and_available_ram() -> None:
    model = shape("qwen2.5-32b-instruct")
    roomy = judge(model, mac(64, 48, 56), "Metal", n_ctx=8192)
    assert roomy.verdict == "full_gpu"
    memory = roomy.memory
    assert memory is not None
    # a low working-set limit alone refuses full offload
    low_limit = judge(model, mac(64, memory.gpu_bytes / GIB, 56), "Metal", n_ctx=8192)
    assert low_limit.verdict != "full_gpu"
    # little free RAM alone refuses too: unified memory counts everything once
    busy = judge(model, mac(64, 48, memory.total_bytes / GIB), "Metal", n_ctx=8192)
    assert busy.verdict == "wont_fit"
    assert busy.budget_bytes == int(memory.total_bytes / GIB * GIB)


def test_a_header_with_absurd_counts_is_unknown_with_the_reason(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Bad input is a verdict that says so, never an exception or a guess."""
    import struct

    from app.fit_service import fit_file

    path = tmp_path / "absurd.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 1 << 40, 0) + bytes(64))
    verdict = fit_file(path, cpu_box(), FitRequest(), use_dry_run=False, backend="CPU")
    assert verdict.verdict == "unknown"
    assert verdict.memory is None and verdict.speed is None
    assert "tensor" in verdict.reason
    assert verdict.explanation == f"unknown: {verdict.reason}"
    assert verdict.badge == "?"
