"""The closed loop: every real load's measured memory and speed, next to the prediction.

After a llama.cpp load the worker process's resident memory is read (and on NVIDIA its GPU
memory, through NVML, when available); after its first generation the peak resident memory
(Linux `VmHWM`) and the speeds. Rows live in SQLite (`load_measurements`). They feed back into
the estimator (`calibration()`): the effective bandwidth this machine reaches per backend, the
measured speed of each file, so the UI can say which figures are measured.
"""

from __future__ import annotations

import contextlib
import logging
import os
import statistics
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType

import psutil
from sqlalchemy import func, select

from app.errors import DatabaseUnavailable
from app.fit_types import FitRequest, MemoryBreakdown
from app.speed import Calibration
from app.store import Database, LoadMeasurement
from app.store.models import utc_now
from runtimes.base import GenerationStats, LoadOptions

log = logging.getLogger(__name__)
MIN_DECODE_TOKENS = 8
"""A reply shorter than this says little about decode speed; it is not used to calibrate."""


@dataclass(frozen=True, slots=True)
class ProcessMemory:
    """A process's memory now.

    Attributes:
        rss_bytes: resident set size.
        peak_rss_bytes: the high-water mark of the resident set (Linux `VmHWM`); None where
            the OS does not report it.
    """

    rss_bytes: int
    peak_rss_bytes: int | None


def process_memory(pid: int) -> ProcessMemory:
    """Resident and peak resident memory of process `pid`.

    Raises:
        psutil.Error: the process is gone or cannot be read.
    """
    rss = int(psutil.Process(pid).memory_info().rss)
    return ProcessMemory(rss, _vm_hwm(pid))


def gpu_memory_of(pid: int, nvml: ModuleType | None = None) -> int | None:
    """NVIDIA GPU memory process `pid` holds, summed over GPUs (NVML's per-process figure);
    None where NVML is missing or does not list the process (Metal has no such figure)."""
    if nvml is None:
        try:
            import pynvml
        except ImportError:
            return None
        nvml = pynvml
    error_type: type[BaseException] = getattr(nvml, "NVMLError", OSError)
    try:
        nvml.nvmlInit()
    except (error_type, OSError):
        return None
    try:
        total, found = 0, False
        for index in range(int(nvml.nvmlDeviceGetCount())):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            for process in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                used = getattr(process, "usedGpuMemory", None)
                if getattr(process, "pid", None) == pid and used is not None:
                    total, found = total + int(used), True
        return total if found else None
    except (error_type, OSError):
        return None
    finally:
        with contextlib.suppress(error_type, OSError):
            nvml.nvmlShutdown()


def _vm_hwm(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return parse_vm_hwm(text)


def parse_vm_hwm(status: str) -> int | None:
    """`VmHWM:   123456 kB` from /proc/PID/status, in bytes; None when absent."""
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                return int(fields[1]) * 1024
    return None


def model_key(path: str | os.PathLike[str], file_size: int) -> str:
    """The key a model file's measurements go by: its name and size (a moved file keeps it)."""
    return f"{Path(os.fspath(path)).name}|{file_size}"


@dataclass(frozen=True, slots=True)
class Prediction:
    """What the estimator said before a load, stored beside the measurement.

    Attributes:
        memory: the breakdown for the placement the load used (None: not estimated).
        bytes_per_token: weight and KV bytes read per generated token.
        active_parameters: parameters used per token (for prompt-speed calibration).
    """

    memory: MemoryBreakdown | None
    bytes_per_token: int | None
    active_parameters: int | None


class MeasurementStore:
    """Records loads and generations; summarizes them for the estimator.

    Args:
        db: the open history database. Every method may raise `DatabaseUnavailable`.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def record_load(
        self,
        path: str | os.PathLike[str],
        backend: str,
        options: LoadOptions,
        load_seconds: float,
        prediction: Prediction,
        measured: ProcessMemory | None,
        gpu_bytes: int | None = None,
    ) -> int:
        """Store one load; returns the row id for `record_generation`."""
        size = os.stat(path).st_size
        memory = prediction.memory
        row = LoadMeasurement(
            model_key=model_key(path, size),
            path=os.fspath(path),
            file_size=size,
            backend=backend,
            n_ctx=options.n_ctx,
            n_gpu_layers=options.n_gpu_layers,
            kv_cache_type=options.kv_cache_type,
            flash_attn=options.flash_attn,
            predicted_total_bytes=memory.total_bytes if memory else None,
            predicted_resident_bytes=(memory.resident_bytes or None) if memory else None,
            predicted_gpu_bytes=memory.gpu_bytes if memory else None,
            predicted_source=memory.source if memory else "none",
            rss_after_load_bytes=measured.rss_bytes if measured else None,
            peak_rss_bytes=measured.peak_rss_bytes if measured else None,
            gpu_bytes=gpu_bytes,
            load_seconds=load_seconds,
            bytes_per_token=prediction.bytes_per_token,
            active_parameters=prediction.active_parameters,
        )
        with self._db.session() as session:
            session.add(row)
            session.flush()
            return int(row.id)

    def record_generation(
        self,
        row_id: int,
        stats: GenerationStats,
        measured: ProcessMemory | None,
        gpu_bytes: int | None = None,
    ) -> None:
        """Add a generation's speeds and the process's peak memory to load `row_id`.

        Only the first generation after a load sets the speeds (later ones may run with a
        longer context); the peak memory keeps growing with every call.
        """
        with self._db.session() as session:
            row = session.get(LoadMeasurement, row_id)
            if row is None:
                return
            if row.decode_tps is None and stats.completion_tokens >= MIN_DECODE_TOKENS:
                row.prompt_tokens = stats.prompt_tokens
                row.completion_tokens = stats.completion_tokens
                row.decode_tps = stats.decode_tps
                if stats.prompt_tokens > 0 and stats.ttft_s > 0:
                    row.prompt_tps = stats.prompt_tokens / stats.ttft_s
            if measured is not None:
                peak = measured.peak_rss_bytes or measured.rss_bytes
                row.peak_rss_bytes = max(peak, row.peak_rss_bytes or 0)
            if gpu_bytes is not None:
                row.gpu_bytes = max(gpu_bytes, row.gpu_bytes or 0)
            row.updated_at = utc_now()

    def rows(self, key: str | None = None) -> list[LoadMeasurement]:
        """Measurements, newest first (detached copies), optionally of one model key."""
        with self._db.session() as session:
            query = select(LoadMeasurement).order_by(LoadMeasurement.id.desc())
            if key is not None:
                query = query.where(LoadMeasurement.model_key == key)
            found = list(session.scalars(query))
            session.expunge_all()
            return found

    def last_used(self) -> dict[str, datetime]:
        """When each model file was last loaded here: path -> time (UTC)."""
        with self._db.session() as session:
            rows = session.execute(
                select(LoadMeasurement.path, func.max(LoadMeasurement.created_at)).group_by(
                    LoadMeasurement.path
                )
            )
            return {str(path): when for path, when in rows if when is not None}

    def calibration(self) -> Calibration:
        """What this machine's measured runs say, for the estimator."""
        calibration = Calibration()
        per_file: dict[str, list[tuple[float, float | None]]] = {}
        for row in self.rows():
            if row.decode_tps is None:
                continue
            per_file.setdefault(row.model_key, []).append((row.decode_tps, row.prompt_tps))
            if row.bytes_per_token:
                calibration.effective_bandwidth.setdefault(row.backend, []).append(
                    row.decode_tps * row.bytes_per_token
                )
            if row.prompt_tps and row.active_parameters:
                calibration.prompt_flops.setdefault(row.backend, []).append(
                    row.prompt_tps * 2 * row.active_parameters
                )
        for key, speeds in per_file.items():
            decode = statistics.median(s[0] for s in speeds)
            prompts = [s[1] for s in speeds if s[1] is not None]
            calibration.file_speeds[key] = (decode, statistics.median(prompts) if prompts else None)
        return calibration


def request_for(options: LoadOptions) -> FitRequest:
    """The fit request matching how a model was loaded."""
    return FitRequest(
        n_ctx=options.n_ctx,
        kv_cache_type=options.kv_cache_type,
        flash_attn=options.flash_attn or options.kv_cache_type != "f16",
        n_gpu_layers=options.n_gpu_layers,
        n_ubatch=min(options.n_batch, 512),
    )


@dataclass(frozen=True, slots=True)
class LoadSample:
    """What one finished load measured and what had been predicted for it.

    Attributes:
        path: the model file.
        backend: the engine's backend ("CPU", "Metal", "CUDA").
        options: the options it was loaded with (as really applied where known).
        load_seconds: from spawn to ready.
        prediction: the estimator's figures for this placement (formulas).
        memory: the worker process's memory right after loading (None: not readable).
        pid: the worker process (None for engines without one here).
        gpu_bytes: NVIDIA GPU memory the worker holds (NVML); None elsewhere.
    """

    path: str
    backend: str
    options: LoadOptions
    load_seconds: float
    prediction: Prediction
    memory: ProcessMemory | None
    pid: int | None
    gpu_bytes: int | None = None


def sample_load(
    path: str | os.PathLike[str],
    options: LoadOptions,
    backend: str,
    load_seconds: float,
    pid: int | None,
) -> LoadSample | None:
    """Measure a load that just finished and predict it; None when the file is unreadable.

    Runs on the loading thread (it reads the header and /proc); never raises.
    """
    from app.fit_memory import breakdown
    from app.model_shape import ModelShape
    from app.speed import active_parameters, bytes_per_token
    from runtimes.errors import WorkbenchError
    from runtimes.gguf_header import read_header

    try:
        shape = ModelShape.from_header(read_header(path))
    except (WorkbenchError, ValueError, OSError) as exc:
        log.warning("cannot predict the load of %s: %s", path, exc)
        return None
    request = request_for(options)
    n_ctx = options.n_ctx or shape.n_ctx_train or 4096
    layers = shape.n_layers + 1 if options.n_gpu_layers < 0 else options.n_gpu_layers
    memory = breakdown(shape, n_ctx, request, layers, backend)
    gpu, host = bytes_per_token(shape, n_ctx, request, layers)
    active = active_parameters(shape)
    measured = None
    if pid is not None:
        try:
            measured = process_memory(pid)
        except psutil.Error as exc:
            log.warning("cannot read the memory of worker %s: %s", pid, exc)
    return LoadSample(
        path=os.fspath(path),
        backend=backend,
        options=options,
        load_seconds=load_seconds,
        prediction=Prediction(memory, gpu + host, active),
        memory=measured,
        pid=pid,
        gpu_bytes=gpu_memory_of(pid) if pid is not None and backend == "CUDA" else None,
    )


class MeasurementRecorder:
    """Writes load samples and generation figures on the GUI (or CLI) thread.

    A measurement that cannot be written (database locked or full) is logged and dropped:
    it is a statistic, not the user's data.

    Args:
        store: where to write; None records nothing.
    """

    def __init__(self, store: MeasurementStore | None) -> None:
        self._store = store
        self._rows: dict[int, tuple[int, int | None, bool]] = {}  # id -> (row, pid, on CUDA)

    def loaded(self, model: object, sample: LoadSample | None) -> None:
        """Record a finished load of `model` (the `LoadedModel` object)."""
        if self._store is None or sample is None:
            return
        try:
            row = self._store.record_load(
                sample.path,
                sample.backend,
                sample.options,
                sample.load_seconds,
                sample.prediction,
                sample.memory,
                sample.gpu_bytes,
            )
        except (DatabaseUnavailable, OSError) as exc:
            log.warning("load measurement not saved: %s", exc)
            return
        self._rows[id(model)] = (row, sample.pid, sample.backend == "CUDA")

    def generated(self, model: object, stats: GenerationStats) -> None:
        """Add a finished generation's figures and the worker's peak memory."""
        found = self._rows.get(id(model))
        if self._store is None or found is None:
            return
        row, pid, cuda = found
        measured = gpu = None
        if pid is not None:
            try:
                measured = process_memory(pid)
            except psutil.Error:
                measured = None
            gpu = gpu_memory_of(pid) if cuda else None
        try:
            self._store.record_generation(row, stats, measured, gpu)
        except DatabaseUnavailable as exc:
            log.warning("generation measurement not saved: %s", exc)

    def forget(self, model: object) -> None:
        """Stop following an unloaded model."""
        self._rows.pop(id(model), None)
