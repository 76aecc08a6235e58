"""What the installed llama.cpp can run on, how many threads to use, and load-log parsing.

`wheel_backend` is asked in the GUI process before every load, so it reads the installed
llama_cpp package's files and never loads llama.cpp there: a library that aborts the whole
process on an assert, and whose GPU backends start driver threads, must stay in the worker
(DESIGN.md, "A llama.cpp model lives in its own worker process"). Inside the worker, where
llama.cpp is loaded anyway, `loaded_backend` asks ggml's backend registry instead.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
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
_GPU_LIBRARIES: tuple[tuple[str, str], ...] = (
    ("cuda", "CUDA"),
    ("metal", "Metal"),
    ("vulkan", "Vulkan"),
    ("hip", "ROCm"),
    ("musa", "MUSA"),
    ("sycl", "SYCL"),
    ("opencl", "OpenCL"),
    ("cann", "CANN"),
)
"""ggml backend library `ggml-<name>` -> the backend's name, most preferred first."""
_LIBRARY_FILE = re.compile(
    r"^(?:lib)?ggml-(?P<name>[a-z]+)(?:-[\w-]+)?(?:\.\d+)*\.(?:so|dylib|dll)(?:\.\d+)*$",
    re.IGNORECASE,
)
"""libggml-cuda.so(.0.25.3), libggml-metal(.0).dylib, ggml-vulkan.dll, libggml-cpu-haswell.so."""


@functools.cache
def wheel_backend() -> str:
    """The backend the installed llama-cpp-python was built with: "Metal", "CUDA" or "CPU".

    Other GPU builds give their backend's name (e.g. "Vulkan"). Decided from the library
    files the package ships, without importing llama_cpp or loading any library, so that it
    is safe in the GUI process. "CPU" when llama_cpp is not installed. Cached: the answer
    cannot change while the process runs.
    """
    lib_dir = llama_cpp_lib_dir()
    return backend_from_lib_dir(lib_dir) if lib_dir is not None else "CPU"


def llama_cpp_lib_dir() -> Path | None:
    """The `lib` folder of the installed llama_cpp package (found, not imported); None if absent."""
    try:
        spec = importlib.util.find_spec("llama_cpp")
    except (ImportError, ValueError):  # a half-imported or broken llama_cpp: nothing to run
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "lib"


def backend_from_lib_dir(lib_dir: Path) -> str:
    """The GPU backend whose ggml library lies in `lib_dir`, else "CPU".

    llama.cpp builds each backend as its own library, `ggml-<name>` (ggml's
    `ggml_add_backend_library`): libggml-cuda.so, libggml-metal.dylib (Metal's shaders are
    embedded in it by llama-cpp-python's macOS build), ggml-vulkan.dll, or, with
    `GGML_BACKEND_DL`, loadable modules of the same names.
    """
    try:
        names = {_library_backend(p.name) for p in lib_dir.iterdir()}
    except OSError as exc:  # no such folder: a llama_cpp without its libraries runs nothing
        _log.debug("cannot list %s: %s", lib_dir, exc)
        return "CPU"
    for library, backend in _GPU_LIBRARIES:
        if library in names:
            return backend
    return "CPU"


def _library_backend(file_name: str) -> str:
    """The backend a file is the library of: "cuda" for "libggml-cuda.so.0", else ""."""
    match = _LIBRARY_FILE.match(file_name)
    return match.group("name").lower() if match else ""


@functools.cache
def loaded_backend() -> str:
    """The backend llama.cpp registered in this process: "Metal", "CUDA", ... or "CPU".

    Loads llama.cpp: call it only in the worker process, after the model is loaded there.
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
    built = wheel_backend()
    if built != "CPU":
        return built
    return "Metal" if sys.platform == "darwin" else "CUDA"


def _ggml_registry_names(lib_dir: Path) -> list[str]:
    """Names of ggml's registered backends ("CPU", "CUDA", "Metal", …); [] if unreadable.

    An empty list here is not a failure to hide: the caller falls back on the library files
    and then on the platform.
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
