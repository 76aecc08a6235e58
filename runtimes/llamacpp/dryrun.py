"""Ask llama.cpp itself what a load would allocate, without loading a weight (a dry run).

`dry_run(path, ...)` starts `runtimes.llamacpp.dryrun_child` (llama.cpp with `no_alloc`,
reference/fit.md §2.8) and parses the sizes it logged: the KV cache (every cache: Gemma 3 has
a global and a sliding-window one), the compute buffer of each device and the output buffer.
Weights are not in the log under `no_alloc` (their buffers stay empty); they are the tensor
sizes of the header. The installed build decides the devices: a CPU build reports everything
on "CPU", a Metal or CUDA build reports the GPU's share for the asked-for `n_gpu_layers`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from runtimes.errors import ExternalFailure
from runtimes.llamacpp.launch import DRYRUN_MODULE, child_command
from runtimes.llamacpp.process import package_root, worker_env

MIB = 1 << 20
DRY_RUN_TIMEOUT_S = 120.0
"""A 671B header with a 129k-token vocabulary takes a few seconds; this bounds a hang."""

_KV_LINE = re.compile(
    r"llama_kv_cache: size =\s*([\d.]+) MiB \(\s*(\d+) cells,\s*(\d+) layers,\s*(\d+)/(\d+) seqs\)"
    r"(?:, K \((\w+)\):\s*([\d.]+) MiB)?(?:, V \((\w+)\):\s*([\d.]+) MiB)?"
)
_COMPUTE_LINE = re.compile(r"\s(\S+) compute buffer size =\s*([\d.]+) MiB")
_OUTPUT_LINE = re.compile(r"\s(\S+)\s+output buffer size =\s*([\d.]+) MiB")
_OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
_FLASH_ATTN = re.compile(r"llama_context: flash_attn\s*=\s*(\w+)")


class DryRunFailed(ExternalFailure):
    """llama.cpp could not dry-run the model; `details` holds the end of its log."""


@dataclass(frozen=True, slots=True)
class KVCacheLine:
    """One KV cache as llama.cpp logged it.

    Attributes:
        mib: total size in MiB, as printed (two decimals).
        cells: cells (context slots) allocated.
        layers: layers that have a cache of this kind.
        k_mib: K part in MiB (0 when not printed).
        v_mib: V part in MiB (0 when the cache has no V: MLA stores only the latent K).
    """

    mib: float
    cells: int
    layers: int
    k_mib: float
    v_mib: float


@dataclass(frozen=True, slots=True)
class DryRunReport:
    """What llama.cpp would allocate for one load.

    Attributes:
        kv_caches: each KV cache (one, or global + sliding-window).
        compute_mib: compute buffer per device name ("CPU", "CUDA0", "CUDA_Host", "MTL0").
        output_mib: output buffer per device name.
        offloaded: (layers on the GPU, layers counted) when the log said so.
        flash_attn: "enabled"/"disabled" as logged ("" when not).
        log_tail: the last lines of the log, for details.
    """

    kv_caches: tuple[KVCacheLine, ...]
    compute_mib: dict[str, float]
    output_mib: dict[str, float]
    offloaded: tuple[int, int] | None
    flash_attn: str
    log_tail: str

    @property
    def kv_mib(self) -> float:
        """All KV caches together, in MiB."""
        return sum(c.mib for c in self.kv_caches)

    @property
    def kv_bytes(self) -> int:
        """All KV caches together, in bytes (to the 0.01 MiB llama.cpp prints)."""
        return round(self.kv_mib * MIB)

    @property
    def compute_bytes(self) -> int:
        """All compute buffers together, in bytes."""
        return round(sum(self.compute_mib.values()) * MIB)

    @property
    def output_bytes(self) -> int:
        """All output buffers together, in bytes."""
        return round(sum(self.output_mib.values()) * MIB)


def parse_dry_run_log(log: str) -> DryRunReport:
    """Parse llama.cpp's load log (the same lines a real load prints)."""
    caches = tuple(
        KVCacheLine(
            mib=float(m.group(1)),
            cells=int(m.group(2)),
            layers=int(m.group(3)),
            k_mib=float(m.group(7) or 0),
            v_mib=float(m.group(9) or 0),
        )
        for m in _KV_LINE.finditer(log)
    )
    compute: dict[str, float] = {}
    for m in _COMPUTE_LINE.finditer(log):
        compute[m.group(1)] = float(m.group(2))  # the last reservation is the one kept
    output = {m.group(1): float(m.group(2)) for m in _OUTPUT_LINE.finditer(log)}
    off = _OFFLOADED.search(log)
    fa = _FLASH_ATTN.search(log)
    tail = "\n".join(log.strip().splitlines()[-15:])
    return DryRunReport(
        kv_caches=caches,
        compute_mib=compute,
        output_mib=output,
        offloaded=(int(off.group(1)), int(off.group(2))) if off else None,
        flash_attn=fa.group(1) if fa else "",
        log_tail=tail,
    )


def dry_run(
    path: str | os.PathLike[str],
    n_ctx: int,
    *,
    kv_cache_type: str = "f16",
    flash_attn: bool = False,
    n_gpu_layers: int = 0,
    n_ubatch: int = 512,
    n_batch: int = 512,
    swa_full: bool = True,
    timeout: float = DRY_RUN_TIMEOUT_S,
) -> DryRunReport:
    """Dry-run a load of the GGUF file at `path` in a child process.

    The defaults are llama-cpp-python's (`n_batch` = `n_ubatch` = 512, flash attention off,
    f16 KV cache, `swa_full` true, one sequence).

    Raises:
        DryRunFailed: llama.cpp refused the file or the options, crashed, or timed out;
            `details` carries the end of its log.
    """
    request = {
        "path": os.fspath(path),
        "n_ctx": n_ctx,
        "kv_cache_type": kv_cache_type,
        "flash_attn": flash_attn,
        "n_gpu_layers": n_gpu_layers,
        "n_ubatch": n_ubatch,
        "n_batch": n_batch,
        "swa_full": swa_full,
    }
    name = Path(os.fspath(path)).name
    root = package_root()
    command = child_command(DRYRUN_MODULE, [json.dumps(request)])
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=root,
            env=worker_env(root),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise DryRunFailed(
            f"llama.cpp did not finish sizing {name} within {timeout:.0f} s."
        ) from exc
    except OSError as exc:
        raise DryRunFailed(f"Could not start llama.cpp to size {name}: {exc}") from exc
    return _report_from(done, name)


def _report_from(done: subprocess.CompletedProcess[str], name: str) -> DryRunReport:
    payload: dict[str, object] = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            payload = json.loads(line)
    log = str(payload.get("log", ""))
    if done.returncode != 0 or not payload.get("ok"):
        stage = payload.get("stage", "")
        what = "the model" if stage == "model" else "a context" if stage == "context" else name
        tail = "\n".join((log + done.stderr).strip().splitlines()[-12:])
        reason = _reason(log + done.stderr) or f"exit code {done.returncode}"
        raise DryRunFailed(
            f"llama.cpp could not size {what} ({name}): {reason}.",
            details=tail,
        )
    report = parse_dry_run_log(log)
    if not report.kv_caches and not report.compute_mib:
        raise DryRunFailed(
            f"llama.cpp sized {name} but logged no KV cache or compute buffer.",
            details=report.log_tail,
        )
    return report


def _reason(log: str) -> str:
    """The most telling error line of a failed load ("unknown model architecture: 'x'")."""
    for line in reversed(log.strip().splitlines()):
        lowered = line.lower()
        if "error" in lowered or "failed" in lowered or "unknown" in lowered:
            return line.split(": ", 1)[-1].strip().rstrip(".")
    return ""
