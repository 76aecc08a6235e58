"""Live memory readings for the status bar: psutil, NVML (faked), worker processes."""

from __future__ import annotations

import os

import psutil

from app.resources import ResourceSample, sample_resources, strip_text

GIB = 1 << 30


class FakeNvml:
    class NVMLError(Exception):
        pass

    def __init__(self, gpus: list[tuple[int, int]], fail: bool = False) -> None:
        self.gpus, self.fail = gpus, fail

    def nvmlInit(self) -> None:
        if self.fail:
            raise self.NVMLError("NVML Shared Library Not Found")

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> object:
        used, total = self.gpus[handle]
        return type("Memory", (), {"used": used, "total": total})()


def test_a_sample_reads_ram_and_the_models_processes() -> None:
    sample = sample_resources([os.getpid(), 2**22 + 12345], nvml=FakeNvml([], fail=True))  # type: ignore[arg-type]
    assert sample.ram_total_bytes == psutil.virtual_memory().total
    assert 0 < sample.ram_used_bytes < sample.ram_total_bytes
    assert sample.models_bytes >= psutil.Process().memory_info().rss // 2  # the gone pid: 0
    assert (sample.vram_used_bytes, sample.vram_total_bytes) == (None, None)


def test_vram_is_summed_over_gpus() -> None:
    sample = sample_resources([], nvml=FakeNvml([(2 * GIB, 24 * GIB), (1 * GIB, 24 * GIB)]))  # type: ignore[arg-type]
    assert (sample.vram_used_bytes, sample.vram_total_bytes) == (3 * GIB, 48 * GIB)


def test_strip_text() -> None:
    sample = ResourceSample(int(12.3 * GIB), 32 * GIB, 8 * GIB, 24 * GIB, int(4.9 * GIB))
    assert strip_text(sample) == "RAM 12.3 / 32.0 GB · models 4.9 GB · VRAM 8.0 / 24.0 GB"
    bare = ResourceSample(int(1.5 * GIB), 8 * GIB, None, None, 0)
    assert strip_text(bare, apple=True) == "Unified memory 1.5 / 8.0 GB"
