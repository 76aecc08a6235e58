"""macOS: sysctl, ioreg and system_profiler parsers, the Metal memory budget, and the probe.

The GPU of an Apple Silicon Mac may wire only part of unified memory: Metal's
`recommendedMaxWorkingSetSize`. Without PyObjC we cannot ask Metal, so the budget comes from
`sysctl iogpu.wired_limit_mb` when the user raised it, else from the observed default share
(reference/fit.md §4.2).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from app.hardware.commands import run_command
from app.hardware.profile import GIB, GPU, MIB, AppleSilicon, CPUInfo, FactLog

SYSCTL_KEYS: tuple[str, ...] = (
    "machdep.cpu.brand_string",
    "hw.model",
    "hw.memsize",
    "hw.physicalcpu",
    "hw.logicalcpu",
    "hw.nperflevels",
    "hw.perflevel0.physicalcpu",
    "hw.perflevel1.physicalcpu",
    "hw.perflevel2.physicalcpu",
    "iogpu.wired_limit_mb",
    "sysctl.proc_translated",
    "hw.optional.arm64",
    "hw.optional.avx2_0",
    "hw.optional.avx512f",
)
"""Asked by name (not `-n`): an unknown key then costs one line on stderr, not the order."""

SYSTEM_PROFILER_TIMEOUT_S = 5.0  # cold runs take 0.5-2 s; it is only a fallback for ioreg
SMALL_MAC_LIMIT = 36 * GIB


@dataclass(frozen=True, slots=True)
class DisplayAdapter:
    """One entry of `system_profiler SPDisplaysDataType -json`."""

    name: str
    vendor: str
    cores: int | None
    vram_bytes: int | None


def parse_sysctl(text: str) -> dict[str, str]:
    """Parse `sysctl name ...` output ("name: value" lines; "name = value" also accepted)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(
            r"^(\w+\.[\w.]+)\s*(?::|=)\s?(.*)$", line.strip()
        )  # "sysctl: ..." errors skip
        if match:
            values[match.group(1)] = match.group(2).strip()
    return values


def parse_ioreg_gpu_cores(text: str) -> int | None:
    """GPU cores from `ioreg -rc AGXAccelerator -d 1` ("gpu-core-count" = N), else None."""
    match = re.search(r'"gpu-core-count"\s*=\s*(\d+)', text)
    return int(match.group(1)) if match else None


def parse_system_profiler_displays(text: str) -> tuple[DisplayAdapter, ...]:
    """Parse `system_profiler SPDisplaysDataType -json`.

    Raises:
        ValueError: the text is not JSON of that shape.
    """
    data = json.loads(text)
    items = data.get("SPDisplaysDataType") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ValueError("no SPDisplaysDataType list")
    adapters = []
    for item in items:
        if not isinstance(item, dict):
            continue
        name = str(item.get("sppci_model") or item.get("_name") or "GPU")
        vendor_raw = str(item.get("spdisplays_vendor") or "")
        cores = str(item.get("sppci_cores") or "")
        vram = item.get("spdisplays_vram") or item.get("_spdisplays_vram") or ""
        adapters.append(
            DisplayAdapter(
                name=name,
                vendor=_vendor(vendor_raw, name),
                cores=int(cores) if cores.isdigit() else None,
                vram_bytes=_size(str(vram)),
            )
        )
    return tuple(adapters)


def _vendor(raw: str, name: str) -> str:
    text = f"{raw} {name}".lower()
    for key, vendor in (("apple", "Apple"), ("nvidia", "NVIDIA"), ("amd", "AMD"), ("ati", "AMD")):
        if key in text:
            return vendor
    return "Intel" if "intel" in text else (raw or "unknown")


def _size(text: str) -> int | None:
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*(MB|GB)\s*$", text)
    if not match:
        return None
    unit = GIB if match.group(2) == "GB" else MIB  # system_profiler's GB/MB are binary
    return int(float(match.group(1)) * unit)


def apple_gpu_limit(
    memsize: int, wired_limit_mb: int | None, metal_bytes: int | None = None
) -> tuple[int, str]:
    """How much unified memory the GPU may use, and where that figure came from.

    Order: Metal's recommendedMaxWorkingSetSize (follows any wired-limit override);
    else `iogpu.wired_limit_mb` when set above 0; else the default share macOS has been
    observed to give: 2/3 of memory up to 36 GB, 3/4 above (32 GB M1 Max: 21845 MB).
    The default share is an estimate; recent macOS gives large Macs more (128 GB: 84 %).
    """
    if metal_bytes and metal_bytes > 0:
        return metal_bytes, "metal"
    if wired_limit_mb and wired_limit_mb > 0:
        return min(wired_limit_mb * MIB, memsize), "iogpu.wired_limit_mb"
    share = 2 / 3 if memsize <= SMALL_MAC_LIMIT else 3 / 4
    return int(memsize * share), "default-share-estimate"


def apple_from_sysctl(
    values: dict[str, str], gpu_cores: int | None, metal_bytes: int | None = None
) -> AppleSilicon:
    """Apple Silicon facts from parsed sysctl values.

    Raises:
        ValueError: hw.memsize or the chip name is missing.
    """
    memsize = int(values["hw.memsize"])
    chip = values.get("machdep.cpu.brand_string", "").strip()
    if not chip:
        raise ValueError("no machdep.cpu.brand_string")
    levels = [_int(values.get(f"hw.perflevel{i}.physicalcpu")) for i in range(3)]
    counts = [n for n in levels if n]
    performance = counts[0] if counts else _int(values.get("hw.physicalcpu")) or 1
    wired = _int(values.get("iogpu.wired_limit_mb"))
    has_wired = "iogpu.wired_limit_mb" in values
    limit, source = apple_gpu_limit(memsize, wired, metal_bytes)
    return AppleSilicon(
        chip=chip,
        performance_cores=performance,
        efficiency_cores=sum(counts[1:]),
        gpu_cores=gpu_cores,
        unified_memory_bytes=memsize,
        gpu_limit_bytes=limit,
        gpu_limit_source=source,
        wired_limit_mb=(wired or 0) if has_wired else None,
    )


def cpu_from_sysctl(values: dict[str, str], apple: AppleSilicon | None) -> CPUInfo:
    """CPUInfo from parsed sysctl values (Apple Silicon or Intel Mac)."""
    physical = _int(values.get("hw.physicalcpu")) or 1
    logical = _int(values.get("hw.logicalcpu")) or physical
    if values.get("hw.optional.arm64") == "1" or apple is not None:
        flags: tuple[str, ...] = ("NEON",)
    else:
        flags = tuple(
            name
            for key, name in (("hw.optional.avx2_0", "AVX2"), ("hw.optional.avx512f", "AVX-512"))
            if values.get(key) == "1"
        )
    performance = apple.performance_cores if apple else physical
    return CPUInfo(
        model=values.get("machdep.cpu.brand_string", "") or "unknown CPU",
        physical_cores=physical,
        performance_cores=performance,
        efficiency_cores=max(physical - performance, 0),
        logical_cores=logical,
        flags=flags,
    )


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def metal_working_set(log: FactLog | None = None) -> int | None:
    """Metal's recommendedMaxWorkingSetSize through PyObjC (pyobjc-framework-Metal).

    None when PyObjC is not installed, there is no Metal device (Rosetta, a VM), or the
    call fails; the failure is noted in `log`. Never raises.
    """
    try:
        import Metal
    except ImportError:
        return None
    try:
        device = Metal.MTLCreateSystemDefaultDevice()
        size = int(device.recommendedMaxWorkingSetSize()) if device is not None else 0
    except Exception as exc:  # noqa: BLE001 - PyObjC raises objc.error & co.; a probe must not
        if log is not None:
            log.note(f"Metal working-set query failed: {exc}")
        return None
    if size <= 0 and log is not None:
        log.note("Metal gave no default device; GPU limit estimated")
    return size if size > 0 else None


def probe_macos(log: FactLog) -> tuple[CPUInfo, AppleSilicon | None, tuple[GPU, ...], int]:
    """CPU, Apple Silicon facts, other GPUs and hw.memsize (0 if unknown). Never raises."""
    result = run_command(["sysctl", *SYSCTL_KEYS], log)
    values = parse_sysctl(result.stdout)  # unknown keys fail the exit code, not the rest
    if values:
        log.source("cpu", "sysctl")
    log_translated(values, log)
    adapters = _display_adapters(log) if values.get("hw.optional.arm64") != "1" else ()
    apple: AppleSilicon | None = None
    if values.get("hw.optional.arm64") == "1":
        cores = _gpu_cores(log)
        metal = metal_working_set(log)
        try:
            apple = apple_from_sysctl(values, cores, metal)
        except (KeyError, ValueError) as exc:
            log.note(f"sysctl did not give Apple Silicon facts ({exc})")
        else:
            log.source("apple", "sysctl")
            log.source("apple.gpu_limit", apple.gpu_limit_source)
    gpus = tuple(
        GPU(a.vendor, a.name, a.vram_bytes, None, "", "", "system_profiler", i)
        for i, a in enumerate(adapters)
        if a.vram_bytes and a.vendor != "Apple"
    )
    return cpu_from_sysctl(values, apple), apple, gpus, _int(values.get("hw.memsize")) or 0


def log_translated(values: dict[str, str], log: FactLog) -> None:
    """Note Rosetta: an x86-64 Python on Apple Silicon cannot use Metal."""
    if values.get("sysctl.proc_translated") == "1":
        log.note("Python runs under Rosetta (x86-64): Metal is unavailable; use an arm64 Python")


def _gpu_cores(log: FactLog) -> int | None:
    cores = parse_ioreg_gpu_cores(
        run_command(["ioreg", "-rc", "AGXAccelerator", "-d", "1"], log).stdout
    )
    if cores is not None:
        log.source("apple.gpu_cores", "ioreg AGXAccelerator gpu-core-count")
        return cores
    for adapter in _display_adapters(log):
        if adapter.vendor == "Apple" and adapter.cores:
            log.source("apple.gpu_cores", "system_profiler SPDisplaysDataType")
            return adapter.cores
    log.note("GPU core count unknown (ioreg and system_profiler gave none)")
    return None


def _display_adapters(log: FactLog) -> tuple[DisplayAdapter, ...]:
    args = ["system_profiler", "SPDisplaysDataType", "-json"]
    result = run_command(args, log, timeout_s=SYSTEM_PROFILER_TIMEOUT_S)
    if not result.ok:
        return ()
    try:
        return parse_system_profiler_displays(result.stdout)
    except ValueError as exc:
        log.note(f"system_profiler output not understood: {exc}")
        return ()
