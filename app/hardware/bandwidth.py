"""Peak memory bandwidth per device: Apple chip and NVIDIA card tables, and NVML arithmetic."""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.hardware.profile import GPU, AppleSilicon, FactLog, MemoryBandwidth

GB = 1_000_000_000  # vendors quote bandwidth in decimal GB/s

APPLE_SPEC = "Apple spec pages (reference/fit.md §4.4)"

# (generation, tier) -> variants as (most GPU cores of the variant or None for "the rest",
# GB/s, source). Variants are ordered slowest first: with an unknown core count the slowest
# is assumed, so a speed estimate errs low rather than high.
_APPLE: dict[tuple[str, str], tuple[tuple[int | None, float, str], ...]] = {
    ("M1", ""): (
        (None, 68, "LPDDR4X-4266 x 128 bit; Apple publishes no figure (reference/fit.md §4.4)"),
    ),
    ("M1", "Pro"): ((None, 200, APPLE_SPEC),),
    ("M1", "Max"): ((None, 400, APPLE_SPEC),),
    ("M1", "Ultra"): ((None, 800, APPLE_SPEC),),
    ("M2", ""): ((None, 100, APPLE_SPEC),),
    ("M2", "Pro"): ((None, 200, APPLE_SPEC),),
    ("M2", "Max"): ((None, 400, APPLE_SPEC),),
    ("M2", "Ultra"): ((None, 800, APPLE_SPEC),),
    ("M3", ""): ((None, 100, APPLE_SPEC),),
    ("M3", "Pro"): ((None, 150, APPLE_SPEC),),
    ("M3", "Max"): (
        (30, 300, f"{APPLE_SPEC}: M3 Max with 30-core GPU"),
        (None, 400, f"{APPLE_SPEC}: M3 Max with 40-core GPU"),
    ),
    ("M3", "Ultra"): ((None, 819, "Apple Mac Studio 2025 announcement (reference/fit.md §4.4)"),),
    ("M4", ""): ((None, 120, "Apple newsroom 2024-10-30 (reference/fit.md §4.4)"),),
    ("M4", "Pro"): ((None, 273, "Apple newsroom 2024-10-30 (reference/fit.md §4.4)"),),
    ("M4", "Max"): (
        (32, 410, "Apple Mac Studio 2025 announcement: M4 Max with 32-core GPU"),
        (None, 546, "Apple newsroom 2024-10-30: M4 Max with 40-core GPU"),
    ),
    ("M5", "Max"): (
        (None, 614, "secondary summary of llama.cpp discussion #4167 (reference/fit.md §4.4)"),
    ),
}

_CHIP = re.compile(r"^Apple (M\d+)(?: (Pro|Max|Ultra))?$")


def apple_bandwidth(chip: str, gpu_cores: int | None) -> MemoryBandwidth | None:
    """The unified-memory bandwidth of an Apple chip, by name and GPU core count.

    Args:
        chip: the brand string, e.g. "Apple M4 Max".
        gpu_cores: GPU cores; picks the variant where one tier has two (M3 Max, M4 Max).
            When None there, the slower variant is assumed and the source says so.

    Returns:
        The figure for device "apple-gpu", or None for a chip the table does not know.
    """
    match = _CHIP.match(chip.strip())
    if not match:
        return None
    variants = _APPLE.get((match.group(1), match.group(2) or ""))
    if not variants:
        return None
    if gpu_cores is None:
        _, gb_per_s, source = variants[0]
        if len(variants) > 1:
            source += " (GPU core count unknown: the slower variant assumed)"
        return MemoryBandwidth("apple-gpu", int(gb_per_s * GB), source)
    for most_cores, gb_per_s, source in variants:
        if most_cores is None or gpu_cores <= most_cores:
            return MemoryBandwidth("apple-gpu", int(gb_per_s * GB), source)
    return None  # unreachable: every table entry ends with a catch-all variant


@dataclass(frozen=True, slots=True)
class _CardRule:
    """A vendor figure for NVIDIA cards whose normalized name matches `pattern`."""

    pattern: str
    gb_per_s: float
    source: str
    max_vram_gib: float | None = None  # the rule applies only up to this much VRAM


FIT = "vendor spec (reference/fit.md §5.2)"
GEFORCE = "NVIDIA GeForce spec page (memory speed x bus width)"

# First match wins: specific names before the names they contain.
_NVIDIA: tuple[_CardRule, ...] = (
    _CardRule(r"rtx 3060(?! ti)", 240, f"{FIT}: 8 GB variant", max_vram_gib=10),
    _CardRule(r"rtx 3060(?! ti)", 360, FIT),
    _CardRule(r"rtx 3070(?! ti)", 448, f"{GEFORCE}: 14 Gbps x 256 bit"),
    _CardRule(r"rtx 3080(?! ti)", 760, f"{GEFORCE}: 10 GB, 19 Gbps x 320 bit", max_vram_gib=11),
    _CardRule(r"rtx 3080(?! ti)", 912, f"{GEFORCE}: 12 GB, 19 Gbps x 384 bit"),
    _CardRule(r"rtx 3090 ti", 1008, f"{GEFORCE}: 21 Gbps x 384 bit"),
    _CardRule(r"rtx 3090", 936, FIT),
    _CardRule(r"rtx 4060 ti", 288, f"{GEFORCE}: 18 Gbps x 128 bit"),
    _CardRule(r"rtx 4060", 272, f"{GEFORCE}: 17 Gbps x 128 bit"),
    _CardRule(r"rtx 4070 ti super", 672, f"{GEFORCE}: 21 Gbps x 256 bit"),
    _CardRule(r"rtx 4070", 504, FIT),  # 4070, 4070 Ti and 4070 Super: 21 Gbps x 192 bit
    _CardRule(r"rtx 4080 super", 736, f"{GEFORCE}: 23 Gbps x 256 bit"),
    _CardRule(r"rtx 4080", 716.8, f"{GEFORCE}: 22.4 Gbps x 256 bit"),
    _CardRule(r"rtx 4090", 1008, FIT),
    _CardRule(r"rtx 5070 ti", 896, f"{GEFORCE}: 28 Gbps x 256 bit"),
    _CardRule(r"rtx 5070", 672, f"{GEFORCE}: 28 Gbps x 192 bit"),
    _CardRule(r"rtx 5080", 960, f"{GEFORCE}: 30 Gbps x 256 bit"),
    _CardRule(r"rtx 5090", 1792, FIT),
    _CardRule(r"rtx 2080 ti", 616, f"{GEFORCE}: 14 Gbps x 352 bit"),
    _CardRule(r"rtx 2080 super", 496, f"{GEFORCE}: 15.5 Gbps x 256 bit"),
    _CardRule(r"rtx 2080", 448, f"{GEFORCE}: 14 Gbps x 256 bit"),
    _CardRule(r"titan v\b", 652.8, "NVIDIA TITAN V spec: 1.7 Gbps HBM2 x 3072 bit"),
    _CardRule(r"rtx a6000", 768, "NVIDIA RTX A6000 datasheet"),
    _CardRule(r"rtx 6000 ada", 960, "NVIDIA RTX 6000 Ada datasheet"),
    _CardRule(r"\bt4\b", 320, FIT),
    _CardRule(r"\bl4\b", 300, FIT),
    _CardRule(r"\bl40s?\b", 864, "NVIDIA L40 / L40S datasheet"),
    _CardRule(r"\ba10\b", 600, "NVIDIA A10 datasheet"),
    _CardRule(r"\bv100\b", 900, "NVIDIA V100 datasheet (PCIe and SXM2)"),
    _CardRule(r"\ba100\b", 1555, f"{FIT}: A100 40 GB", max_vram_gib=48),
    _CardRule(r"\ba100\b.*\bpcie\b|\bpcie\b.*\ba100\b", 1935, f"{FIT}: A100 80 GB PCIe"),
    _CardRule(r"\ba100\b", 2039, f"{FIT}: A100 80 GB SXM"),
    _CardRule(r"\bh100\b.*\bnvl\b", 3900, "NVIDIA H100 datasheet: H100 NVL"),
    _CardRule(r"\bh100\b.*\bpcie\b", 2000, f"{FIT}: H100 PCIe"),
    _CardRule(r"\bh100\b", 3350, f"{FIT}: H100 SXM"),
    _CardRule(r"\bh200\b", 4800, "NVIDIA H200 datasheet: 4.8 TB/s (SXM and NVL)"),
)

_MOBILE = ("laptop", "mobile", "max-q")  # laptop parts share names but not memory clocks


def normalize_card_name(name: str) -> str:
    """Lower case, without "NVIDIA"/"GeForce"/"Tesla", dashes and underscores as spaces."""
    text = re.sub(r"[-_]", " ", name.lower())
    text = re.sub(r"\b(nvidia|geforce|tesla)\b", " ", text)
    return " ".join(text.split())


def nvidia_table_bandwidth(name: str, vram_bytes: int) -> tuple[int, str] | None:
    """A card's vendor-specified bandwidth (bytes/s) and its source, by name and VRAM size.

    Laptop GPUs (names with "Laptop", "Mobile", "Max-Q") get None: their memory runs slower
    than the desktop card of the same name.
    """
    if any(word in name.lower() for word in _MOBILE):
        return None
    text = normalize_card_name(name)
    vram_gib = vram_bytes / (1 << 30)
    for rule in _NVIDIA:
        if rule.max_vram_gib is not None and vram_gib > rule.max_vram_gib:
            continue
        if re.search(rule.pattern, text):
            return int(rule.gb_per_s * GB), rule.source
    return None


def nvml_bandwidth(max_memory_clock_mhz: int, bus_width_bits: int) -> int:
    """Peak bandwidth from NVML's figures: 2 x memory clock x bus width / 8 (bytes/s).

    NVML reports half the effective data rate as the memory clock (RTX 4090: 10501 MHz at
    384 bit gives 1008 GB/s, the vendor figure; reference/fit.md §5.1).
    """
    return 2 * max_memory_clock_mhz * 1_000_000 * bus_width_bits // 8


def gpu_bandwidth(gpu: GPU) -> MemoryBandwidth | None:
    """An NVIDIA GPU's bandwidth: NVML arithmetic when NVML gave clock and bus width (it
    describes this very board), else the vendor table by name; None when neither knows it."""
    device = f"gpu:{gpu.index}"
    clock, bits = gpu.max_memory_clock_mhz, gpu.memory_bus_width_bits
    if clock and bits:
        source = f"NVML: 2 x {clock} MHz x {bits} bit / 8"
        return MemoryBandwidth(device, nvml_bandwidth(clock, bits), source)
    found = nvidia_table_bandwidth(gpu.name, gpu.memory_total_bytes)
    if found is None:
        return None
    return MemoryBandwidth(device, found[0], f"{found[1]} ({gpu.name})")


def machine_bandwidth(
    apple: AppleSilicon | None, gpus: tuple[GPU, ...], log: FactLog
) -> tuple[MemoryBandwidth, ...]:
    """Bandwidth of every memory a model could live in, noting what stays unknown.

    System RAM gets no entry: DRAM speed and channel count need root (dmidecode) on Linux,
    so the estimator falls back to a calibrated or assumed figure.
    """
    found: list[MemoryBandwidth] = []
    if apple is not None:
        figure = apple_bandwidth(apple.chip, apple.gpu_cores)
        if figure is None:
            log.note(f"memory bandwidth of {apple.chip} unknown (not in the chip table)")
        else:
            found.append(figure)
    for gpu in gpus:
        if not gpu.usable_by_llama_cpp:
            continue
        figure = gpu_bandwidth(gpu)
        if figure is None:
            log.note(f"memory bandwidth of {gpu.name} unknown (no NVML clocks, not in the table)")
        else:
            found.append(figure)
    for figure in found:
        log.source(f"bandwidth.{figure.device}", figure.source)
    log.source("bandwidth.cpu", "unknown")
    log.note("system RAM bandwidth unknown: DRAM speed cannot be read without root")
    return tuple(found)
