"""Parsers on the machines added for issue 4: M4 Max, an Intel hybrid laptop, WSL2, two RTX 3090."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from app.hardware import macos
from app.hardware.bandwidth import GB, apple_bandwidth, gpu_bandwidth, machine_bandwidth
from app.hardware.linux import (
    is_wsl,
    parse_cpuinfo,
    parse_meminfo,
    probe_linux_cpu,
)
from app.hardware.macos import (
    apple_from_sysctl,
    cpu_from_sysctl,
    parse_ioreg_gpu_cores,
    parse_sysctl,
    parse_system_profiler_displays,
)
from app.hardware.nvidia import parse_nvidia_smi_csv
from app.hardware.profile import (
    GIB,
    MIB,
    CPUInfo,
    FactLog,
    HardwareProfile,
    MemoryInfo,
    OSInfo,
    summary_line,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "hardware"
M4_MAX = "macos-m4-max-64gb"
LAPTOP = "linux-laptop-i7-1260p"


def read(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_m4_max_chip_cores_memory_and_default_gpu_limit() -> None:
    values = parse_sysctl(read(f"{M4_MAX}/sysctl.txt"))
    cores = parse_ioreg_gpu_cores(read(f"{M4_MAX}/ioreg_agxaccelerator.txt"))
    apple = apple_from_sysctl(values, cores)
    assert (apple.chip, apple.performance_cores, apple.efficiency_cores) == ("Apple M4 Max", 12, 4)
    assert apple.gpu_cores == 40
    assert apple.unified_memory_bytes == 64 * GIB
    assert apple.gpu_limit_bytes == 48 * GIB  # 3/4 above 36 GB
    assert (apple.gpu_limit_source, apple.wired_limit_mb) == ("default-share-estimate", 0)
    cpu = cpu_from_sysctl(values, apple)
    assert (cpu.physical_cores, cpu.performance_cores, cpu.efficiency_cores) == (16, 12, 4)


def test_m4_max_system_profiler_agrees_with_ioreg() -> None:
    (gpu,) = parse_system_profiler_displays(read(f"{M4_MAX}/system_profiler_displays.json"))
    assert (gpu.name, gpu.vendor, gpu.cores, gpu.vram_bytes) == ("Apple M4 Max", "Apple", 40, None)


def test_m4_max_40_core_bandwidth_is_546_gb_per_s() -> None:
    values = parse_sysctl(read(f"{M4_MAX}/sysctl.txt"))
    apple = apple_from_sysctl(values, 40)
    figure = apple_bandwidth(apple.chip, apple.gpu_cores)
    assert figure is not None
    assert (figure.device, figure.bytes_per_second) == ("apple-gpu", 546 * GB)
    assert "40-core GPU" in figure.source


def test_m4_max_metal_answer_overrides_the_estimate() -> None:
    values = parse_sysctl(read(f"{M4_MAX}/sysctl.txt"))
    apple = apple_from_sysctl(values, 40, metal_bytes=51_539_607_552)
    assert (apple.gpu_limit_bytes, apple.gpu_limit_source) == (51_539_607_552, "metal")


class FakeMac:
    """subprocess.run stand-in answering from one fixture folder (ioreg included)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def __call__(self, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        files = {"sysctl": "sysctl.txt", "ioreg": "ioreg_agxaccelerator.txt"}
        if args[0] not in files:
            raise FileNotFoundError(2, "not found", args[0])
        return subprocess.CompletedProcess(args, 0, read(f"{self.folder}/{files[args[0]]}"), "")


def test_m4_max_probe_and_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess, "run", FakeMac(M4_MAX))
    monkeypatch.setattr(macos, "metal_working_set", lambda log=None: None)
    log = FactLog()
    cpu, apple, gpus, memsize = macos.probe_macos(log)
    assert apple is not None and (apple.gpu_cores, memsize, gpus) == (40, 64 * GIB, ())
    rates = machine_bandwidth(apple, gpus, log)
    memory = MemoryInfo(memsize, 30 * GIB, 0, 0)
    macos_info = OSInfo("macOS", "15.3", "arm64")
    profile = HardwareProfile(macos_info, cpu, memory, apple=apple, bandwidth=rates)
    assert profile.gpu_memory_limit_bytes == 48 * GIB
    assert profile.gpu_bandwidth_bytes_per_second == 546 * GB
    assert profile.cpu_bandwidth_bytes_per_second is None


def test_hybrid_laptop_cpuinfo_counts_cores_and_threads() -> None:
    facts = parse_cpuinfo(read(f"{LAPTOP}/cpuinfo.txt"))
    assert facts.model == "12th Gen Intel(R) Core(TM) i7-1260P"
    assert (facts.logical_cores, facts.physical_cores, facts.single_thread_cores) == (16, 12, 8)
    assert facts.flags == ("AVX", "AVX2", "FMA", "F16C", "AVX-VNNI")


def test_hybrid_laptop_probe_gives_4_performance_and_8_efficiency_cores(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cpuinfo").write_text(read(f"{LAPTOP}/cpuinfo.txt"))
    log = FactLog()
    cpu = probe_linux_cpu(log, proc, sys_devices=tmp_path / "no-sys")
    assert (cpu.physical_cores, cpu.performance_cores, cpu.efficiency_cores) == (12, 4, 8)
    assert cpu.logical_cores == 16
    assert log.sources["cpu.efficiency_cores"] == f"{proc / 'cpuinfo'} (cores with one thread)"


def test_cpu_atom_list_wins_over_the_thread_count(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cpuinfo").write_text(read(f"{LAPTOP}/cpuinfo.txt"))
    atom = tmp_path / "sys" / "cpu_atom"
    atom.mkdir(parents=True)
    (atom / "cpus").write_text("8-15\n")
    log = FactLog()
    cpu = probe_linux_cpu(log, proc, sys_devices=tmp_path / "sys")
    assert (cpu.performance_cores, cpu.efficiency_cores) == (4, 8)
    assert log.sources["cpu.efficiency_cores"] == str(atom / "cpus")


def test_server_cpus_with_smt_everywhere_have_no_efficiency_cores() -> None:
    facts = parse_cpuinfo(read("linux-h200-nvidia/cpuinfo.txt"))
    assert facts.single_thread_cores == 0


def test_laptop_meminfo_without_swap_lines() -> None:
    memory = parse_meminfo(read(f"{LAPTOP}/meminfo.txt"))
    assert memory.total_bytes == 16289508 * 1024
    assert memory.available_bytes == 6774876 * 1024
    assert (memory.swap_total_bytes, memory.swap_free_bytes) == (0, 0)


def test_laptop_without_gpu_has_no_gpu_budget_or_bandwidth(tmp_path: Path) -> None:
    (tmp_path / "cpuinfo").write_text(read(f"{LAPTOP}/cpuinfo.txt"))
    cpu = probe_linux_cpu(FactLog(), tmp_path, sys_devices=tmp_path)
    memory = parse_meminfo(read(f"{LAPTOP}/meminfo.txt"))
    log = FactLog()
    rates = machine_bandwidth(None, (), log)
    profile = HardwareProfile(OSInfo("Linux", "6.5", "x86_64"), cpu, memory, bandwidth=rates)
    assert rates == ()
    assert log.sources["bandwidth.cpu"] == "unknown"
    assert profile.gpu_memory_limit_bytes is None
    assert profile.gpu_bandwidth_bytes_per_second is None
    assert summary_line(profile) == (
        "12th Gen Intel Core i7-1260P · 4P+8E cores · 15.5 GiB RAM (6.5 free) · no GPU"
    )


def test_wsl2_proc_version_is_wsl() -> None:
    text = read("wsl2-rtx5080/proc_version.txt")
    assert "microsoft-standard-WSL2" in text
    assert is_wsl(text, environ={})
    assert not is_wsl(read("linux-epyc-2core-vm/proc_version.txt"), environ={})
    assert not is_wsl(read("linux-h200-nvidia/proc_version.txt"), environ={})


def test_wsl2_rtx5080_with_windows_driver_version() -> None:
    (gpu,) = parse_nvidia_smi_csv(read("wsl2-rtx5080/nvidia-smi-query.csv"))
    assert gpu.name == "NVIDIA GeForce RTX 5080"
    assert (gpu.memory_total_bytes, gpu.memory_free_bytes) == (16303 * MIB, 15165 * MIB)
    assert (gpu.driver, gpu.compute_capability) == ("591.86", "12.0")  # WSL: Windows driver
    figure = gpu_bandwidth(gpu)
    assert figure is not None and figure.bytes_per_second == 960 * GB


def test_two_rtx_3090_sum_vram_and_share_bandwidth() -> None:
    gpus = parse_nvidia_smi_csv(read("nvidia-published/dual-rtx3090-reconstructed.csv"))
    assert [(g.index, g.name, g.compute_capability) for g in gpus] == [
        (0, "NVIDIA GeForce RTX 3090", "8.6"),
        (1, "NVIDIA GeForce RTX 3090", "8.6"),
    ]
    log = FactLog()
    rates = machine_bandwidth(None, gpus, log)
    assert [(r.device, r.bytes_per_second) for r in rates] == [
        ("gpu:0", 936 * GB),
        ("gpu:1", 936 * GB),
    ]
    profile = HardwareProfile(
        OSInfo("Linux", "6.8", "x86_64"),
        CPUInfo("AMD Ryzen 9 5950X 16-Core Processor", 16, 16, 0, 32),
        MemoryInfo(64 * GIB, 60 * GIB, 0, 0),
        gpus=gpus,
        bandwidth=rates,
    )
    assert profile.gpu_memory_limit_bytes == 2 * 24576 * MIB
    assert profile.gpu_bandwidth_bytes_per_second == 936 * GB


def test_mixed_pair_is_paced_by_the_slower_known_card() -> None:
    gpus = parse_nvidia_smi_csv(read("nvidia-published/two-gpus-reconstructed.csv"))
    log = FactLog()
    rates = machine_bandwidth(None, gpus, log)
    # TITAN V is in the table; the RTX 5880 Ada is not, and that is said, not guessed.
    assert [(r.device, r.bytes_per_second) for r in rates] == [("gpu:0", 652_800_000_000)]
    assert any("NVIDIA RTX 5880 Ada Generation unknown" in note for note in log.notes)


def test_recorded_h200_bandwidth_from_the_datasheet() -> None:
    (gpu,) = parse_nvidia_smi_csv(read("linux-h200-nvidia/nvidia-smi-query.csv"))
    figure = gpu_bandwidth(gpu)
    assert figure is not None
    assert (figure.device, figure.bytes_per_second) == ("gpu:0", 4800 * GB)
    assert figure.source.startswith("NVIDIA H200 datasheet")
