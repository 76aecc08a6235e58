"""Dry-run a GGUF with llama.cpp (no_alloc) in a subprocess and parse its KV/compute sizes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

KV_LINE = re.compile(r"llama_kv_cache: size = +([\d.]+) MiB \( *(\d+) cells, +(\d+) layers.*")
COMPUTE_LINE = re.compile(r"(\S+) compute buffer size = +([\d.]+) MiB")


@dataclass(frozen=True, slots=True)
class DryRun:
    """What llama.cpp reported while "loading" a file without allocating anything."""

    returncode: int
    model_loaded: bool
    context_created: bool
    kv_lines: tuple[str, ...]
    kv_mib: tuple[float, ...]
    kv_cells: tuple[int, ...]
    kv_layers: tuple[int, ...]
    compute_mib: dict[str, float]
    log: str

    @property
    def ok(self) -> bool:
        """Whether the model and the context were both created."""
        return self.returncode == 0 and self.model_loaded and self.context_created


def dry_run(path: Path, n_ctx: int, *, n_ubatch: int = 512, timeout: float = 120) -> DryRun:
    """Load `path` with no_alloc in a child process (llama.cpp may abort it) and parse the log."""
    cmd = [sys.executable, __file__, str(path), str(n_ctx), str(n_ubatch)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    status: dict[str, bool] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            status = json.loads(line)
    log = proc.stderr
    kv = [m for m in (KV_LINE.search(x) for x in log.splitlines()) if m]
    compute = {m.group(1): float(m.group(2)) for m in COMPUTE_LINE.finditer(log)}
    return DryRun(
        returncode=proc.returncode,
        model_loaded=status.get("model", False),
        context_created=status.get("context", False),
        kv_lines=tuple(m.group(0).strip() for m in kv),
        kv_mib=tuple(float(m.group(1)) for m in kv),
        kv_cells=tuple(int(m.group(2)) for m in kv),
        kv_layers=tuple(int(m.group(3)) for m in kv),
        compute_mib=compute,
        log=log,
    )


def _child(path: str, n_ctx: int, n_ubatch: int) -> None:
    import ctypes

    import llama_cpp

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def _log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        sys.stderr.write(text.decode("utf-8", "replace"))

    llama_cpp.llama_log_set(_log, ctypes.c_void_p())
    llama_cpp.llama_backend_init()
    mp = llama_cpp.llama_model_default_params()
    mp.no_alloc = True
    mp.load_mode = llama_cpp.LLAMA_LOAD_MODE_NONE
    mp.n_gpu_layers = 0
    model = llama_cpp.llama_model_load_from_file(path.encode(), mp)
    status = {"model": bool(model), "context": False}
    if model:
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_ubatch = n_ubatch
        ctx = llama_cpp.llama_init_from_model(model, cp)
        status["context"] = bool(ctx)
    sys.stderr.flush()
    print(json.dumps(status), flush=True)


if __name__ == "__main__":
    _child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
