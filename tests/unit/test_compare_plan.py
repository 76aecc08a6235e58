"""Memory plans of comparisons on constructed hardware: parallel, sequential, or never."""

from __future__ import annotations

from pathlib import Path

from app.compare_plan import MemoryPlan, PaneNeed, pane_needs, plan_memory
from app.hardware import GPU, AppleSilicon, CPUInfo, HardwareProfile, MemoryInfo, OSInfo
from app.memory import GIB, MARGIN_BYTES, estimate_load
from runtimes.base import LoadOptions

LINUX = OSInfo("Linux", "6.1", "x86_64")
EPYC = CPUInfo("AMD EPYC", 2, 2, 0, 2, ("AVX2",))


def linux(available_gib: float, gpus: tuple[GPU, ...] = ()) -> HardwareProfile:
    memory = MemoryInfo(int(32 * GIB), int(available_gib * GIB), 0, 0)
    return HardwareProfile(LINUX, EPYC, memory, gpus=gpus)


def mac(ram_gib: int, available_gib: float, gpu_limit_gib: float) -> HardwareProfile:
    apple = AppleSilicon("Apple M2 Pro", 8, 4, 19, ram_gib * GIB, int(gpu_limit_gib * GIB), "x", 0)
    cpu = CPUInfo("Apple M2 Pro", 12, 8, 4, 12, ("NEON",))
    memory = MemoryInfo(ram_gib * GIB, int(available_gib * GIB), 0, 0)
    return HardwareProfile(OSInfo("macOS", "14.5", "arm64"), cpu, memory, apple=apple)


def local(name: str, gib: float, gpu_gib: float | None = None) -> PaneNeed:
    gpu = int(gpu_gib * GIB) if gpu_gib is not None else None
    return PaneNeed(f"/models/{name}.gguf", name, int(gib * GIB), gpu)


def test_panes_that_fit_together_run_in_parallel() -> None:
    plan = plan_memory([local("a", 2), local("b", 3)], linux(8))
    assert plan.mode == "parallel"
    assert plan.fits_together and plan.runnable
    assert plan.budget_bytes == 8 * GIB - MARGIN_BYTES
    assert plan.reason.startswith("Parallel: all panes fit in memory together")
    assert "~5.0 GiB" in plan.reason and "7.0 GiB free" in plan.reason


def test_panes_too_big_together_run_sequentially_and_the_reason_gives_the_figures() -> None:
    plan = plan_memory([local("a", 4), local("b", 4)], linux(8))
    assert plan.mode == "sequential"
    assert not plan.fits_together
    assert plan.runnable
    assert "do not fit together (~8.0 GiB for all panes against 7.0 GiB free)" in plan.reason


def test_a_pane_too_big_alone_is_not_runnable() -> None:
    plan = plan_memory([local("small", 1), local("huge", 40)], linux(8))
    assert not plan.runnable
    assert not plan.fits_together
    assert "huge alone needs ~40.0 GiB but only 7.0 GiB is free" in plan.reason


def test_forcing_parallel_when_the_panes_do_not_fit_together_is_not_runnable() -> None:
    plan = plan_memory([local("a", 4), local("b", 4)], linux(8), requested="parallel")
    assert plan.mode == "parallel"
    assert not plan.runnable
    assert "never start a combination that would not fit" in plan.reason


def test_forcing_parallel_when_they_fit_runs_in_parallel() -> None:
    plan = plan_memory([local("a", 1), local("b", 1)], linux(8), requested="parallel")
    assert (plan.mode, plan.runnable) == ("parallel", True)


def test_forcing_sequential_runs_sequentially_even_when_they_fit() -> None:
    plan = plan_memory([local("a", 1), local("b", 1)], linux(8), requested="sequential")
    assert (plan.mode, plan.runnable, plan.fits_together) == ("sequential", True, True)
    assert plan.reason.startswith("Sequential, as chosen")


def test_server_models_count_zero_and_the_reason_says_so() -> None:
    needs = [
        local("a", 6),
        PaneNeed("ollama::llama3.1:70b", "llama3.1:70b", None),
        PaneNeed("openai:box::Qwen/Qwen2.5-72B", "Qwen/Qwen2.5-72B", None),
    ]
    plan = plan_memory(needs, linux(8))
    assert plan.mode == "parallel"
    assert plan.runnable
    assert "(2 server models run elsewhere and count 0 here)" in plan.reason


def test_apple_gpu_working_set_limit_bounds_what_the_panes_put_on_the_gpu() -> None:
    profile = mac(32, 28, 21)
    fits_ram = [local("a", 12, gpu_gib=12), local("b", 12, gpu_gib=12)]
    plan = plan_memory(fits_ram, profile)
    assert plan.mode == "sequential"
    assert "~24.0 GiB on the GPU against 21.0 GiB" in plan.reason
    assert plan_memory([local("a", 8, 8), local("b", 8, 8)], profile).mode == "parallel"


def test_discrete_gpu_memory_adds_to_the_budget_when_the_panes_offload() -> None:
    gpu = GPU("NVIDIA", "RTX 4090", 24 * GIB, 20 * GIB, "550", "8.9", "nvml")
    profile = linux(8, gpus=(gpu,))
    offloaded = [local("a", 9, gpu_gib=9), local("b", 9, gpu_gib=9)]
    plan = plan_memory(offloaded, profile)
    assert plan.mode == "parallel"
    assert plan.budget_bytes == 28 * GIB - MARGIN_BYTES
    on_cpu = plan_memory([local("a", 9), local("b", 9)], profile)
    assert not on_cpu.runnable  # 9 GiB on the CPU does not fit 7 GiB of RAM


def test_plan_is_json_ready() -> None:
    plan: MemoryPlan = plan_memory([local("a", 1)], linux(8))
    data = plan.as_dict()
    assert data["mode"] == "parallel"
    assert data["needs"] == [
        {"model": "/models/a.gguf", "name": "a", "bytes_needed": GIB, "gpu_bytes": None}
    ]


def test_pane_needs_use_the_estimate_the_model_host_refuses_loads_by(smollm2_path: Path) -> None:
    options = LoadOptions(n_ctx=1024)
    needs = pane_needs(
        [(str(smollm2_path), options), ("ollama::smollm2:135m", None), ("/nope.gguf", None)],
        None,
        None,
    )
    assert needs[0].bytes_needed == estimate_load(smollm2_path, options).total_bytes
    assert needs[0].name.startswith("SmolLM2 135M Instruct")
    assert (needs[1].bytes_needed, needs[1].name, needs[1].is_server) == (
        None,
        "smollm2:135m",
        True,
    )
    assert (needs[2].bytes_needed, needs[2].is_server) == (None, False)
    plan = plan_memory(needs, linux(8))
    assert plan.mode == "sequential"
    assert "could not be estimated" in plan.reason
