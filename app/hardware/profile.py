"""The hardware profile: frozen facts about OS, CPU, memory, disk and GPUs, with their sources."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Literal

GIB = 1 << 30
MIB = 1 << 20

GPUSource = Literal["nvml", "nvidia-smi", "system_profiler", "sysfs"]
"""Which tool reported a GPU; "sysfs" GPUs (AMD/Intel on Linux) are listed for information only."""

BandwidthDevice = str
"""A memory the bandwidth belongs to: "gpu:<index>" (NVIDIA), "apple-gpu" or "cpu"."""


@dataclass(frozen=True, slots=True)
class OSInfo:
    """The operating system.

    Attributes:
        name: "Linux", "macOS", "Windows" or what `platform.system()` says.
        version: kernel release on Linux, product version on macOS ("14.5").
        machine: CPU architecture as the OS names it ("x86_64", "arm64", "aarch64").
        is_wsl: running under Windows Subsystem for Linux.
        is_translated: an x86-64 Python under Rosetta on Apple Silicon (no Metal then).
    """

    name: str
    version: str
    machine: str
    is_wsl: bool = False
    is_translated: bool = False


@dataclass(frozen=True, slots=True)
class CPUInfo:
    """The CPU. Core counts are at least 1.

    Attributes:
        model: marketing name, e.g. "AMD EPYC 7763 64-Core Processor" or "Apple M2 Pro".
        physical_cores: physical cores (all kinds).
        performance_cores: physical performance cores; equals physical_cores on CPUs
            with one kind of core. The thread count to use for llama.cpp.
        efficiency_cores: physical efficiency cores (0 when the CPU has one kind).
        logical_cores: hardware threads.
        flags: the SIMD features that matter for llama.cpp, among "AVX", "AVX2", "FMA",
            "F16C", "AVX-512", "AVX-512-BF16", "AVX-VNNI", "NEON", "SVE".
    """

    model: str
    physical_cores: int
    performance_cores: int
    efficiency_cores: int
    logical_cores: int
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MemoryInfo:
    """System memory in bytes (unified memory on Apple Silicon)."""

    total_bytes: int
    available_bytes: int
    swap_total_bytes: int
    swap_free_bytes: int


@dataclass(frozen=True, slots=True)
class GPU:
    """A discrete or integrated GPU with its own memory figure.

    Attributes:
        vendor: "NVIDIA", "AMD", "Intel", "Apple".
        name: e.g. "NVIDIA GeForce RTX 4090".
        memory_total_bytes: VRAM (for Apple: see `AppleSilicon.gpu_limit_bytes`).
        memory_free_bytes: free VRAM now, or None where the source does not say.
        driver: driver version, "" when unknown.
        compute_capability: CUDA compute capability such as "8.9", "" when unknown.
        source: which tool reported it.
        index: the device index the tool reported.
        memory_bus_width_bits: memory bus width from NVML, None when not reported.
        max_memory_clock_mhz: NVML's maximum memory clock (NVML_CLOCK_MEM), None when not
            reported. With the bus width it gives the bandwidth (app.hardware.bandwidth).
    """

    vendor: str
    name: str
    memory_total_bytes: int
    memory_free_bytes: int | None
    driver: str
    compute_capability: str
    source: GPUSource
    index: int = 0
    memory_bus_width_bits: int | None = None
    max_memory_clock_mhz: int | None = None

    @property
    def usable_by_llama_cpp(self) -> bool:
        """Whether the llama.cpp builds here (CPU, CUDA, Metal) can put layers on it."""
        return self.vendor == "NVIDIA" and self.source in ("nvml", "nvidia-smi")


@dataclass(frozen=True, slots=True)
class MemoryBandwidth:
    """Peak memory bandwidth of one device, with where the figure came from.

    Attributes:
        device: "gpu:<index>" for an NVIDIA GPU, "apple-gpu" for an Apple chip, "cpu".
        bytes_per_second: the peak figure (vendor specification or NVML arithmetic).
        source: where it came from, e.g. "Apple spec: M4 Max 40-core GPU" or
            "NVML: 2 x 10501 MHz x 384 bit / 8".
    """

    device: BandwidthDevice
    bytes_per_second: int
    source: str


@dataclass(frozen=True, slots=True)
class AppleSilicon:
    """Apple M-series facts (reference/fit.md §4).

    Attributes:
        chip: "Apple M2 Pro".
        performance_cores: hw.perflevel0.physicalcpu.
        efficiency_cores: the last perflevel's physicalcpu (0 when only one level).
        gpu_cores: GPU cores (ioreg / system_profiler), None when neither answered.
        unified_memory_bytes: hw.memsize.
        gpu_limit_bytes: how much unified memory the GPU may wire (Metal working set).
        gpu_limit_source: where that came from: "metal", "iogpu.wired_limit_mb",
            or "default-share-estimate".
        wired_limit_mb: the sysctl iogpu.wired_limit_mb value (0 = macOS default),
            None when the key does not exist on this macOS.
    """

    chip: str
    performance_cores: int
    efficiency_cores: int
    gpu_cores: int | None
    unified_memory_bytes: int
    gpu_limit_bytes: int
    gpu_limit_source: str
    wired_limit_mb: int | None


@dataclass(frozen=True, slots=True)
class HardwareProfile:
    """Everything the fit estimator needs to know about this machine.

    Attributes:
        os: the operating system.
        cpu: the CPU.
        memory: RAM and swap.
        models_dir: the folder whose disk was measured ("" when none was given).
        disk_free_bytes: free bytes on that folder's disk; None when no folder was given
            or it could not be measured (see notes).
        gpus: NVIDIA (and on Intel Macs, other) GPUs with their own memory.
        apple: Apple Silicon facts, None on other machines.
        sources: (fact, where it came from) pairs, e.g. ("cpu.model", "/proc/cpuinfo").
        notes: what could not be probed and why (a missing tool is a fact, not an error).
        bandwidth: peak memory bandwidth per device, each with its source; no "cpu" entry
            when DRAM speed could not be learned (it needs root on Linux).
        other_gpus: AMD/Intel GPUs found in sysfs, listed for information only: the llama.cpp
            builds here (CPU, CUDA, Metal) cannot use them, so they never count as GPU memory.
    """

    os: OSInfo
    cpu: CPUInfo
    memory: MemoryInfo
    models_dir: str = ""
    disk_free_bytes: int | None = None
    gpus: tuple[GPU, ...] = ()
    apple: AppleSilicon | None = None
    sources: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()
    bandwidth: tuple[MemoryBandwidth, ...] = ()
    other_gpus: tuple[GPU, ...] = ()

    def source_of(self, fact: str) -> str:
        """Where a fact came from ("" when not recorded)."""
        return dict(self.sources).get(fact, "")

    @property
    def gpu_memory_limit_bytes(self) -> int | None:
        """The GPU memory llama.cpp may use: Apple's GPU limit (Metal working set), else the
        summed VRAM of all NVIDIA GPUs; None without either (AMD/Intel GPUs never count)."""
        if self.apple is not None:
            return self.apple.gpu_limit_bytes
        usable = [g.memory_total_bytes for g in self.gpus if g.usable_by_llama_cpp]
        return sum(usable) if usable else None

    @property
    def gpu_bandwidth_bytes_per_second(self) -> int | None:
        """Bandwidth of the GPU memory a model would live in: the Apple chip's, else the slowest
        NVIDIA GPU's (layers run one after another, so the slowest card paces a split model);
        None when no usable GPU has a known figure."""
        devices = {f"gpu:{g.index}" for g in self.gpus if g.usable_by_llama_cpp}
        if self.apple is not None:
            devices = {"apple-gpu"}
        figures = [b.bytes_per_second for b in self.bandwidth if b.device in devices]
        return min(figures) if figures else None

    @property
    def cpu_bandwidth_bytes_per_second(self) -> int | None:
        """Bandwidth of system RAM as the CPU sees it; None when unknown (the usual case)."""
        return next((b.bytes_per_second for b in self.bandwidth if b.device == "cpu"), None)


@dataclass(slots=True)
class FactLog:
    """Collects sources and notes while probing (mutable; frozen into the profile)."""

    sources: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def source(self, fact: str, where: str) -> None:
        """Record where a fact came from."""
        self.sources[fact] = where

    def note(self, text: str) -> None:
        """Record something that could not be probed, once."""
        if text not in self.notes:
            self.notes.append(text)


def summary_line(profile: HardwareProfile) -> str:
    """One line for the status bar.

    Examples: "AMD EPYC · 2 cores · 23.5 GiB RAM (23.2 free) · no GPU",
    "Apple M2 Pro · 8P+4E cores · 32 GB unified · GPU limit 21.3 GB".
    """
    apple = profile.apple
    if apple is not None:
        # Apple sells memory in binary gigabytes and labels them "GB"; match "About This Mac".
        cores = f"{apple.performance_cores}P+{apple.efficiency_cores}E cores"
        gpu = f" · {apple.gpu_cores}-core GPU" if apple.gpu_cores else ""
        return (
            f"{apple.chip} · {cores}{gpu} · {_gib(apple.unified_memory_bytes)} GB unified"
            f" · GPU limit {apple.gpu_limit_bytes / GIB:.1f} GB"
        )
    cpu = profile.cpu
    cores = f"{cpu.physical_cores} cores"
    if cpu.efficiency_cores:
        cores = f"{cpu.performance_cores}P+{cpu.efficiency_cores}E cores"
    mem = profile.memory
    ram = f"{mem.total_bytes / GIB:.1f} GiB RAM ({mem.available_bytes / GIB:.1f} free)"
    return " · ".join([short_cpu_name(cpu.model), cores, ram, _gpu_part(profile.gpus)])


def _gpu_part(gpus: tuple[GPU, ...]) -> str:
    if not gpus:
        return "no GPU"
    names = {g.name for g in gpus}
    total = sum(g.memory_total_bytes for g in gpus)
    free = [g.memory_free_bytes for g in gpus]
    free_part = "" if None in free else f" ({sum(f or 0 for f in free) / GIB:.1f} free)"
    label = gpus[0].name if len(names) == 1 else " + ".join(sorted(names))
    count = f"{len(gpus)}× " if len(gpus) > 1 and len(names) == 1 else ""
    return f"{count}{label} · {total / GIB:.1f} GiB VRAM{free_part}"


def short_cpu_name(model: str) -> str:
    """Drop trademark marks, clock speed, "CPU" and "N-Core Processor" from a CPU name."""
    text = model.replace("(R)", "").replace("(TM)", "").replace("(tm)", "")
    for marker in (" CPU @", " @ "):
        text = text.split(marker)[0]
    words = [w for w in text.split() if not w.endswith("-Core") and w not in ("CPU", "Processor")]
    return " ".join(words) or model


def _gib(value: int) -> str:
    gib = value / GIB
    return f"{gib:.0f}" if abs(gib - round(gib)) < 0.05 else f"{gib:.1f}"


def as_dict(profile: HardwareProfile) -> dict[str, object]:
    """A JSON-ready dict of the profile: the stable `llm-workbench hw --json` interface.

    Besides every dataclass field (sources as an object, tuples as lists) it has
    `ram_total_bytes`, `ram_available_bytes`, `gpu_memory_limit_bytes` (null when no usable
    GPU), `memory_bandwidth_bytes_per_second` (the GPU's, or null), and on each entry of
    `gpus` / `other_gpus` the keys `vram_total_bytes`, `vram_free_bytes` (null when unknown)
    and `usable_by_llama_cpp`.
    """
    out = _plain(profile)
    assert isinstance(out, dict)
    out["sources"] = dict(profile.sources)
    out["summary"] = summary_line(profile)
    out["ram_total_bytes"] = profile.memory.total_bytes
    out["ram_available_bytes"] = profile.memory.available_bytes
    out["gpu_memory_limit_bytes"] = profile.gpu_memory_limit_bytes
    out["memory_bandwidth_bytes_per_second"] = profile.gpu_bandwidth_bytes_per_second
    out["gpus"] = [_gpu_dict(g) for g in profile.gpus]
    out["other_gpus"] = [_gpu_dict(g) for g in profile.other_gpus]
    return out


def _gpu_dict(gpu: GPU) -> dict[str, object]:
    out = _plain(gpu)
    assert isinstance(out, dict)
    out["vram_total_bytes"] = gpu.memory_total_bytes
    out["vram_free_bytes"] = gpu.memory_free_bytes
    out["usable_by_llama_cpp"] = gpu.usable_by_llama_cpp
    return out


def _plain(value: object) -> object:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
