"""`probe_hardware()`: ask the OS what this machine has, without raising and without hanging."""

from __future__ import annotations

import platform
import shutil
import sys
from pathlib import Path

from app.hardware import bandwidth, linux, macos, nvidia
from app.hardware.profile import (
    GPU,
    AppleSilicon,
    CPUInfo,
    FactLog,
    HardwareProfile,
    MemoryInfo,
    OSInfo,
)


def probe_hardware(models_dir: Path | None = None) -> HardwareProfile:
    """Probe OS, CPU, memory, disk and GPUs.

    Every probe has a fallback; what could not be learned is recorded in `notes` and
    `sources` says where each fact came from. Subprocesses time out after 2 s
    (system_profiler 5 s, and only on macOS when ioreg said nothing). Memory bandwidth comes
    from chip/card tables or NVML (`bandwidth`); AMD/Intel GPUs found in Linux sysfs go to
    `other_gpus`, for information only.

    Args:
        models_dir: the folder models are stored in; its disk's free space is measured
            (the nearest existing parent when it does not exist yet).
    """
    log = FactLog()
    system = platform.system()
    apple: AppleSilicon | None = None
    gpus: tuple[GPU, ...] = ()
    if system == "Darwin":
        cpu, apple, gpus, memsize = macos.probe_macos(log)
        memory = linux.psutil_memory(log)
        if memsize:
            memory = MemoryInfo(
                memsize, memory.available_bytes, memory.swap_total_bytes, memory.swap_free_bytes
            )
            log.source("memory.total_bytes", "sysctl hw.memsize")
        os_info = OSInfo(
            name="macOS",
            version=platform.mac_ver()[0],
            machine=platform.machine(),
            is_translated=_translated(log),
        )
    elif system == "Linux":
        cpu = linux.probe_linux_cpu(log)
        memory = linux.probe_linux_memory(log)
        os_info = OSInfo("Linux", platform.release(), platform.machine(), linux.probe_wsl(log))
    else:
        cpu = _generic_cpu(log)
        memory = linux.psutil_memory(log)
        os_info = OSInfo(system or sys.platform, platform.version(), platform.machine())
    other_gpus: tuple[GPU, ...] = ()
    if system != "Darwin":
        gpus = nvidia.probe_nvidia(log)
    if system == "Linux":
        other_gpus = linux.probe_drm_gpus(log)
    rates = bandwidth.machine_bandwidth(apple, gpus, log)
    folder, free = _disk_free(models_dir, log)
    return HardwareProfile(
        os=os_info,
        cpu=cpu,
        memory=memory,
        models_dir=folder,
        disk_free_bytes=free,
        gpus=gpus,
        apple=apple,
        sources=tuple(log.sources.items()),
        notes=tuple(log.notes),
        bandwidth=rates,
        other_gpus=other_gpus,
    )


def _translated(log: FactLog) -> bool:
    return any("Rosetta" in note for note in log.notes)


def _generic_cpu(log: FactLog) -> CPUInfo:
    """Windows and other systems: psutil counts and platform's processor string."""
    import psutil

    logical = psutil.cpu_count(logical=True) or 1
    physical = psutil.cpu_count(logical=False) or logical
    log.source("cpu", "psutil + platform.processor()")
    log.note("performance/efficiency cores and SIMD flags are not probed on this OS")
    return CPUInfo(
        model=platform.processor() or "unknown CPU",
        physical_cores=physical,
        performance_cores=physical,
        efficiency_cores=0,
        logical_cores=logical,
    )


def _disk_free(models_dir: Path | None, log: FactLog) -> tuple[str, int | None]:
    """Free bytes on the disk holding models_dir (or its nearest existing parent)."""
    if models_dir is None:
        return "", None
    folder = Path(models_dir).expanduser()
    target = folder
    while not target.exists() and target != target.parent:
        target = target.parent
    try:
        free = shutil.disk_usage(target).free
    except OSError as exc:
        log.note(f"cannot measure free disk space at {target}: {exc.strerror or exc}")
        return str(folder), None
    log.source("disk_free_bytes", f"shutil.disk_usage({target})")
    return str(folder), free
