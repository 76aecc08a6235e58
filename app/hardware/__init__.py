"""Hardware probes (Linux/CPU, NVIDIA, macOS/Apple Silicon) that build a `HardwareProfile`."""

from __future__ import annotations

from app.hardware.probe import probe_hardware
from app.hardware.profile import (
    GPU,
    AppleSilicon,
    CPUInfo,
    HardwareProfile,
    MemoryBandwidth,
    MemoryInfo,
    OSInfo,
    as_dict,
    summary_line,
)

__all__ = [
    "GPU",
    "AppleSilicon",
    "CPUInfo",
    "HardwareProfile",
    "MemoryBandwidth",
    "MemoryInfo",
    "OSInfo",
    "as_dict",
    "probe_hardware",
    "summary_line",
]
