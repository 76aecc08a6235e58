"""The QObject worker that pumps an eval run (`EvalRunner.run`) on its own QThread."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot

from app.errors import WorkbenchError
from runtimes.base import CancelToken

log = logging.getLogger(__name__)


WRITES = ("record_result", "set_status", "finish_run")
"""The `EvalStore` methods the runner writes through (see `GuiThreadWrites`)."""


class _GuiCall(QObject):
    """Runs a callable on the thread this object lives in (the GUI thread), blocking the
    thread that asked until it is done.

    Signals:
        call_requested(object): a `_Box` to run (emitted from the worker thread).
    """

    call_requested = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.call_requested.connect(
            self._on_call_requested, Qt.ConnectionType.BlockingQueuedConnection
        )

    @Slot(object)
    def _on_call_requested(self, box: _Box) -> None:
        box.run()


class _Box:
    """A call and, once it ran, its result or its exception."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.call = call
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.call()
        except Exception as exc:  # noqa: BLE001 - handed back to the worker thread, raised there
            self.error = exc


class GuiThreadWrites:
    """An `EvalStore` whose writes run on the GUI thread (DESIGN: the GUI thread owns
    database writes); reads go straight to the store from whichever thread asks.

    Build it on the GUI thread. A write from the worker blocks the worker until the GUI
    thread has done it, so a GUI-thread wait for the worker must keep handling events
    (`WorkerThread.wait` does).
    """

    def __init__(self, store: Any) -> None:
        self._store = store
        self._gui = _GuiCall()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if name not in WRITES:
            return attribute

        def write(*args: Any, **kwargs: Any) -> Any:
            box = _Box(lambda: attribute(*args, **kwargs))
            app = QCoreApplication.instance()
            if app is None or QThread.currentThread() is app.thread():
                box.run()
            else:
                self._gui.call_requested.emit(box)
            if box.error is not None:
                raise box.error
            return box.result

        return write


class EvalRunning(Protocol):
    """What the worker needs of `app.eval_runner.EvalRunner`."""

    def run(self, run_id: int, cancel: CancelToken) -> Iterator[object] | Iterable[object]:
        """Yield an `EvalProgress` after each case (and before each model starts)."""
        ...


class EvalWorker(QObject):
    """Runs one eval run: every case on every model, skipping results already stored.

    The runner opens each model in turn (load, all cases, unload); `cancel` stops it between
    cases, or inside a reply. Nothing here touches widgets.

    Signals:
        progressed(object): each `EvalProgress` the runner yields (done, total, model,
            case index, ETA, and the result just recorded, if any).
        failed(object): the `WorkbenchError` (or unexpected exception) that ended the run.
        finished(): always last.
    """

    progressed = Signal(object)
    failed = Signal(object)
    finished = Signal()

    def __init__(self, runner: EvalRunning, run_id: int) -> None:
        super().__init__()
        self._runner = runner
        self.run_id = run_id
        self.cancel = CancelToken()

    @Slot()
    def run(self) -> None:
        """Pump the runner until it ends, is cancelled, or fails; then `finished`."""
        try:
            for progress in self._runner.run(self.run_id, self.cancel):
                self.progressed.emit(progress)
        except WorkbenchError as exc:
            self.failed.emit(exc)
        except Exception as exc:
            log.exception("unexpected error in eval run %s", self.run_id)
            self.failed.emit(exc)
        finally:
            self.finished.emit()
