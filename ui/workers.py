"""QObject workers that pump runtime and app generators on their own QThreads.

Each worker is moved to a fresh `QThread`, its signals are connected by the caller, and only
then is the thread started (`start_worker`). Workers never touch widgets or the database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from app.engine import LoadPlan, ModelHost
from app.errors import WorkbenchError
from app.fit_service import fit_file
from app.fit_types import FitRequest
from app.hardware import HardwareProfile, probe_hardware
from app.runtimes import RuntimeRegistry
from runtimes.base import (
    CancelToken,
    ChatRequest,
    Done,
    LoadedModel,
    LoadProgress,
    ServerRuntime,
    TextDelta,
)

log = logging.getLogger(__name__)


class LoadWorker(QObject):
    """Loads one model through the `ModelHost`.

    Signals:
        progressed(float, str): fraction in [0, 1] and the stage label.
        loaded(object): the `LoadedModel`, ready.
        failed(object): the `WorkbenchError` (or unexpected exception) that stopped the load.
        finished(): always last.
    """

    progressed = Signal(float, str)
    loaded = Signal(object)
    failed = Signal(object)
    finished = Signal()

    def __init__(self, host: ModelHost, path: Path, plan: LoadPlan) -> None:
        super().__init__()
        self._host = host
        self._path = path
        self._plan = plan
        self.cancel = CancelToken()

    @Slot()
    def run(self) -> None:
        """Load the model; emits `loaded` or `failed`, then `finished`."""
        try:
            model = self._host.load(self._path, self._plan, self._on_progress, self.cancel)
        except WorkbenchError as exc:
            self.failed.emit(exc)
        except Exception as exc:
            log.exception("unexpected error while loading %s", self._path)
            self.failed.emit(exc)
        else:
            self.loaded.emit(model)
        self.finished.emit()

    def _on_progress(self, progress: LoadProgress) -> None:
        self.progressed.emit(progress.fraction, progress.stage)


class GenerationWorker(QObject):
    """Streams one reply from a loaded model.

    Signals:
        text_received(str): a piece of the reply (may be several tokens).
        completed(object): the `GenerationStats` of the finished (or cancelled) reply.
        failed(object): the error that ended the stream early (e.g. `RuntimeCrashed`).
        finished(): always last.
    """

    text_received = Signal(str)
    completed = Signal(object)
    failed = Signal(object)
    finished = Signal()

    def __init__(self, model: LoadedModel, request: ChatRequest) -> None:
        super().__init__()
        self._model = model
        self._request = request
        self.cancel = CancelToken()

    @Slot()
    def run(self) -> None:
        """Pump the runtime's generator until `Done` or an error."""
        try:
            for event in self._model.chat(self._request, self.cancel):
                if isinstance(event, TextDelta):
                    self.text_received.emit(event.text)
                elif isinstance(event, Done):
                    self.completed.emit(event.stats)
        except WorkbenchError as exc:
            self.failed.emit(exc)
        except Exception as exc:
            log.exception("unexpected error while generating")
            self.failed.emit(exc)
        self.finished.emit()


class HardwareWorker(QObject):
    """Probes the hardware (subprocesses with timeouts) off the GUI thread.

    Signals:
        probed(object): the `HardwareProfile`.
        finished(): always last.
    """

    probed = Signal(object)
    finished = Signal()

    def __init__(self, models_dir: Path) -> None:
        super().__init__()
        self._models_dir = models_dir

    @Slot()
    def run(self) -> None:
        """Run the probe (it is written never to raise; `finished` comes regardless)."""
        try:
            profile: HardwareProfile = probe_hardware(self._models_dir)
            self.probed.emit(profile)
        finally:
            self.finished.emit()


class FitWorker(QObject):
    """Judges local model files for this machine (llama.cpp dry runs) off the GUI thread.

    Signals:
        fitted(object): {path: FitVerdict} for every file, once all are judged.
        finished(): always last.
    """

    fitted = Signal(object)
    finished = Signal()

    def __init__(self, paths: Sequence[str], profile: HardwareProfile, n_ctx: int) -> None:
        super().__init__()
        self._paths = list(paths)
        self._profile = profile
        self._n_ctx = n_ctx

    @Slot()
    def run(self) -> None:
        """Judge each file (`fit_file` never raises); emit the verdicts together."""
        try:
            verdicts = {}
            for path in self._paths:
                verdicts[path] = fit_file(path, self._profile, FitRequest(n_ctx=self._n_ctx))
            self.fitted.emit(verdicts)
        finally:
            self.finished.emit()


class CallWorker(QObject):
    """Runs one call off the GUI thread (an estimate, a Hub request).

    Signals:
        returned(object, object): the tag given and what the call returned.
        failed(object, str): the tag and what went wrong: a `WorkbenchError`'s message, or
            a bug's type and text (then logged with its traceback).
        finished(): always last.
    """

    returned = Signal(object, object)
    failed = Signal(object, str)
    finished = Signal()

    def __init__(self, call: Callable[[], object], tag: object) -> None:
        super().__init__()
        self._call = call
        self._tag = tag

    @Slot()
    def run(self) -> None:
        """Make the call; `returned` or `failed`, then `finished`."""
        try:
            result = self._call()
        except WorkbenchError as exc:  # expected: a network or user problem, said plainly
            self.failed.emit(self._tag, exc.message)
        except Exception as exc:
            log.exception("call failed with a bug")
            self.failed.emit(self._tag, f"{type(exc).__name__}: {exc}")
        else:
            self.returned.emit(self._tag, result)
        finally:
            self.finished.emit()


class WorkerThread:
    """A worker and its thread. The thread object is owned by the parent given to
    `start_worker` (Qt parent-child), so it stays valid for `running()` and `wait()` as long as
    that parent lives; it is not deleted when it finishes (see `start_worker`)."""

    def __init__(self, worker: Any, thread: QThread) -> None:
        self.worker = worker
        self.thread = thread

    def wait(self, msecs: int = 10_000) -> bool:
        """Block until the thread ends (for shutdown and tests).

        On the GUI thread this handles events while it waits: the thread quits through a
        queued call there, so a plain `QThread.wait` would always sit out its whole limit.
        """
        app = QCoreApplication.instance()
        if app is None or QThread.currentThread() is not app.thread():
            return bool(self.thread.wait(msecs))
        deadline = time.monotonic() + msecs / 1000
        while self.thread.isRunning() and time.monotonic() < deadline:
            QCoreApplication.processEvents()
            self.thread.wait(20)
        return not self.thread.isRunning()

    def running(self) -> bool:
        """Whether the thread is still running."""
        return bool(self.thread.isRunning())


def wait_all(handles: list[WorkerThread], msecs: int) -> bool:
    """Wait for several workers' threads within one overall limit; True when all ended."""
    deadline = time.monotonic() + msecs / 1000
    for handle in handles:
        handle.wait(max(0, round((deadline - time.monotonic()) * 1000)))
    return not any(handle.running() for handle in handles)


def start_worker(
    worker: QObject, connect: Callable[[], None], parent: QObject | None = None
) -> WorkerThread:
    """Move `worker` to a new thread, let `connect()` wire its signals, then start it.

    The worker must have a `run` slot and a `finished` signal; the thread quits when the
    worker finishes. Keep the returned handle until then: it owns the thread.
    """
    thread = QThread(parent)
    handle = WorkerThread(worker, thread)
    worker.moveToThread(thread)
    connect()
    thread.started.connect(worker.run)  # type: ignore[attr-defined]
    # Queued to the GUI thread (the thread object lives there): the worker's deferred delete
    # then runs in its own event loop before the thread ends. A GUI-thread wait must therefore
    # process events while it waits (`WorkerThread.wait` does).
    worker.finished.connect(thread.quit)  # type: ignore[attr-defined]
    worker.finished.connect(worker.deleteLater)  # type: ignore[attr-defined]
    # No thread.deleteLater and no Python callables connected to the thread's signals: a
    # finished thread deleted under a live handle, or a bound method of a plain Python object
    # called from the ending thread, crashed PySide 6.11 (segfault seen in the Ollama panel
    # tests). The finished QThread object stays with its parent until the parent goes.
    thread.start()
    return handle


class ServerModelsWorker(QObject):
    """Asks one server runtime for its models (short timeouts; a server that is down is normal).

    Signals:
        listed(str, str, object): runtime key, its label, and the list of `RemoteModel`.
        unavailable(str, str): runtime key and why (not running, error).
        finished(): always last.
    """

    listed = Signal(str, str, object)
    unavailable = Signal(str, str)
    finished = Signal()

    def __init__(self, registry: RuntimeRegistry, key: str) -> None:
        super().__init__()
        self._registry = registry
        self._key = key

    @Slot()
    def run(self) -> None:
        """Check the server, then list its models."""
        try:
            entry = self._registry.status(self._key, timeout_s=1.5)
            if entry.status.state != "available":
                self.unavailable.emit(self._key, entry.status.detail)
                return
            runtime = cast(ServerRuntime, self._registry.get(self._key))
            self.listed.emit(self._key, entry.label, runtime.list_models())
        except WorkbenchError as exc:
            self.unavailable.emit(self._key, exc.message)
        finally:
            self.finished.emit()
