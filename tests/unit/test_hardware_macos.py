"""macOS parsers on recorded/reconstructed Mac outputs, the GPU budget rule, the macOS probe."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from app.hardware import macos
from app.hardware.macos import (
    apple_from_sysctl,
    apple_gpu_limit,
    cpu_from_sysctl,
    parse_ioreg_gpu_cores,
    parse_sysctl,
    parse_system_profiler_displays,
)
from app.hardware.profile import GIB, MIB, FactLog

FIXTURES = Path(__file__).parent.parent / "fixtures" / "hardware"


def read(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_sysctl_lines_parse_by_name() -> None:
    values = parse_sysctl(read("macos-m2-pro-16gb/sysctl.txt"))
    assert values["machdep.cpu.brand_string"] == "Apple M2 Pro"
    assert values["hw.memsize"] == "17179869184"
    assert values["hw.perflevel1.physicalcpu"] == "4"


def test_sysctl_accepts_equals_form_and_ignores_errors() -> None:
    text = "sysctl: unknown oid 'iogpu.wired_limit_mb'\nhw.memsize = 8589934592\n"
    assert parse_sysctl(text) == {"hw.memsize": "8589934592"}


def test_m1_8gb() -> None:
    values = parse_sysctl(read("macos-m1-8gb/sysctl.txt"))
    (gpu,) = parse_system_profiler_displays(read("macos-m1-8gb/system_profiler_displays.json"))
    apple = apple_from_sysctl(values, gpu.cores)
    assert (apple.chip, apple.performance_cores, apple.efficiency_cores) == ("Apple M1", 4, 4)
    assert apple.gpu_cores == 7
    assert apple.unified_memory_bytes == 8 * GIB
    assert apple.gpu_limit_bytes == int(8 * GIB * 2 / 3)
    assert apple.gpu_limit_source == "default-share-estimate"
    assert apple.wired_limit_mb == 0
    cpu = cpu_from_sysctl(values, apple)
    assert (cpu.physical_cores, cpu.performance_cores, cpu.efficiency_cores) == (8, 4, 4)
    assert cpu.flags == ("NEON",)


def test_m2_pro_gpu_cores_from_ioreg() -> None:
    assert parse_ioreg_gpu_cores(read("macos-m2-pro-16gb/ioreg_agxaccelerator.txt")) == 19
    assert parse_ioreg_gpu_cores("no such class\n") is None


def test_m3_max_64gb_gets_three_quarters_by_default() -> None:
    values = parse_sysctl(read("macos-m3-max-64gb/sysctl.txt"))
    (gpu,) = parse_system_profiler_displays(read("macos-m3-max-64gb/system_profiler_displays.json"))
    assert (gpu.name, gpu.vendor, gpu.cores, gpu.vram_bytes) == ("Apple M3 Max", "Apple", 40, None)
    apple = apple_from_sysctl(values, gpu.cores)
    assert (apple.performance_cores, apple.efficiency_cores) == (12, 4)
    assert apple.gpu_limit_bytes == 48 * GIB


def test_wired_limit_override_wins_over_the_default() -> None:
    text = read("macos-m3-max-64gb/sysctl.txt").replace(
        "iogpu.wired_limit_mb: 0", "iogpu.wired_limit_mb: 57344"
    )
    apple = apple_from_sysctl(parse_sysctl(text), 40)
    assert apple.gpu_limit_bytes == 57344 * MIB
    assert apple.gpu_limit_source == "iogpu.wired_limit_mb"
    assert apple.wired_limit_mb == 57344


def test_missing_wired_limit_key_is_none_not_zero() -> None:
    text = read("macos-m1-8gb/sysctl.txt").replace("iogpu.wired_limit_mb: 0\n", "")
    assert apple_from_sysctl(parse_sysctl(text), None).wired_limit_mb is None


@pytest.mark.parametrize(
    ("memsize", "wired", "metal", "expected"),
    [
        (32 * GIB, 0, None, (int(32 * GIB * 2 / 3), "default-share-estimate")),  # 21845 MiB
        (36 * GIB, None, None, (24 * GIB, "default-share-estimate")),
        (128 * GIB, 0, None, (96 * GIB, "default-share-estimate")),
        (16 * GIB, 12000, None, (12000 * MIB, "iogpu.wired_limit_mb")),
        (16 * GIB, 999_999, None, (16 * GIB, "iogpu.wired_limit_mb")),
        (128 * GIB, 114688, int(107.52 * GIB), (int(107.52 * GIB), "metal")),
    ],
)
def test_gpu_limit_rule(
    memsize: int, wired: int | None, metal: int | None, expected: tuple[int, str]
) -> None:
    assert apple_gpu_limit(memsize, wired, metal) == expected


def test_three_performance_levels_count_the_lower_ones_as_efficiency() -> None:
    values = {
        "machdep.cpu.brand_string": "Apple M5 Max",
        "hw.memsize": str(128 * GIB),
        "hw.physicalcpu": "18",
        "hw.perflevel0.physicalcpu": "6",
        "hw.perflevel1.physicalcpu": "12",
    }
    apple = apple_from_sysctl(values, 40)
    assert (apple.performance_cores, apple.efficiency_cores) == (6, 12)


def test_sysctl_without_memsize_is_rejected() -> None:
    with pytest.raises(KeyError):
        apple_from_sysctl({"machdep.cpu.brand_string": "Apple M1"}, None)


def test_intel_mac_cpu_and_discrete_gpu() -> None:
    values = {
        "machdep.cpu.brand_string": "Intel(R) Core(TM) i9-9880H CPU @ 2.30GHz",
        "hw.physicalcpu": "8",
        "hw.logicalcpu": "16",
        "hw.optional.avx2_0": "1",
    }
    cpu = cpu_from_sysctl(values, None)
    assert (cpu.physical_cores, cpu.performance_cores, cpu.logical_cores) == (8, 8, 16)
    assert cpu.flags == ("AVX2",)
    text = (
        '{"SPDisplaysDataType":[{"_name":"Intel UHD Graphics 630","spdisplays_vram":"1536 MB"},'
        '{"sppci_model":"AMD Radeon Pro 5500M","spdisplays_vram":"8 GB",'
        '"spdisplays_vendor":"sppci_vendor_amd"}]}'
    )
    intel, amd = parse_system_profiler_displays(text)
    assert (intel.vendor, intel.vram_bytes) == ("Intel", 1536 * MIB)
    assert (amd.name, amd.vendor, amd.vram_bytes) == ("AMD Radeon Pro 5500M", "AMD", 8 * GIB)


def test_bad_system_profiler_json_is_rejected() -> None:
    with pytest.raises(ValueError):
        parse_system_profiler_displays("{}")
    with pytest.raises(ValueError):
        parse_system_profiler_displays("not json")


class FakeMac:
    """subprocess.run stand-in answering sysctl/ioreg/system_profiler from a fixture folder."""

    def __init__(self, folder: str, *, ioreg: bool) -> None:
        self.folder = folder
        self.ioreg = ioreg
        self.calls: list[str] = []

    def __call__(self, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        tool = args[0]
        self.calls.append(tool)
        if tool == "sysctl":
            # Real sysctl exits 1 when one name is unknown but still prints the others.
            return subprocess.CompletedProcess(args, 1, read(f"{self.folder}/sysctl.txt"), "")
        if tool == "ioreg" and self.ioreg:
            text = read("macos-m2-pro-16gb/ioreg_agxaccelerator.txt")
            return subprocess.CompletedProcess(args, 0, text, "")
        if tool == "system_profiler":
            text = read(f"{self.folder}/system_profiler_displays.json")
            return subprocess.CompletedProcess(args, 0, text, "")
        raise FileNotFoundError(2, "not found", tool)


def test_probe_macos_with_ioreg(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeMac("macos-m2-pro-16gb", ioreg=True)
    monkeypatch.setattr(subprocess, "run", fake)
    log = FactLog()
    cpu, apple, gpus, memsize = macos.probe_macos(log)
    assert apple is not None and apple.gpu_cores == 19
    assert fake.calls == ["sysctl", "ioreg"]  # system_profiler is not needed
    assert (cpu.model, cpu.performance_cores, memsize, gpus) == ("Apple M2 Pro", 8, 16 * GIB, ())
    assert log.sources["apple.gpu_cores"] == "ioreg AGXAccelerator gpu-core-count"


def test_probe_macos_falls_back_to_system_profiler(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeMac("macos-m3-max-64gb", ioreg=False)
    monkeypatch.setattr(subprocess, "run", fake)
    log = FactLog()
    _, apple, _, _ = macos.probe_macos(log)
    assert apple is not None and apple.gpu_cores == 40
    assert log.sources["apple.gpu_cores"] == "system_profiler SPDisplaysDataType"
    assert "ioreg not found" in log.notes


def test_probe_macos_without_any_tool_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError(2, "not found", args[0])

    monkeypatch.setattr(subprocess, "run", missing)
    log = FactLog()
    cpu, apple, gpus, memsize = macos.probe_macos(log)
    assert (apple, gpus, memsize) == (None, (), 0)
    assert cpu.physical_cores == 1 and cpu.model == "unknown CPU"
    assert "sysctl not found" in log.notes


def fake_metal(monkeypatch: pytest.MonkeyPatch, device: object) -> None:
    module = types.ModuleType("Metal")
    module.MTLCreateSystemDefaultDevice = lambda: device  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "Metal", module)


class FakeDevice:
    def __init__(self, size: int | Exception) -> None:
        self.size = size

    def recommendedMaxWorkingSetSize(self) -> int:
        if isinstance(self.size, Exception):
            raise self.size
        return self.size


def test_metal_working_set_through_pyobjc(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_metal(monkeypatch, FakeDevice(51_539_607_552))
    assert macos.metal_working_set(FactLog()) == 51_539_607_552


def test_metal_without_a_device_is_none_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_metal(monkeypatch, None)
    log = FactLog()
    assert macos.metal_working_set(log) is None
    assert log.notes == ["Metal gave no default device; GPU limit estimated"]


def test_failing_metal_call_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_metal(monkeypatch, FakeDevice(RuntimeError("objc.error: no GPU")))
    log = FactLog()
    assert macos.metal_working_set(log) is None
    assert log.notes == ["Metal working-set query failed: objc.error: no GPU"]


def test_without_pyobjc_metal_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "Metal", None)  # makes `import Metal` fail
    log = FactLog()
    assert macos.metal_working_set(log) is None
    assert log.notes == []
