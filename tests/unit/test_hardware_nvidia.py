"""NVIDIA: nvidia-smi CSV parsing on recorded outputs, the retry for old drivers, NVML."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app.hardware import nvidia
from app.hardware.nvidia import NvmlUnavailable, nvml_gpus, parse_nvidia_smi_csv, smi_command
from app.hardware.profile import MIB, FactLog

FIXTURES = Path(__file__).parent.parent / "fixtures" / "hardware"


def read(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_recorded_h200_query() -> None:
    (gpu,) = parse_nvidia_smi_csv(read("linux-h200-nvidia/nvidia-smi-query.csv"))
    assert gpu.name == "NVIDIA H200"
    assert gpu.memory_total_bytes == 143771 * MIB
    assert gpu.memory_free_bytes == 143156 * MIB
    assert (gpu.driver, gpu.compute_capability, gpu.source, gpu.index) == (
        "580.159.04",
        "9.0",
        "nvidia-smi",
        0,
    )


def test_two_gpus() -> None:
    gpus = parse_nvidia_smi_csv(read("nvidia-published/two-gpus-reconstructed.csv"))
    assert [(g.index, g.name, g.compute_capability) for g in gpus] == [
        (0, "NVIDIA TITAN V", "7.0"),
        (1, "NVIDIA RTX 5880 Ada Generation", "8.9"),
    ]
    assert sum(g.memory_total_bytes for g in gpus) == (12288 + 49140) * MIB


def test_published_row_with_other_fields_and_na() -> None:
    fields = [
        "power.limit",
        "power.min_limit",
        "power.max_limit",
        "memory.total",
        "vbios_version",
        "driver_version",
        "name",
        "gpu_uuid",
        "power.draw",
        "temperature.gpu",
        "temperature.memory",
        "clocks.current.graphics",
        "clocks.sm",
        "clocks.mem",
        "utilization.gpu",
        "utilization.memory",
        "fan.speed",
        "pcie.link.width.current",
        "pstate",
    ]
    text = read("nvidia-published/gpu-utils-rtx2080-noheader-nounits.csv")
    (gpu,) = parse_nvidia_smi_csv(text, fields)
    assert (gpu.name, gpu.memory_total_bytes, gpu.driver) == (
        "GeForce RTX 2080",
        7979 * MIB,
        "440.64",
    )
    assert gpu.memory_free_bytes is None  # not queried
    assert gpu.compute_capability == ""


def test_header_and_unit_rows_are_skipped() -> None:
    # With units, "143771 MiB" does not parse as a number: the row is skipped, not guessed.
    text = read("linux-h200-nvidia/nvidia-smi-query-with-header-units.csv")
    assert parse_nvidia_smi_csv(text) == ()


def test_not_supported_values_become_unknown() -> None:
    (gpu,) = parse_nvidia_smi_csv("0, Tesla T4, 15360, [N/A], 470.82.01, [Not Supported]\n")
    assert gpu.memory_free_bytes is None
    assert gpu.compute_capability == ""


def test_short_rows_are_skipped() -> None:
    assert parse_nvidia_smi_csv("garbage\n\n0, X\n") == ()


class FakeRun:
    """Stands in for subprocess.run: answers by whether compute_cap is asked for."""

    def __init__(self, *, old_driver: bool) -> None:
        self.old_driver = old_driver
        self.calls: list[list[str]] = []

    def __call__(self, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        if "compute_cap" in args[1] and self.old_driver:
            message = read("nvidia-published/driver-470-compute-cap-rejected.txt")
            return subprocess.CompletedProcess(args, 2, message, "")
        row = "0, Tesla T4, 15360, 15000, 470.82.01" + ("" if self.old_driver else ", 7.5")
        return subprocess.CompletedProcess(args, 0, row + "\n", "")


def test_old_driver_query_is_retried_without_compute_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRun(old_driver=True)
    monkeypatch.setattr(subprocess, "run", fake)
    log = FactLog()
    (gpu,) = nvidia.probe_nvidia_smi(log)
    assert len(fake.calls) == 2
    assert "compute_cap" not in fake.calls[1][1]
    assert (gpu.name, gpu.compute_capability) == ("Tesla T4", "")
    assert log.sources["gpus"] == "nvidia-smi --query-gpu"


def test_current_driver_is_asked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRun(old_driver=False)
    monkeypatch.setattr(subprocess, "run", fake)
    (gpu,) = nvidia.probe_nvidia_smi(FactLog())
    assert fake.calls == [smi_command()]
    assert gpu.compute_capability == "7.5"


def test_missing_nvidia_smi_is_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError(2, "No such file", args[0])

    monkeypatch.setattr(subprocess, "run", missing)
    log = FactLog()
    assert nvidia.probe_nvidia_smi(log) == ()
    assert log.notes == ["nvidia-smi not found"]


def test_hanging_nvidia_smi_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    def hang(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert kwargs["timeout"] == 2.0
        raise subprocess.TimeoutExpired(args, kwargs["timeout"])

    monkeypatch.setattr(subprocess, "run", hang)
    log = FactLog()
    assert nvidia.probe_nvidia_smi(log) == ()
    assert log.notes == ["nvidia-smi did not answer within 2 s"]


def test_driver_failure_is_noted_with_its_message(monkeypatch: pytest.MonkeyPatch) -> None:
    message = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"

    def broken(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(args, 9, message, "")

    monkeypatch.setattr(subprocess, "run", broken)
    log = FactLog()
    assert nvidia.probe_nvidia_smi(log) == ()
    assert log.notes == [f"nvidia-smi failed (exit 9): {message.strip()}"]


class FakeNVMLError(Exception):
    pass


def fake_nvml(*, init_fails: bool = False, names: tuple[object, ...] = (b"NVIDIA A100",)) -> Any:
    handles = list(range(len(names)))

    def init() -> None:
        if init_fails:
            raise FakeNVMLError("NVML Shared Library Not Found")

    def capability(handle: int) -> tuple[int, int]:
        if handle == 1:
            raise FakeNVMLError("Not Supported")
        return (8, 0)

    return SimpleNamespace(
        NVMLError=FakeNVMLError,
        nvmlInit=init,
        nvmlShutdown=lambda: None,
        nvmlSystemGetDriverVersion=lambda: "550.54.15",
        nvmlDeviceGetCount=lambda: len(names),
        nvmlDeviceGetHandleByIndex=lambda i: handles[i],
        nvmlDeviceGetName=lambda h: names[h],
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(total=80 * 2**30, free=79 * 2**30),
        nvmlDeviceGetCudaComputeCapability=capability,
    )


def test_nvml_reads_every_device() -> None:
    gpus = nvml_gpus(fake_nvml(names=(b"NVIDIA A100", "NVIDIA A100")))
    assert [g.name for g in gpus] == ["NVIDIA A100", "NVIDIA A100"]
    assert [g.compute_capability for g in gpus] == ["8.0", ""]
    assert {g.source for g in gpus} == {"nvml"}
    assert gpus[0].driver == "550.54.15"
    assert gpus[1].memory_free_bytes == 79 * 2**30


def test_nvml_init_failure_is_unavailable() -> None:
    with pytest.raises(NvmlUnavailable, match="Shared Library Not Found"):
        nvml_gpus(fake_nvml(init_fails=True))


def test_nvml_reads_bus_width_and_max_memory_clock() -> None:
    asked: list[tuple[int, int]] = []

    def max_clock(handle: int, clock_type: int) -> int:
        asked.append((handle, clock_type))
        return 10501

    nvml = fake_nvml(names=(b"NVIDIA GeForce RTX 4090",))
    nvml.NVML_CLOCK_MEM = 2
    nvml.nvmlDeviceGetMemoryBusWidth = lambda h: 384
    nvml.nvmlDeviceGetMaxClockInfo = max_clock
    (gpu,) = nvml_gpus(nvml)
    assert (gpu.memory_bus_width_bits, gpu.max_memory_clock_mhz) == (384, 10501)
    assert asked == [(0, 2)]


def test_nvml_without_bus_calls_leaves_them_unknown() -> None:
    (gpu,) = nvml_gpus(fake_nvml())  # an old binding: neither function exists
    assert (gpu.memory_bus_width_bits, gpu.max_memory_clock_mhz) == (None, None)


def test_nvml_bus_calls_that_fail_or_say_zero_are_unknown() -> None:
    def not_supported(*args: object) -> int:
        raise FakeNVMLError("Not Supported")

    nvml = fake_nvml()
    nvml.nvmlDeviceGetMemoryBusWidth = not_supported
    nvml.nvmlDeviceGetMaxClockInfo = lambda h, t: 0
    (gpu,) = nvml_gpus(nvml)
    assert (gpu.memory_bus_width_bits, gpu.max_memory_clock_mhz) == (None, None)
    assert gpu.memory_total_bytes == 80 * 2**30  # the rest of the device still counts
