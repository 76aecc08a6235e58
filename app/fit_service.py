"""Fit verdicts for files: a local GGUF, or a remote one by its header alone.

Where the llama.cpp library is installed, the KV cache, compute and output buffers come from
llama.cpp's own dry run (`runtimes.llamacpp.dryrun`) of the file itself, or of a sparse copy
holding only a remote file's real header (reference/fit.md §2.8); the formulas of
`app.fit_memory` serve where it is not, or when the dry run times out. These functions never
raise: a file that cannot be judged gets an "unknown" verdict that says why.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from pathlib import Path

from app.fit import fit_shape, machine_budget
from app.fit_memory import Measured, pad_cells
from app.fit_types import FitRequest, FitVerdict, unknown_verdict
from app.hardware import HardwareProfile
from app.model_shape import ModelShape
from app.speed import Calibration
from runtimes.errors import WorkbenchError
from runtimes.gguf_header import GGUFHeader

log = logging.getLogger(__name__)


def installed_backend() -> str:
    """The installed llama.cpp build: "Metal", "CUDA" or "CPU" (also without llama.cpp)."""
    from runtimes.llamacpp import wheel_backend

    return str(wheel_backend())


def llama_cpp_installed() -> bool:
    """Whether llama-cpp-python can be imported (found, not imported)."""
    from runtimes.llamacpp.system import llama_cpp_lib_dir

    return llama_cpp_lib_dir() is not None


def fit_file(
    path: str | os.PathLike[str],
    profile: HardwareProfile | None,
    request: FitRequest,
    *,
    calibration: Calibration | None = None,
    use_dry_run: bool = True,
    backend: str | None = None,
    loaded_bytes: int = 0,
) -> FitVerdict:
    """The verdict for a local GGUF file (split sets: give the first part)."""
    try:
        header = _read_local(path)
        shape = ModelShape.from_header(header)
    except (WorkbenchError, ValueError, OSError) as exc:
        return unknown_verdict(_reason(exc), request)
    measured = None
    if use_dry_run and llama_cpp_installed():
        stat = os.stat(path)
        try:
            measured = _dry_run_cached(
                os.fspath(path), stat.st_size, stat.st_mtime_ns, *_dry_key(shape, request)
            )
        except WorkbenchError as exc:
            if "did not finish" not in str(exc):
                return unknown_verdict(_reason(exc), request)
            log.warning("dry run timed out for %s; using formulas", path)
    return _judge(shape, header, profile, request, measured, calibration, backend, loaded_bytes)


def fit_url(
    url: str,
    profile: HardwareProfile | None,
    request: FitRequest,
    *,
    calibration: Calibration | None = None,
    use_dry_run: bool = True,
    backend: str | None = None,
    token: str | None = None,
) -> FitVerdict:
    """The verdict for a remote GGUF file, reading only its header (HTTP Range)."""
    from app.gguf_remote import fetch_remote_model, write_sparse_copy

    try:
        remote = fetch_remote_model(url, token=token)
        shape = ModelShape.from_header(remote.header)
    except (WorkbenchError, ValueError, OSError) as exc:
        return unknown_verdict(_reason(exc), request)
    measured = None
    if use_dry_run and llama_cpp_installed() and len(remote.parts) == 1:
        part = remote.parts[0]
        with tempfile.TemporaryDirectory(prefix="workbench-header-") as folder:
            sparse = Path(folder) / Path(part.url.split("?")[0]).name
            try:
                write_sparse_copy(part.prefix, part.file_size, sparse)
                measured = _dry_run(str(sparse), *_dry_key(shape, request))
            except (WorkbenchError, OSError) as exc:
                if "did not finish" not in str(exc):
                    return unknown_verdict(_reason(exc), request)
    return _judge(shape, remote.header, profile, request, measured, calibration, backend, 0)


def _judge(
    shape: ModelShape,
    header: GGUFHeader,
    profile: HardwareProfile | None,
    request: FitRequest,
    measured: Measured | None,
    calibration: Calibration | None,
    backend: str | None,
    loaded_bytes: int,
) -> FitVerdict:
    backend = backend or installed_backend()
    budget = machine_budget(profile, backend, loaded_bytes)
    key = f"{Path(header.source).name}|{header.file_size}"
    return fit_shape(
        shape,
        budget,
        request,
        profile=profile,
        measured=measured,
        calibration=calibration,
        file_key=key,
    )


def _read_local(path: str | os.PathLike[str]) -> GGUFHeader:
    """The header of a local model; a split model's parts are read and merged."""
    from app.gguf_remote import read_model_header

    return read_model_header(path)


def _dry_key(shape: ModelShape, request: FitRequest) -> tuple[int, str, bool, int, bool]:
    n_ctx = request.n_ctx or shape.n_ctx_train or 4096
    return (
        pad_cells(n_ctx),
        request.kv_cache_type,
        request.flash_attn,
        request.n_ubatch,
        request.swa_full,
    )


@functools.lru_cache(maxsize=256)
def _dry_run_cached(
    path: str,
    size: int,
    mtime_ns: int,
    n_ctx: int,
    kv_type: str,
    flash_attn: bool,
    n_ubatch: int,
    swa_full: bool,
) -> Measured:
    """A dry run remembered for the file's path, size and modification time."""
    return _dry_run(path, n_ctx, kv_type, flash_attn, n_ubatch, swa_full)


def _dry_run(
    path: str, n_ctx: int, kv_type: str, flash_attn: bool, n_ubatch: int, swa_full: bool
) -> Measured:
    from runtimes.llamacpp.dryrun import dry_run

    report = dry_run(
        path,
        n_ctx,
        kv_cache_type=kv_type,
        flash_attn=flash_attn or kv_type != "f16",
        n_ubatch=n_ubatch,
        n_batch=max(n_ubatch, 512),
        swa_full=swa_full,
    )
    return Measured(report.kv_bytes, report.compute_bytes, report.output_bytes)


def _reason(exc: BaseException) -> str:
    message = getattr(exc, "message", "") or str(exc)
    return str(message).strip().rstrip(".")
