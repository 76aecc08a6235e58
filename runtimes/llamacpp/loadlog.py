"""What llama.cpp's load log says really happened: offload, flash attention, KV cache, mlock.

The worker's stderr carries llama.cpp's log; the parent feeds it here line by line (on its
stderr reader thread) and reads the facts once the worker's load marker has come by.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtimes.llamacpp.system import parse_offloaded

if TYPE_CHECKING:
    from runtimes.llamacpp.options import WorkerLoad

_FLASH_ATTN = re.compile(r"llama_context: flash_attn\s*=\s*(\w+)")
_KV_SIZE = re.compile(
    r"llama_kv_cache: size =\s*([\d.]+) MiB .*K \((\w+)\):.*V \((\w+)\)",
)
_MLOCK_FAILED = re.compile(r"failed to mlock (\d+)-byte buffer.*?:\s*(.+)$")
_LOAD_MODE = re.compile(r"\(load_mode = ([\w+]+)\)")
MIB = 1024**2


@dataclass(frozen=True, slots=True)
class LoadFacts:
    """Facts of one load, as llama.cpp logged them; a field stays at its default when the
    log did not mention it (an older llama.cpp, or a load that failed before that point).

    Attributes:
        offloaded: (layers on the GPU, layers counted) from "offloaded N/M layers to GPU".
        flash_attn: whether the context uses flash attention (None: not logged).
        kv_types: (K type, V type), e.g. ("q8_0", "q8_0") (None: not logged).
        kv_bytes: KV cache size, summed over caches (Gemma 3 has a global and an SWA one).
        mlock_error: why locking the weights in RAM failed ("" when it did not fail).
        load_mode: how weights were loaded: "mmap", "mmap+mlock", "none" ("" not logged).
    """

    offloaded: tuple[int, int] | None = None
    flash_attn: bool | None = None
    kv_types: tuple[str, str] | None = None
    kv_bytes: int = 0
    mlock_error: str = ""
    load_mode: str = ""


class LoadLogReader:
    """Collects `LoadFacts` from log lines. One writer thread; readers see whole snapshots."""

    def __init__(self) -> None:
        self._facts = LoadFacts()

    @property
    def facts(self) -> LoadFacts:
        """What the lines fed so far say."""
        return self._facts

    def feed(self, line: str) -> None:
        """Take one log line (without its newline)."""
        facts = self._facts
        changes: dict[str, object] = {}
        offloaded = parse_offloaded(line)
        if offloaded is not None:
            changes["offloaded"] = offloaded
        elif match := _FLASH_ATTN.search(line):
            changes["flash_attn"] = match.group(1) == "enabled"
        elif match := _KV_SIZE.search(line):
            changes["kv_types"] = (match.group(2), match.group(3))
            changes["kv_bytes"] = facts.kv_bytes + round(float(match.group(1)) * MIB)
        elif (match := _MLOCK_FAILED.search(line)) and not facts.mlock_error:
            changes["mlock_error"] = match.group(2).strip()
        elif match := _LOAD_MODE.search(line):
            changes["load_mode"] = match.group(1)
        if changes:
            self._facts = dataclasses.replace(facts, **changes)  # type: ignore[arg-type]


def load_notices(facts: LoadFacts, request: WorkerLoad) -> list[str]:
    """Sentences for the user about options that differ from the defaults, as llama.cpp
    really applied them (the request stands in where the log said nothing); [] for a
    default load.

    Example: "Flash attention on · KV cache q8_0 (23.9 MiB)."
    """
    flash = facts.flash_attn if facts.flash_attn is not None else request.flash_attn
    k_type, v_type = facts.kv_types or (request.kv_cache_type, request.kv_cache_type)
    mmap = facts.load_mode.startswith("mmap") if facts.load_mode else request.use_mmap
    parts: list[str] = []
    problems: list[str] = []
    if flash:
        why = f" (turned on: a {request.kv_cache_type} KV cache needs it)"
        parts.append("flash attention on" + (why if request.flash_attn_forced else ""))
    elif request.flash_attn:
        problems.append("Flash attention was asked for, but llama.cpp turned it off here.")
    if (k_type, v_type) != ("f16", "f16"):
        label = k_type if k_type == v_type else f"K {k_type} / V {v_type}"
        size = f" ({facts.kv_bytes / MIB:.1f} MiB)" if facts.kv_bytes else ""
        parts.append(f"KV cache {label}{size}")
    if not mmap:
        parts.append("weights read into RAM (mmap off)")
    if request.use_mlock and facts.mlock_error:
        problems.append(
            f"Locking the model in RAM (mlock) failed ({facts.mlock_error}), so it may be "
            "swapped out. Raise the locked-memory limit (ulimit -l) or turn mlock off."
        )
    elif request.use_mlock:
        parts.append("locked in RAM (mlock)")
    summary = " · ".join(parts)
    head = [summary[0].upper() + summary[1:] + "."] if summary else []
    return head + problems
