"""The QObject worker that pumps one comparison turn (`CompareRunner.run_turn`) on a QThread."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from PySide6.QtCore import QObject, Signal, Slot

from app.compare_runner import CompareMode, CompareRunner, PaneSpec
from app.errors import WorkbenchError
from runtimes.base import CancelToken, ChatMessage, GenerationParams

log = logging.getLogger(__name__)


class CompareWorker(QObject):
    """Runs one turn across the panes; never touches widgets or the database.

    Signals:
        pane_event(object): a `PaneEvent` (loading, text, done, failed, …) of one pane.
        failed(str): the turn as a whole could not run (a bug, or a bad request).
        finished(): always last.
    """

    pane_event = Signal(object)
    failed = Signal(str)
    finished = Signal()

    def __init__(
        self,
        runner: CompareRunner,
        panes: Sequence[PaneSpec],
        histories: Sequence[tuple[ChatMessage, ...]],
        mode: CompareMode,
        params: GenerationParams,
    ) -> None:
        super().__init__()
        self._runner = runner
        self._panes = tuple(panes)
        self._histories = tuple(histories)
        self._mode: CompareMode = mode
        self._params = params
        self.cancel = CancelToken()

    @Slot()
    def run(self) -> None:
        """Pump the runner's events into `pane_event` until every pane has ended."""
        try:
            events = self._runner.run_turn(
                self._panes, self._histories, self._mode, self._params, self.cancel
            )
            for event in events:
                self.pane_event.emit(event)
        except WorkbenchError as exc:
            self.failed.emit(exc.message)
        except Exception as exc:
            log.exception("comparison turn failed with a bug")
            self.failed.emit(f"{type(exc).__name__}: {exc}")
        finally:
            self.finished.emit()
