"""Memory bandwidth: the Apple chip table, the NVIDIA card table, NVML arithmetic, the profile."""

from __future__ import annotations

import json

import pytest

from app.hardware import GPU, AppleSilicon, CPUInfo, HardwareProfile, MemoryInfo, OSInfo, as_dict
from app.hardware.bandwidth import (
    GB,
    apple_bandwidth,
    gpu_bandwidth,
    machine_bandwidth,
    normalize_card_name,
    nvidia_table_bandwidth,
    nvml_bandwidth,
)
from app.hardware.profile import GIB, MIB, FactLog, MemoryBandwidth


@pytest.mark.parametrize(
    ("chip", "gpu_cores", "gb_per_s"),
    [
        ("Apple M1", 8, 68),
        ("Apple M1 Pro", 16, 200),
        ("Apple M1 Max", 24, 400),
        ("Apple M1 Max", 32, 400),
        ("Apple M1 Ultra", 64, 800),
        ("Apple M2", 10, 100),
        ("Apple M2 Pro", 19, 200),
        ("Apple M2 Max", 38, 400),
        ("Apple M2 Ultra", 76, 800),
        ("Apple M3", 10, 100),
        ("Apple M3 Pro", 18, 150),
        ("Apple M3 Max", 30, 300),
        ("Apple M3 Max", 40, 400),
        ("Apple M3 Ultra", 80, 819),
        ("Apple M4", 10, 120),
        ("Apple M4 Pro", 20, 273),
        ("Apple M4 Max", 32, 410),
        ("Apple M4 Max", 40, 546),
        ("Apple M5 Max", 40, 614),
    ],
)
def test_apple_chip_table(chip: str, gpu_cores: int, gb_per_s: int) -> None:
    figure = apple_bandwidth(chip, gpu_cores)
    assert figure is not None
    assert (figure.device, figure.bytes_per_second) == ("apple-gpu", gb_per_s * GB)


def test_apple_variant_with_unknown_gpu_cores_assumes_the_slower_one() -> None:
    figure = apple_bandwidth("Apple M3 Max", None)
    assert figure is not None and figure.bytes_per_second == 300 * GB
    assert figure.source.endswith("(GPU core count unknown: the slower variant assumed)")
    single = apple_bandwidth("Apple M2 Pro", None)
    assert single is not None and single.bytes_per_second == 200 * GB
    assert "unknown" not in single.source


@pytest.mark.parametrize("chip", ["Apple M5", "Apple M9 Max", "Intel(R) Core(TM) i9", ""])
def test_unknown_chips_have_no_figure(chip: str) -> None:
    assert apple_bandwidth(chip, 10) is None


@pytest.mark.parametrize(
    ("mhz", "bits", "expected"),
    [
        (10501, 384, 1_008_096_000_000),  # RTX 4090: 1008 GB/s
        (9751, 384, 936_096_000_000),  # RTX 3090: 936 GB/s
        (7501, 192, 360_048_000_000),  # RTX 3060 12 GB: 360 GB/s
        (1593, 5120, 2_039_040_000_000),  # A100 80 GB SXM: 2039 GB/s
    ],
)
def test_nvml_arithmetic_reproduces_vendor_figures(mhz: int, bits: int, expected: int) -> None:
    assert nvml_bandwidth(mhz, bits) == expected


@pytest.mark.parametrize(
    ("name", "vram_gib", "gb_per_s"),
    [
        ("NVIDIA GeForce RTX 4090", 24, 1008),
        ("NVIDIA GeForce RTX 3060", 12, 360),
        ("NVIDIA GeForce RTX 3060", 8, 240),
        ("NVIDIA GeForce RTX 3090", 24, 936),
        ("NVIDIA GeForce RTX 3090 Ti", 24, 1008),
        ("NVIDIA GeForce RTX 4070", 12, 504),
        ("NVIDIA GeForce RTX 4070 Ti SUPER", 16, 672),
        ("NVIDIA GeForce RTX 4080 SUPER", 16, 736),
        ("NVIDIA GeForce RTX 5090", 32, 1792),
        ("GeForce RTX 2080", 8, 448),
        ("Tesla T4", 16, 320),
        ("NVIDIA L4", 24, 300),
        ("NVIDIA L40S", 48, 864),
        ("NVIDIA A10", 24, 600),
        ("NVIDIA A100-PCIE-40GB", 40, 1555),
        ("NVIDIA A100-SXM4-40GB", 40, 1555),
        ("NVIDIA A100 80GB PCIe", 80, 1935),
        ("NVIDIA A100-SXM4-80GB", 80, 2039),
        ("NVIDIA H100 PCIe", 80, 2000),
        ("NVIDIA H100 80GB HBM3", 80, 3350),
        ("NVIDIA H100 NVL", 94, 3900),
        ("NVIDIA H200", 141, 4800),
    ],
)
def test_nvidia_card_table(name: str, vram_gib: int, gb_per_s: int) -> None:
    found = nvidia_table_bandwidth(name, vram_gib * GIB)
    assert found is not None
    assert found[0] == gb_per_s * GB


@pytest.mark.parametrize(
    "name",
    [
        "NVIDIA GeForce RTX 4090 Laptop GPU",
        "NVIDIA GeForce GTX 1650 Ti with Max-Q Design",
        "NVIDIA RTX 5880 Ada Generation",
        "NVIDIA GeForce GTX 1080",
    ],
)
def test_laptop_and_unknown_cards_have_no_table_figure(name: str) -> None:
    assert nvidia_table_bandwidth(name, 16 * GIB) is None


def test_card_names_are_normalized() -> None:
    assert normalize_card_name("NVIDIA A100-SXM4-80GB") == "a100 sxm4 80gb"
    assert normalize_card_name("NVIDIA GeForce RTX 4090") == "rtx 4090"
    assert normalize_card_name("Tesla T4") == "t4"


def nvidia(name: str, index: int = 0, **extra: int) -> GPU:
    return GPU("NVIDIA", name, 24 * GIB, None, "", "", "nvml", index, **extra)


def test_nvml_clocks_win_over_the_name_table() -> None:
    gpu = nvidia("NVIDIA GeForce RTX 4090", memory_bus_width_bits=384, max_memory_clock_mhz=10000)
    figure = gpu_bandwidth(gpu)
    assert figure == MemoryBandwidth("gpu:0", 960_000_000_000, "NVML: 2 x 10000 MHz x 384 bit / 8")


def test_name_table_is_the_fallback_and_names_the_card() -> None:
    figure = gpu_bandwidth(nvidia("NVIDIA GeForce RTX 4090", index=3, memory_bus_width_bits=384))
    assert figure is not None
    assert (figure.device, figure.bytes_per_second) == ("gpu:3", 1008 * GB)
    assert figure.source == "vendor spec (reference/fit.md §5.2) (NVIDIA GeForce RTX 4090)"


def test_machine_bandwidth_skips_sysfs_gpus_and_records_sources() -> None:
    amd = GPU("AMD", "AMD Radeon RX 6800", 16 * GIB, 15 * GIB, "amdgpu", "", "sysfs", 1)
    log = FactLog()
    rates = machine_bandwidth(None, (nvidia("NVIDIA GeForce RTX 3090"), amd), log)
    assert [(r.device, r.bytes_per_second) for r in rates] == [("gpu:0", 936 * GB)]
    assert log.sources["bandwidth.gpu:0"].startswith("vendor spec")
    assert log.sources["bandwidth.cpu"] == "unknown"
    assert "system RAM bandwidth unknown: DRAM speed cannot be read without root" in log.notes


def test_unknown_apple_chip_is_a_note() -> None:
    apple = AppleSilicon("Apple M9", 4, 4, 10, 16 * GIB, 10 * GIB, "metal", None)
    log = FactLog()
    assert machine_bandwidth(apple, (), log) == ()
    assert "memory bandwidth of Apple M9 unknown (not in the chip table)" in log.notes


LINUX = OSInfo("Linux", "6.1", "x86_64")
CPU = CPUInfo("AMD EPYC", 2, 2, 0, 2, ("AVX2",))
RAM = MemoryInfo(32 * GIB, 20 * GIB, 0, 0)


def test_gpu_budget_sums_nvidia_vram_and_ignores_sysfs_gpus() -> None:
    a = GPU("NVIDIA", "NVIDIA GeForce RTX 4090", 24 * GIB, 23 * GIB, "", "8.9", "nvml", 0)
    b = GPU("NVIDIA", "NVIDIA GeForce RTX 3090", 24 * GIB, 20 * GIB, "", "8.6", "nvml", 1)
    amd = GPU("AMD", "AMD Radeon RX 7900 XTX", 24 * GIB, 24 * GIB, "amdgpu", "", "sysfs", 2)
    rates = (
        MemoryBandwidth("gpu:0", 1008 * GB, "t"),
        MemoryBandwidth("gpu:1", 936 * GB, "t"),
    )
    profile = HardwareProfile(LINUX, CPU, RAM, gpus=(a, b), other_gpus=(amd,), bandwidth=rates)
    assert profile.gpu_memory_limit_bytes == 48 * GIB
    assert profile.gpu_bandwidth_bytes_per_second == 936 * GB  # the slower card paces decode
    only_amd = HardwareProfile(LINUX, CPU, RAM, other_gpus=(amd,))
    assert only_amd.gpu_memory_limit_bytes is None
    assert only_amd.gpu_bandwidth_bytes_per_second is None


def test_intel_mac_discrete_gpu_is_not_a_budget() -> None:
    radeon = GPU("AMD", "AMD Radeon Pro 5500M", 4 * GIB, None, "", "", "system_profiler", 0)
    profile = HardwareProfile(OSInfo("macOS", "13", "x86_64"), CPU, RAM, gpus=(radeon,))
    assert profile.gpu_memory_limit_bytes is None


def test_apple_profile_uses_the_gpu_limit_and_chip_bandwidth() -> None:
    apple = AppleSilicon("Apple M4 Max", 12, 4, 40, 64 * GIB, 48 * GIB, "metal", 0)
    rates = (MemoryBandwidth("apple-gpu", 546 * GB, "s"), MemoryBandwidth("cpu", 1, "x"))
    profile = HardwareProfile(
        OSInfo("macOS", "15", "arm64"), CPU, RAM, apple=apple, bandwidth=rates
    )
    assert profile.gpu_memory_limit_bytes == 48 * GIB
    assert profile.gpu_bandwidth_bytes_per_second == 546 * GB
    assert profile.cpu_bandwidth_bytes_per_second == 1


def test_hw_json_has_the_documented_keys() -> None:
    gpu = GPU("NVIDIA", "NVIDIA H200", 143771 * MIB, None, "580", "9.0", "nvidia-smi", 0)
    intel = GPU("Intel", "Intel GPU (PCI device 0x46a6)", 0, None, "i915", "", "sysfs", 1)
    rates = (MemoryBandwidth("gpu:0", 4800 * GB, "NVIDIA H200 datasheet"),)
    profile = HardwareProfile(
        LINUX, CPU, RAM, gpus=(gpu,), other_gpus=(intel,), bandwidth=rates, notes=("n",)
    )
    data = json.loads(json.dumps(as_dict(profile)))
    assert (data["ram_total_bytes"], data["ram_available_bytes"]) == (32 * GIB, 20 * GIB)
    assert data["gpu_memory_limit_bytes"] == 143771 * MIB
    assert data["memory_bandwidth_bytes_per_second"] == 4800 * GB
    (entry,) = data["gpus"]
    assert (entry["name"], entry["vram_total_bytes"], entry["vram_free_bytes"]) == (
        "NVIDIA H200",
        143771 * MIB,
        None,
    )
    assert entry["memory_total_bytes"] == 143771 * MIB  # the older keys stay
    assert entry["usable_by_llama_cpp"] is True
    assert data["other_gpus"][0]["usable_by_llama_cpp"] is False
    assert data["bandwidth"] == [
        {"device": "gpu:0", "bytes_per_second": 4800 * GB, "source": "NVIDIA H200 datasheet"}
    ]
    assert data["apple"] is None
    assert data["cpu"]["model"] == "AMD EPYC"


def test_hw_json_without_gpu_says_null() -> None:
    data = as_dict(HardwareProfile(LINUX, CPU, RAM))
    assert data["gpu_memory_limit_bytes"] is None
    assert data["memory_bandwidth_bytes_per_second"] is None
    assert data["gpus"] == [] and data["bandwidth"] == []
