"""The hardware profile: status-bar line, JSON form, and a real probe of this machine."""

from __future__ import annotations

import json
import time
from pathlib import Path

from app.hardware import (
    GPU,
    AppleSilicon,
    CPUInfo,
    HardwareProfile,
    MemoryInfo,
    OSInfo,
    as_dict,
    probe_hardware,
    summary_line,
)
from app.hardware.profile import GIB, MIB, short_cpu_name

LINUX = OSInfo("Linux", "6.1", "x86_64")
EPYC = CPUInfo("AMD EPYC", 2, 2, 0, 2, ("AVX2",))
RAM = MemoryInfo(int(23.5 * GIB), int(21.0 * GIB), 0, 0)


def test_summary_without_gpu() -> None:
    profile = HardwareProfile(LINUX, EPYC, RAM)
    assert summary_line(profile) == "AMD EPYC · 2 cores · 23.5 GiB RAM (21.0 free) · no GPU"


def test_summary_with_one_nvidia_gpu() -> None:
    gpu = GPU("NVIDIA", "NVIDIA H200", 143771 * MIB, 143156 * MIB, "580", "9.0", "nvml")
    profile = HardwareProfile(LINUX, EPYC, RAM, gpus=(gpu,))
    assert summary_line(profile).endswith("· NVIDIA H200 · 140.4 GiB VRAM (139.8 free)")


def test_summary_with_two_identical_gpus_and_unknown_free() -> None:
    gpu = GPU("NVIDIA", "NVIDIA A100", 80 * GIB, None, "", "", "nvidia-smi")
    profile = HardwareProfile(LINUX, EPYC, RAM, gpus=(gpu, gpu))
    assert summary_line(profile).endswith("· 2× NVIDIA A100 · 160.0 GiB VRAM")


def test_summary_of_hybrid_cpu() -> None:
    cpu = CPUInfo("13th Gen Intel(R) Core(TM) i9-13900K", 24, 8, 16, 32, ())
    profile = HardwareProfile(LINUX, cpu, RAM)
    assert summary_line(profile).startswith("13th Gen Intel Core i9-13900K · 8P+16E cores")


def test_summary_of_apple_silicon() -> None:
    apple = AppleSilicon("Apple M2 Pro", 8, 4, 19, 32 * GIB, int(32 * GIB * 2 / 3), "x", 0)
    cpu = CPUInfo("Apple M2 Pro", 12, 8, 4, 12, ("NEON",))
    profile = HardwareProfile(OSInfo("macOS", "14.5", "arm64"), cpu, RAM, apple=apple)
    assert summary_line(profile) == (
        "Apple M2 Pro · 8P+4E cores · 19-core GPU · 32 GB unified · GPU limit 21.3 GB"
    )


def test_short_cpu_names() -> None:
    assert short_cpu_name("AMD EPYC 7763 64-Core Processor") == "AMD EPYC 7763"
    assert short_cpu_name("Intel(R) Xeon(R) CPU E5-2690 v4 @ 2.60GHz") == "Intel Xeon E5-2690 v4"
    assert short_cpu_name("Apple M1") == "Apple M1"


def test_as_dict_is_json_ready() -> None:
    gpu = GPU("NVIDIA", "T4", 16 * GIB, None, "470", "", "nvidia-smi")
    profile = HardwareProfile(
        LINUX, EPYC, RAM, gpus=(gpu,), sources=(("memory", "/proc/meminfo"),), notes=("n",)
    )
    data = json.loads(json.dumps(as_dict(profile)))
    assert data["sources"] == {"memory": "/proc/meminfo"}
    assert data["gpus"][0]["memory_free_bytes"] is None
    assert data["cpu"]["flags"] == ["AVX2"]
    assert data["apple"] is None
    assert data["summary"] == summary_line(profile)
    assert profile.source_of("memory") == "/proc/meminfo"


def test_probe_of_this_machine_is_fast_and_complete(tmp_path: Path) -> None:
    started = time.monotonic()
    profile = probe_hardware(tmp_path / "models" / "not-yet")
    assert time.monotonic() - started < 10
    assert profile.cpu.logical_cores >= profile.cpu.physical_cores >= 1
    assert (
        profile.cpu.performance_cores + profile.cpu.efficiency_cores == profile.cpu.physical_cores
    )
    assert profile.memory.total_bytes >= profile.memory.available_bytes > 0
    assert profile.disk_free_bytes is not None and profile.disk_free_bytes > 0
    assert profile.models_dir == str(tmp_path / "models" / "not-yet")
    assert profile.source_of("memory")
    for gpu in profile.gpus:
        assert gpu.memory_total_bytes > 0
    if not profile.gpus and profile.apple is None:
        assert any("nvidia-smi" in note for note in profile.notes)
        assert profile.gpu_memory_limit_bytes is None
    assert profile.cpu_bandwidth_bytes_per_second is None  # DRAM speed needs root
    assert profile.source_of("bandwidth.cpu") == "unknown"
    for gpu in profile.other_gpus:
        assert gpu.source == "sysfs" and not gpu.usable_by_llama_cpp


def test_probe_without_models_dir_measures_no_disk() -> None:
    profile = probe_hardware()
    assert (profile.models_dir, profile.disk_free_bytes) == ("", None)
