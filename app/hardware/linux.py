"""Linux CPU and memory: parsers for /proc/cpuinfo, /proc/meminfo, /proc/version, and a probe."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import psutil

from app.hardware.profile import GPU, CPUInfo, FactLog, MemoryInfo

# /proc/cpuinfo flag (x86 "flags", ARM "Features") -> the name we report. Order is the report order.
_FLAG_NAMES: tuple[tuple[str, str], ...] = (
    ("avx", "AVX"),
    ("avx2", "AVX2"),
    ("fma", "FMA"),
    ("f16c", "F16C"),
    ("avx512f", "AVX-512"),
    ("avx512_bf16", "AVX-512-BF16"),
    ("avx_vnni", "AVX-VNNI"),
    ("asimd", "NEON"),
    ("sve", "SVE"),
)


@dataclass(frozen=True, slots=True)
class CpuinfoFacts:
    """What /proc/cpuinfo says.

    Attributes:
        model: "model name" (x86) or "Model"/"Hardware" (ARM); "" when absent.
        logical_cores: number of "processor" entries.
        physical_cores: distinct (physical id, core id) pairs; 0 when the file has no
            topology (many ARM kernels), so the caller asks psutil instead.
        flags: SIMD features, named as in `CPUInfo.flags`.
        single_thread_cores: on a CPU where some cores run two threads and others one, the
            cores with one (Intel hybrid E-cores have no SMT); 0 when all cores are alike.
    """

    model: str
    logical_cores: int
    physical_cores: int
    flags: tuple[str, ...]
    single_thread_cores: int = 0


def parse_cpuinfo(text: str) -> CpuinfoFacts:
    """Parse /proc/cpuinfo (x86 or ARM)."""
    model = ""
    logical = 0
    threads: dict[tuple[str, str], int] = {}
    raw_flags: set[str] = set()
    physical_id = core_id = ""
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if core_id:
                threads[physical_id, core_id] = threads.get((physical_id, core_id), 0) + 1
            physical_id = core_id = ""
            continue
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "processor":
            logical += 1
        elif key in ("model name", "Model", "Hardware") and not model:
            model = value
        elif key == "physical id":
            physical_id = value
        elif key == "core id":
            core_id = value
        elif key in ("flags", "Features"):
            raw_flags.update(value.split())
    flags = tuple(name for flag, name in _FLAG_NAMES if flag in raw_flags)
    counts = set(threads.values())
    single = sum(1 for n in threads.values() if n == 1) if len(counts) > 1 else 0
    return CpuinfoFacts(model, logical, len(threads), flags, single)


def parse_meminfo(text: str) -> MemoryInfo:
    """Parse /proc/meminfo (values in kB) into bytes.

    MemAvailable is missing on kernels before 3.14; MemFree + Cached stands in then.

    Raises:
        ValueError: no MemTotal line.
    """
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key.strip()] = int(parts[0]) * 1024
    if "MemTotal" not in values:
        raise ValueError("no MemTotal in /proc/meminfo")
    available = values.get("MemAvailable")
    if available is None:
        available = values.get("MemFree", 0) + values.get("Cached", 0)
    return MemoryInfo(
        total_bytes=values["MemTotal"],
        available_bytes=available,
        swap_total_bytes=values.get("SwapTotal", 0),
        swap_free_bytes=values.get("SwapFree", 0),
    )


def is_wsl(proc_version: str, environ: dict[str, str] | None = None) -> bool:
    """Whether /proc/version (or WSL's environment variables) says this is WSL."""
    env = os.environ if environ is None else environ
    return "microsoft" in proc_version.lower() or bool(env.get("WSL_DISTRO_NAME"))


def parse_cpu_list(text: str) -> int:
    """Count the CPUs in a kernel CPU list such as "0-7,16-23" (0 for empty text)."""
    count = 0
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        count += int(high) - int(low) + 1 if high else 1
    return count


def hybrid_efficiency_cores(sys_devices: Path = Path("/sys/devices")) -> int:
    """Intel hybrid CPUs list their E-cores under cpu_atom/cpus (E-cores have no SMT)."""
    try:
        return parse_cpu_list((sys_devices / "cpu_atom" / "cpus").read_text())
    except (OSError, ValueError):
        return 0


def probe_linux_cpu(
    log: FactLog, proc: Path = Path("/proc"), sys_devices: Path = Path("/sys/devices")
) -> CPUInfo:
    """CPU facts from /proc/cpuinfo, with psutil filling gaps. Never raises.

    Efficiency cores come from `sys_devices`/cpu_atom/cpus (Intel hybrid), else from the
    cores /proc/cpuinfo shows with one thread beside others with two (Intel only)."""
    try:
        facts = parse_cpuinfo((proc / "cpuinfo").read_text(errors="replace"))
        log.source("cpu.model", str(proc / "cpuinfo"))
        log.source("cpu.flags", str(proc / "cpuinfo"))
    except OSError as exc:
        log.note(f"cannot read {proc / 'cpuinfo'}: {exc.strerror or exc}")
        facts = CpuinfoFacts("", 0, 0, ())
    logical = facts.logical_cores or psutil.cpu_count(logical=True) or 1
    physical = facts.physical_cores
    if physical:
        log.source("cpu.physical_cores", f"{proc / 'cpuinfo'} (physical id, core id)")
    else:
        physical = psutil.cpu_count(logical=False) or logical
        log.source("cpu.physical_cores", "psutil.cpu_count(logical=False)")
    efficiency = hybrid_efficiency_cores(sys_devices)
    if efficiency:
        log.source("cpu.efficiency_cores", str(sys_devices / "cpu_atom" / "cpus"))
    elif facts.single_thread_cores and "Intel" in facts.model:
        # Older kernels have no cpu_atom PMU; Intel's E-cores are the cores without SMT.
        efficiency = facts.single_thread_cores
        log.source("cpu.efficiency_cores", f"{proc / 'cpuinfo'} (cores with one thread)")
    efficiency = min(efficiency, physical - 1) if physical > 1 else 0
    return CPUInfo(
        model=facts.model or "unknown CPU",
        physical_cores=physical,
        performance_cores=physical - efficiency,
        efficiency_cores=efficiency,
        logical_cores=logical,
        flags=facts.flags,
    )


def probe_linux_memory(log: FactLog, proc: Path = Path("/proc")) -> MemoryInfo:
    """Memory from /proc/meminfo, else psutil. Never raises."""
    try:
        memory = parse_meminfo((proc / "meminfo").read_text(errors="replace"))
    except (OSError, ValueError) as exc:
        log.note(f"cannot read {proc / 'meminfo'} ({exc}); used psutil")
        return psutil_memory(log)
    log.source("memory", str(proc / "meminfo"))
    return memory


def psutil_memory(log: FactLog) -> MemoryInfo:
    """Memory from psutil (any OS)."""
    virtual = psutil.virtual_memory()
    swap = psutil.swap_memory()
    log.source("memory", "psutil")
    return MemoryInfo(
        total_bytes=int(virtual.total),
        available_bytes=int(virtual.available),
        swap_total_bytes=int(swap.total),
        swap_free_bytes=int(swap.free),
    )


def probe_wsl(log: FactLog, proc: Path = Path("/proc")) -> bool:
    """Whether this Linux is WSL. Never raises."""
    try:
        text = (proc / "version").read_text(errors="replace")
    except OSError:
        text = ""
    found = is_wsl(text)
    if found:
        log.source("os.is_wsl", f"{proc / 'version'} or WSL_DISTRO_NAME")
    return found


# PCI vendor ids in sysfs "vendor" files. NVIDIA is left to NVML / nvidia-smi.
_PCI_VENDORS = {"0x1002": "AMD", "0x8086": "Intel"}
OTHER_GPU_NOTE = (
    "AMD/Intel GPUs are listed for information; this build of llama.cpp cannot use them"
)


def parse_drm_gpus(drm: Path) -> tuple[GPU, ...]:
    """AMD and Intel GPUs from a /sys/class/drm tree: `cardN/device/{vendor, device,
    mem_info_vram_total, mem_info_vram_used, product_name}` (amdgpu documents the memory
    files; Intel integrated GPUs have none and share system RAM: total 0, free None).

    Connector entries such as `card0-DP-1` and unreadable cards are skipped.
    """
    cards = [p for p in drm.glob("card*") if re.fullmatch(r"card\d+", p.name)]
    gpus: list[GPU] = []
    for card in sorted(cards, key=lambda p: int(p.name[4:])):
        device = card / "device"
        vendor = _PCI_VENDORS.get(_read(device / "vendor").lower())
        if vendor is None:
            continue
        total = _read_int(device / "mem_info_vram_total")
        used = _read_int(device / "mem_info_vram_used")
        pci_id = _read(device / "device")
        name = _read(device / "product_name") or f"{vendor} GPU (PCI device {pci_id or '?'})"
        gpus.append(
            GPU(
                vendor=vendor,
                name=name,
                memory_total_bytes=total or 0,
                memory_free_bytes=total - used if total and used is not None else None,
                driver=_driver_name(device),
                compute_capability="",
                source="sysfs",
                index=int(card.name[4:]),
            )
        )
    return tuple(gpus)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


def _read_int(path: Path) -> int | None:
    text = _read(path)
    return int(text) if text.isdigit() else None


def _driver_name(device: Path) -> str:
    try:
        return (device / "driver").resolve(strict=True).name
    except OSError:
        return ""


def probe_drm_gpus(log: FactLog, drm: Path = Path("/sys/class/drm")) -> tuple[GPU, ...]:
    """AMD/Intel GPUs from sysfs, for information only (see OTHER_GPU_NOTE). Never raises."""
    try:
        gpus = parse_drm_gpus(drm) if drm.is_dir() else ()
    except OSError as exc:  # sysfs entries can vanish while we walk them (hot-unplug)
        log.note(f"cannot list GPUs in {drm}: {exc.strerror or exc}")
        return ()
    if gpus:
        log.source("other_gpus", str(drm))
        log.note(OTHER_GPU_NOTE)
    return gpus
