"""The closed loop: process memory readings and the measurement store on a real SQLite file.

tests/fixtures/proc_status.txt is /proc/PID/status of a Python process holding a 50 MB
buffer, recorded on this project's Linux 6.18 x86-64 VM (VmHWM 59684 kB).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.errors import DatabaseUnavailable
from app.fit_memory import breakdown
from app.fit_types import FitRequest
from app.measurements import (
    MeasurementStore,
    Prediction,
    ProcessMemory,
    gpu_memory_of,
    model_key,
    parse_vm_hwm,
    process_memory,
)
from app.store import Database, open_database
from runtimes.base import GenerationStats, LoadOptions
from tests.unit.test_fit_memory import make_shape

STATUS = Path(__file__).parent.parent / "fixtures" / "proc_status.txt"


def stats(completion: int = 64, decode: float = 50.0, prompt: int = 100, ttft: float = 0.5):  # type: ignore[no-untyped-def]
    return GenerationStats(prompt, completion, 1.0, ttft, decode, 2.0, "stop")


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(tmp_path / "history.sqlite3", busy_timeout_s=0.1)
    yield database
    database.close()


@pytest.fixture()
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"x" * 1234)
    return path


def prediction() -> Prediction:
    memory = breakdown(make_shape(), 1024, FitRequest(n_ctx=1024), 0, "CPU")
    return Prediction(memory, bytes_per_token=40_000_000, active_parameters=1_000_000)


def test_parse_vm_hwm_of_a_recorded_status_file() -> None:
    assert parse_vm_hwm(STATUS.read_text()) == 59684 * 1024


def test_parse_vm_hwm_without_the_line_is_none() -> None:
    assert parse_vm_hwm("Name:\tpython\nVmRSS:\t  100 kB\n") is None
    assert parse_vm_hwm("VmHWM:\tmany kB\n") is None


def test_process_memory_of_this_process() -> None:
    memory = process_memory(os.getpid())
    assert memory.rss_bytes > 10 * 1024 * 1024
    assert memory.peak_rss_bytes is not None
    assert memory.peak_rss_bytes >= memory.rss_bytes - 1024 * 1024


def test_record_load_stores_prediction_and_measurement(db: Database, model_file: Path) -> None:
    store = MeasurementStore(db)
    pred = prediction()
    row_id = store.record_load(
        model_file, "CPU", LoadOptions(n_ctx=1024), 0.75, pred, ProcessMemory(300, 400)
    )
    (row,) = store.rows()
    assert row.id == row_id
    assert row.model_key == model_key(model_file, 1234) == "m.gguf|1234"
    assert (row.backend, row.n_ctx, row.n_gpu_layers, row.load_seconds) == ("CPU", 1024, 0, 0.75)
    assert pred.memory is not None
    assert row.predicted_total_bytes == pred.memory.total_bytes
    assert row.predicted_resident_bytes == pred.memory.resident_bytes
    assert row.predicted_source == "formula"
    assert (row.rss_after_load_bytes, row.peak_rss_bytes) == (300, 400)
    assert row.decode_tps is None


def test_first_long_generation_sets_speeds_and_later_ones_do_not(
    db: Database, model_file: Path
) -> None:
    store = MeasurementStore(db)
    row_id = store.record_load(model_file, "CPU", LoadOptions(), 1.0, prediction(), None)
    store.record_generation(row_id, stats(completion=3, decode=99.0), None)
    assert store.rows()[0].decode_tps is None  # too short to say anything about decode
    store.record_generation(row_id, stats(decode=50.0, prompt=100, ttft=0.5), None)
    store.record_generation(row_id, stats(decode=10.0), None)
    (row,) = store.rows()
    assert (row.decode_tps, row.prompt_tps, row.completion_tokens) == (50.0, 200.0, 64)


def test_peak_memory_keeps_the_maximum(db: Database, model_file: Path) -> None:
    store = MeasurementStore(db)
    row_id = store.record_load(
        model_file, "CPU", LoadOptions(), 1.0, prediction(), ProcessMemory(100, 500)
    )
    store.record_generation(row_id, stats(), ProcessMemory(700, 900))
    store.record_generation(row_id, stats(), ProcessMemory(600, 800))
    assert store.rows()[0].peak_rss_bytes == 900
    store.record_generation(row_id, stats(), ProcessMemory(1000, None))  # no VmHWM: RSS
    assert store.rows()[0].peak_rss_bytes == 1000


def test_calibration_round_trip(db: Database, model_file: Path, tmp_path: Path) -> None:
    store = MeasurementStore(db)
    for decode in (40.0, 60.0, 50.0):
        row_id = store.record_load(model_file, "CPU", LoadOptions(), 1.0, prediction(), None)
        store.record_generation(row_id, stats(decode=decode, prompt=100, ttft=0.5), None)
    unused = store.record_load(model_file, "Metal", LoadOptions(), 1.0, prediction(), None)
    calibration = store.calibration()
    assert sorted(calibration.effective_bandwidth["CPU"]) == [40 * 40e6, 50 * 40e6, 60 * 40e6]
    assert calibration.prompt_flops["CPU"] == [200.0 * 2 * 1_000_000] * 3
    assert calibration.file_speeds == {"m.gguf|1234": (50.0, 200.0)}
    assert "Metal" not in calibration.effective_bandwidth
    assert store.rows("m.gguf|1234")[0].id == unused
    assert store.rows("other|1") == []


def test_a_locked_database_raises_database_unavailable(db: Database, model_file: Path) -> None:
    store = MeasurementStore(db)
    locker = sqlite3.connect(db.path, isolation_level=None, timeout=0)
    locker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DatabaseUnavailable, match="locked"):
            store.record_load(model_file, "CPU", LoadOptions(), 1.0, prediction(), None)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert store.rows() == []


class FakeNvml:
    """NVML as nvidia-ml-py exposes it: two GPUs, a worker on both and another process."""

    class NVMLError(Exception):
        pass

    def __init__(self, processes: dict[int, list[tuple[int, int | None]]], fail: bool = False):
        self.processes = processes
        self.fail = fail
        self.shut_down = False

    def nvmlInit(self) -> None:
        if self.fail:
            raise self.NVMLError("NVML Shared Library Not Found")

    def nvmlShutdown(self) -> None:
        self.shut_down = True

    def nvmlDeviceGetCount(self) -> int:
        return len(self.processes)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[object]:
        return [
            type("Proc", (), {"pid": pid, "usedGpuMemory": used})()
            for pid, used in self.processes[handle]
        ]


def test_gpu_memory_of_sums_the_process_over_gpus() -> None:
    nvml = FakeNvml({0: [(42, 3 << 30), (7, 1 << 30)], 1: [(42, 1 << 30)]})
    assert gpu_memory_of(42, nvml) == 4 << 30  # type: ignore[arg-type]
    assert nvml.shut_down


def test_gpu_memory_of_is_unknown_without_nvml_or_the_process() -> None:
    assert gpu_memory_of(42, FakeNvml({0: [(7, 1 << 30)]})) is None  # type: ignore[arg-type]
    assert gpu_memory_of(42, FakeNvml({0: [(42, None)]})) is None  # type: ignore[arg-type]
    assert gpu_memory_of(42, FakeNvml({}, fail=True)) is None  # type: ignore[arg-type]


def test_generation_keeps_the_largest_gpu_reading(db: Database, tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + bytes(60))
    store = MeasurementStore(db)
    row = store.record_load(
        model, "CUDA", LoadOptions(), 1.0, Prediction(None, None, None), None, gpu_bytes=5 << 30
    )
    store.record_generation(row, stats(), None, gpu_bytes=6 << 30)
    store.record_generation(row, stats(), None, gpu_bytes=4 << 30)
    assert store.rows()[0].gpu_bytes == 6 << 30


def test_last_used_is_the_latest_load_of_each_file(db: Database, tmp_path: Path) -> None:
    first, second = tmp_path / "a.gguf", tmp_path / "b.gguf"
    for path in (first, second):
        path.write_bytes(b"GGUF" + bytes(60))
    store = MeasurementStore(db)
    for path in (first, second, first):
        store.record_load(path, "CPU", LoadOptions(), 1.0, Prediction(None, None, None), None)
    rows = store.rows()
    used = store.last_used()
    assert set(used) == {str(first), str(second)}
    assert used[str(first)] == max(r.created_at for r in rows if r.path == str(first))
    assert used[str(first)] >= used[str(second)]
