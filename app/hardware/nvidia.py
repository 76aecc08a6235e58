"""NVIDIA GPUs: NVML through the optional `pynvml` module, else the `nvidia-smi` CSV query."""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Sequence
from types import ModuleType

from app.hardware.commands import first_line, run_command
from app.hardware.profile import GPU, MIB, FactLog

SMI_FIELDS: tuple[str, ...] = (
    "index",
    "name",
    "memory.total",
    "memory.free",
    "driver_version",
    "compute_cap",
)
"""Queried columns; `compute_cap` needs driver 510+ (older ones reject the whole query)."""


class NvmlUnavailable(Exception):
    """NVML cannot be used here (module missing, no driver); the reason is the message."""


def smi_command(fields: Sequence[str] = SMI_FIELDS) -> list[str]:
    """The nvidia-smi command line for these columns (MiB, no header, no units)."""
    return ["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"]


def parse_nvidia_smi_csv(text: str, fields: Sequence[str] = SMI_FIELDS) -> tuple[GPU, ...]:
    """Parse `nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits` output.

    Memory columns are MiB. "[N/A]" / "[Not Supported]" values become unknown (None or "").
    Rows with fewer columns than `fields`, or without a total memory, are skipped.
    """
    gpus: list[GPU] = []
    for position, row in enumerate(csv.reader(io.StringIO(text), skipinitialspace=True)):
        if len(row) < len(fields):
            continue
        values = {name: _clean(cell) for name, cell in zip(fields, row, strict=False)}
        total = _mib(values.get("memory.total", ""))
        if total is None:
            continue
        index = _int(values.get("index", ""))
        gpus.append(
            GPU(
                vendor="NVIDIA",
                name=values.get("name", "") or "NVIDIA GPU",
                memory_total_bytes=total,
                memory_free_bytes=_mib(values.get("memory.free", "")),
                driver=values.get("driver_version", ""),
                compute_capability=values.get("compute_cap", ""),
                source="nvidia-smi",
                index=position if index is None else index,
            )
        )
    return tuple(gpus)


def _clean(cell: str) -> str:
    value = cell.strip()
    return "" if value.startswith("[") or value in ("N/A", "") else value


def _int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def _mib(value: str) -> int | None:
    try:
        return int(float(value) * MIB)
    except ValueError:
        return None


def probe_nvidia_smi(log: FactLog) -> tuple[GPU, ...]:
    """GPUs from nvidia-smi; () with a note when it is missing or fails. Never raises."""
    fields: Sequence[str] = SMI_FIELDS
    result = run_command(smi_command(fields), log)
    if not result.ok and "compute_cap" in result.stdout + result.stderr:
        # Drivers before 510 reject the unknown field; ask again without it.
        fields = tuple(f for f in SMI_FIELDS if f != "compute_cap")
        result = run_command(smi_command(fields), log)
    if not result.ok:
        if result.returncode >= 0:
            reason = first_line(result.stdout + "\n" + result.stderr) or "no output"
            log.note(f"nvidia-smi failed (exit {result.returncode}): {reason}")
        return ()
    gpus = parse_nvidia_smi_csv(result.stdout, fields)
    if gpus:
        log.source("gpus", "nvidia-smi --query-gpu")
    return gpus


def nvml_gpus(nvml: ModuleType) -> tuple[GPU, ...]:
    """GPUs from NVML through an imported `pynvml` module (nvidia-ml-py).

    Raises:
        NvmlUnavailable: NVML failed to initialize or to answer.
    """
    error_type: type[BaseException] = getattr(nvml, "NVMLError", OSError)
    try:
        nvml.nvmlInit()
    except (error_type, OSError) as exc:
        raise NvmlUnavailable(f"NVML could not start: {exc}") from exc
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        gpus = []
        for index in range(int(nvml.nvmlDeviceGetCount())):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
                capability = f"{major}.{minor}"
            except error_type:
                capability = ""
            bus_bits, clock_mhz = nvml_memory_bus(nvml, handle, error_type)
            gpus.append(
                GPU(
                    vendor="NVIDIA",
                    name=_text(nvml.nvmlDeviceGetName(handle)),
                    memory_total_bytes=int(memory.total),
                    memory_free_bytes=int(memory.free),
                    driver=driver,
                    compute_capability=capability,
                    source="nvml",
                    index=index,
                    memory_bus_width_bits=bus_bits,
                    max_memory_clock_mhz=clock_mhz,
                )
            )
        return tuple(gpus)
    except (error_type, OSError) as exc:
        raise NvmlUnavailable(f"NVML query failed: {exc}") from exc
    finally:
        # Shutting down can fail when the driver went away mid-query; nothing to undo then.
        with contextlib.suppress(error_type, OSError):
            nvml.nvmlShutdown()


def nvml_memory_bus(
    nvml: ModuleType, handle: object, error_type: type[BaseException]
) -> tuple[int | None, int | None]:
    """Memory bus width (bits) and maximum memory clock (MHz) of one device, each None when
    this binding lacks the call (old nvidia-ml-py) or the device does not report it."""
    bus_bits = _nvml_int(nvml, "nvmlDeviceGetMemoryBusWidth", error_type, handle)
    clock_type = getattr(nvml, "NVML_CLOCK_MEM", 2)  # 2 in nvml.h's nvmlClockType_t
    clock_mhz = _nvml_int(nvml, "nvmlDeviceGetMaxClockInfo", error_type, handle, clock_type)
    return bus_bits, clock_mhz


def _nvml_int(
    nvml: ModuleType, function: str, error_type: type[BaseException], *args: object
) -> int | None:
    call = getattr(nvml, function, None)
    if call is None:
        return None
    try:
        value = int(call(*args))
    except (error_type, TypeError, ValueError):
        return None
    return value if value > 0 else None


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def probe_nvidia(log: FactLog) -> tuple[GPU, ...]:
    """NVIDIA GPUs: NVML when `pynvml` imports and works, else nvidia-smi. Never raises."""
    try:
        import pynvml
    except ImportError:
        log.note("pynvml (nvidia-ml-py) not installed; asked nvidia-smi")
    else:
        try:
            gpus = nvml_gpus(pynvml)
        except NvmlUnavailable as exc:
            log.note(f"{exc}; asked nvidia-smi")
        else:
            log.source("gpus", "NVML (pynvml)")
            return gpus
    return probe_nvidia_smi(log)
