"""Live memory figures for the status bar: RAM (unified memory on Apple), VRAM, loaded models.

`sample_resources(pids)` is cheap (psutil reads /proc or the Mach host statistics; NVML asks the
driver) and never raises: what cannot be read is None. The loaded models' own memory is the
resident memory of their worker processes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType

import psutil


@dataclass(frozen=True, slots=True)
class ResourceSample:
    """One reading.

    Attributes:
        ram_used_bytes: memory in use (total − available), the unified pool on Apple.
        ram_total_bytes: physical memory.
        vram_used_bytes: NVIDIA memory in use over all GPUs; None without NVML.
        vram_total_bytes: NVIDIA memory in all; None without NVML.
        models_bytes: resident memory of the given model worker processes.
    """

    ram_used_bytes: int
    ram_total_bytes: int
    vram_used_bytes: int | None
    vram_total_bytes: int | None
    models_bytes: int


def sample_resources(pids: Iterable[int] = (), nvml: ModuleType | None = None) -> ResourceSample:
    """Read memory now; processes that are gone count as 0."""
    memory = psutil.virtual_memory()
    models = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            models += int(psutil.Process(pid).memory_info().rss)
    used, total = _vram(nvml)
    return ResourceSample(
        ram_used_bytes=int(memory.total - memory.available),
        ram_total_bytes=int(memory.total),
        vram_used_bytes=used,
        vram_total_bytes=total,
        models_bytes=models,
    )


def _vram(nvml: ModuleType | None) -> tuple[int | None, int | None]:
    """(used, total) NVIDIA memory over all GPUs; (None, None) without a working NVML."""
    if nvml is None:
        try:
            import pynvml
        except ImportError:
            return None, None
        nvml = pynvml
    error_type: type[BaseException] = getattr(nvml, "NVMLError", OSError)
    try:
        nvml.nvmlInit()
    except (error_type, OSError):
        return None, None
    try:
        used = total = 0
        for index in range(int(nvml.nvmlDeviceGetCount())):
            info = nvml.nvmlDeviceGetMemoryInfo(nvml.nvmlDeviceGetHandleByIndex(index))
            used += int(info.used)
            total += int(info.total)
        return (used, total) if total else (None, None)
    except (error_type, OSError):
        return None, None
    finally:
        with contextlib.suppress(error_type, OSError):
            nvml.nvmlShutdown()


def strip_text(sample: ResourceSample, apple: bool = False) -> str:
    """The status-bar text: "RAM 12.3 / 32.0 GB · models 4.9 GB · VRAM 8.1 / 24.0 GB"."""
    pool = "Unified memory" if apple else "RAM"
    parts = [f"{pool} {_gb(sample.ram_used_bytes)} / {_gb(sample.ram_total_bytes)} GB"]
    if sample.models_bytes:
        parts.append(f"models {_gb(sample.models_bytes)} GB")
    if sample.vram_used_bytes is not None and sample.vram_total_bytes:
        parts.append(f"VRAM {_gb(sample.vram_used_bytes)} / {_gb(sample.vram_total_bytes)} GB")
    return " · ".join(parts)


def _gb(n_bytes: int) -> str:
    return f"{n_bytes / (1 << 30):.1f}"
