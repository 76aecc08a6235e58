"""What the installed llama.cpp can run on, how many threads to use, and load-log parsing."""

from __future__ import annotations

import ctypes
import functools
import logging
import re
import subprocess
import sys
from pathlib import Path

import psutil

_log = logging.getLogger(__name__)
_OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
_GGML_LIB_NAMES = ("libggml.so", "libggml.dylib", "ggml.dll", "libggml.dll")
_GPU_REGISTRY_NAMES = {"CUDA": "CUDA", "METAL": "Metal", "MTL": "Metal", "VULKAN": "Vulkan"}


@functools.cache
def wheel_backend() -> str:
    """The backend the installed llama-cpp-python was built with: "Metal", "CUDA" or "CPU".

    Other GPU builds report their ggml registry name (e.g. "Vulkan"). Loads the llama.cpp
    library but no model. Cached: the answer cannot change while the process runs.
    """
    import llama_cpp

    if not llama_cpp.llama_supports_gpu_offload():
        return "CPU"
    names = _ggml_registry_names(Path(llama_cpp.__file__).parent / "lib")
    for name in names:
        known = _GPU_REGISTRY_NAMES.get(name.upper())
        if known is not None:
            return known
    gpu = [n for n in names if n.upper() not in ("CPU", "BLAS", "RPC")]
    if gpu:
        return gpu[0]
    return "Metal" if sys.platform == "darwin" else "CUDA"


def _ggml_registry_names(lib_dir: Path) -> list[str]:
    """Names of ggml's registered backends ("CPU", "CUDA", "Metal", …); [] if unreadable.

    An empty list here is not a failure to hide: the caller falls back on the platform.
    """
    for name in _GGML_LIB_NAMES:
        path = lib_dir / name
        if not path.exists():
            continue
        try:
            lib = ctypes.CDLL(str(path))
            lib.ggml_backend_reg_count.restype = ctypes.c_size_t
            lib.ggml_backend_reg_get.restype = ctypes.c_void_p
            lib.ggml_backend_reg_get.argtypes = [ctypes.c_size_t]
            lib.ggml_backend_reg_name.restype = ctypes.c_char_p
            lib.ggml_backend_reg_name.argtypes = [ctypes.c_void_p]
            count = int(lib.ggml_backend_reg_count())
            raw = [lib.ggml_backend_reg_name(lib.ggml_backend_reg_get(i)) for i in range(count)]
        except (OSError, AttributeError) as exc:
            _log.debug("cannot read ggml backend registry from %s: %s", path, exc)
            continue
        return [r.decode("utf-8", "replace") for r in raw if isinstance(r, bytes)]
    return []


def default_threads() -> int:
    """Decode threads: the physical performance cores (at least 1).

    On Apple Silicon that is `hw.perflevel0.physicalcpu` (efficiency cores slow decoding
    down); elsewhere the physical core count.
    """
    if sys.platform == "darwin":
        perf = _sysctl_int("hw.perflevel0.physicalcpu")
        if perf is not None and perf > 0:
            return perf
    physical = psutil.cpu_count(logical=False) or psutil.cpu_count(logical=True) or 1
    return max(1, physical)


def _sysctl_int(name: str) -> int | None:
    """An integer sysctl value, or None where this Mac has no such key."""
    try:
        out = subprocess.run(
            ["sysctl", "-n", name], capture_output=True, text=True, timeout=2, check=True
        ).stdout
        return int(out.strip())
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def parse_offloaded(line: str) -> tuple[int, int] | None:
    """(offloaded, total) from llama.cpp's "offloaded N/M layers to GPU" line, else None."""
    match = _OFFLOADED.search(line)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))
