"""Linux CPU and memory parsers on recorded /proc files, and the Linux probe on this machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.hardware.linux import (
    hybrid_efficiency_cores,
    is_wsl,
    parse_cpu_list,
    parse_cpuinfo,
    parse_drm_gpus,
    parse_meminfo,
    probe_drm_gpus,
    probe_linux_cpu,
    probe_linux_memory,
)
from app.hardware.profile import FactLog

FIXTURES = Path(__file__).parent.parent / "fixtures" / "hardware"


def read(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_epyc_vm_cpuinfo() -> None:
    facts = parse_cpuinfo(read("linux-epyc-2core-vm/cpuinfo.txt"))
    assert facts.model == "AMD EPYC"
    assert (facts.logical_cores, facts.physical_cores) == (2, 2)
    assert facts.flags == ("AVX", "AVX2", "FMA", "F16C", "AVX-512", "AVX-512-BF16")


def test_h200_host_cpuinfo() -> None:
    facts = parse_cpuinfo(read("linux-h200-nvidia/cpuinfo.txt"))
    assert facts.model == "Intel(R) Xeon(R) Processor"
    assert (facts.logical_cores, facts.physical_cores) == (16, 16)
    assert "AVX-VNNI" in facts.flags and "NEON" not in facts.flags


def test_hyperthreads_count_once_as_physical_cores() -> None:
    block = "processor : {n}\nmodel name : X\nphysical id : 0\ncore id : {core}\nflags : avx2\n"
    text = "\n".join(block.format(n=n, core=n % 2) for n in range(4))
    facts = parse_cpuinfo(text)
    assert (facts.logical_cores, facts.physical_cores) == (4, 2)


def test_arm_cpuinfo_has_neon_and_no_topology() -> None:
    text = (
        "processor\t: 0\nBogoMIPS\t: 48.00\nFeatures\t: fp asimd evtstrm aes sve\n"
        "CPU implementer\t: 0x61\n\nprocessor\t: 1\nFeatures\t: fp asimd\n\n"
    )
    facts = parse_cpuinfo(text)
    assert (facts.logical_cores, facts.physical_cores) == (2, 0)
    assert facts.flags == ("NEON", "SVE")
    assert facts.model == ""


def test_meminfo_of_the_vm() -> None:
    memory = parse_meminfo(read("linux-epyc-2core-vm/meminfo.txt"))
    assert memory.total_bytes == 24684096 * 1024
    assert memory.available_bytes == 24318904 * 1024
    assert (memory.swap_total_bytes, memory.swap_free_bytes) == (0, 0)


def test_meminfo_without_memavailable_uses_free_plus_cached() -> None:
    memory = parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nCached: 50 kB\n")
    assert memory.available_bytes == 150 * 1024


def test_meminfo_without_total_is_rejected() -> None:
    with pytest.raises(ValueError, match="MemTotal"):
        parse_meminfo("MemFree: 1 kB\n")


@pytest.mark.parametrize(
    ("version", "env", "expected"),
    [
        ("Linux version 5.15.153.1-microsoft-standard-WSL2 (root@1ff7e3) ...", {}, True),
        ("Linux version 4.4.0-19041-Microsoft (Microsoft@Microsoft.com)", {}, True),
        ("", {"WSL_DISTRO_NAME": "Ubuntu"}, True),
        (read("linux-epyc-2core-vm/proc_version.txt"), {}, False),
    ],
)
def test_wsl_detection(version: str, env: dict[str, str], expected: bool) -> None:
    assert is_wsl(version, env) is expected


@pytest.mark.parametrize(("text", "count"), [("0-7,16-23\n", 16), ("3", 1), ("", 0), ("0,2-3", 3)])
def test_cpu_list(text: str, count: int) -> None:
    assert parse_cpu_list(text) == count


def test_hybrid_intel_efficiency_cores(tmp_path: Path) -> None:
    (tmp_path / "cpu_atom").mkdir()
    (tmp_path / "cpu_atom" / "cpus").write_text("16-23\n")
    assert hybrid_efficiency_cores(tmp_path) == 8
    assert hybrid_efficiency_cores(tmp_path / "missing") == 0


def test_probe_reads_a_fake_proc(tmp_path: Path) -> None:
    (tmp_path / "cpuinfo").write_text(read("linux-h200-nvidia/cpuinfo.txt"))
    (tmp_path / "meminfo").write_text(read("linux-h200-nvidia/meminfo.txt"))
    log = FactLog()
    cpu = probe_linux_cpu(log, tmp_path)
    memory = probe_linux_memory(log, tmp_path)
    assert (cpu.physical_cores, cpu.performance_cores, cpu.efficiency_cores) == (16, 16, 0)
    assert memory.total_bytes > 120 * 2**30
    assert log.sources["memory"] == str(tmp_path / "meminfo")
    assert log.notes == []


def test_probe_without_proc_falls_back_to_psutil(tmp_path: Path) -> None:
    log = FactLog()
    cpu = probe_linux_cpu(log, tmp_path)
    memory = probe_linux_memory(log, tmp_path)
    assert cpu.logical_cores >= 1 and cpu.physical_cores >= 1
    assert cpu.model == "unknown CPU"
    assert memory.total_bytes > 0
    assert log.sources["memory"] == "psutil"
    assert any("cpuinfo" in note for note in log.notes)


def fake_card(drm: Path, name: str, files: dict[str, str], driver: str = "") -> None:
    """A /sys/class/drm/<name>/device folder as the amdgpu / i915 drivers lay it out."""
    device = drm / name / "device"
    device.mkdir(parents=True)
    for file, text in files.items():
        (device / file).write_text(text + "\n")
    if driver:
        target = drm.parent / "drivers" / driver
        target.mkdir(parents=True, exist_ok=True)
        (device / "driver").symlink_to(target)


def fake_drm(tmp_path: Path) -> Path:
    drm = tmp_path / "class" / "drm"
    amd = {
        "vendor": "0x1002",
        "device": "0x73bf",
        "mem_info_vram_total": str(16 * 1024**3),
        "mem_info_vram_used": str(1024**3),
        "product_name": "",
    }
    fake_card(drm, "card1", amd, driver="amdgpu")
    fake_card(drm, "card0", {"vendor": "0x8086", "device": "0x46a6"}, driver="i915")
    fake_card(drm, "card2", {"vendor": "0x10de", "device": "0x2684"})  # NVML's business
    (drm / "card1-DP-1").mkdir()  # a connector, not a GPU
    (drm / "renderD128").mkdir()
    return drm


def test_sysfs_amd_and_intel_gpus(tmp_path: Path) -> None:
    intel, amd = parse_drm_gpus(fake_drm(tmp_path))
    assert (amd.vendor, amd.name, amd.index, amd.source, amd.driver) == (
        "AMD",
        "AMD GPU (PCI device 0x73bf)",
        1,
        "sysfs",
        "amdgpu",
    )
    assert (amd.memory_total_bytes, amd.memory_free_bytes) == (16 * 1024**3, 15 * 1024**3)
    assert (intel.vendor, intel.name, intel.driver) == (
        "Intel",
        "Intel GPU (PCI device 0x46a6)",
        "i915",
    )
    assert (intel.memory_total_bytes, intel.memory_free_bytes) == (0, None)  # shares RAM
    assert not amd.usable_by_llama_cpp and not intel.usable_by_llama_cpp


def test_sysfs_product_name_and_missing_used_file(tmp_path: Path) -> None:
    drm = tmp_path / "drm"
    files = {
        "vendor": "0x1002",
        "mem_info_vram_total": "8589934592",
        "product_name": "Radeon RX 6600",
    }
    fake_card(drm, "card0", files)
    (gpu,) = parse_drm_gpus(drm)
    assert (gpu.name, gpu.memory_total_bytes, gpu.memory_free_bytes, gpu.driver) == (
        "Radeon RX 6600",
        8589934592,
        None,
        "",
    )


def test_probe_drm_notes_that_other_gpus_are_information_only(tmp_path: Path) -> None:
    log = FactLog()
    gpus = probe_drm_gpus(log, fake_drm(tmp_path))
    assert [g.vendor for g in gpus] == ["Intel", "AMD"]
    assert log.notes == [
        "AMD/Intel GPUs are listed for information; this build of llama.cpp cannot use them"
    ]
    assert log.sources["other_gpus"] == str(tmp_path / "class" / "drm")


def test_probe_drm_without_sysfs_is_silent(tmp_path: Path) -> None:
    log = FactLog()
    assert probe_drm_gpus(log, tmp_path / "missing") == ()
    assert (log.notes, log.sources) == ([], {})
