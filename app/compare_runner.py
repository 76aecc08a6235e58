"""One comparison turn across panes, headless: parallel (a thread per pane) or sequential.

Events of every pane come out of `CompareRunner.run_turn` on the caller's thread (a GUI
worker pumps them into signals). Sequential mode loads, generates and unloads one pane at a
time, so nothing else generates while a pane is measured. A pane that fails yields "failed"
and the others go on; a cancel stops every pane and unloads what was loaded.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from app.errors import WorkbenchError
from app.model_session import ModelSession, RunFigures, SessionOpener
from runtimes.base import CancelToken, ChatMessage, ChatRequest, GenerationParams, LoadOptions

log = logging.getLogger(__name__)

PaneEventKind = Literal["loading", "loaded", "text", "done", "failed", "unloaded", "waiting"]
CompareMode = Literal["parallel", "sequential"]
STOPPED = "Stopped."
"""The "failed" message of a pane stopped by the cancel token (its partial text stays)."""
_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class PaneSpec:
    """One pane of a comparison.

    Attributes:
        choice: the model choice (a .gguf path or "<runtime key>::<model>").
        name: its display name ("" when unknown).
        load: load options (None: planned for this machine).
        params: sampling parameters (None: the run's shared parameters).
        system_prompt: a system prompt for this pane (None: whatever the history holds).
    """

    choice: str
    name: str = ""
    load: LoadOptions | None = None
    params: GenerationParams | None = None
    system_prompt: str | None = None


@dataclass(frozen=True, slots=True)
class PaneEvent:
    """Something that happened to one pane.

    Attributes:
        pane: the pane's index in the turn's panes.
        kind: "waiting" (queued behind other panes), "loading", "loaded", "text",
            "done", "failed" (also a cancelled pane: `text` is `STOPPED`), "unloaded".
        text: the new piece for "text"; the message for "failed".
        figures: the figures for "done" (and for a stopped pane that had started).
    """

    pane: int
    kind: PaneEventKind
    text: str = ""
    figures: RunFigures | None = None

    @property
    def stopped(self) -> bool:
        """Whether this is a pane stopped by the cancel token."""
        return self.kind == "failed" and self.text == STOPPED


def pane_request(
    pane: PaneSpec, history: tuple[ChatMessage, ...], params: GenerationParams
) -> ChatRequest:
    """The request a pane sends: its history (ending with the new user message), with the
    pane's own system prompt in front when it has one, and its own params when set."""
    messages = history
    if pane.system_prompt is not None:
        rest = tuple(m for m in history if m.role != "system")
        head = (ChatMessage("system", pane.system_prompt),) if pane.system_prompt else ()
        messages = head + rest
    return ChatRequest(messages, pane.params or params)


_SessionKey = tuple[str, LoadOptions | None]


class CompareRunner:
    """Runs turns of a comparison.

    Args:
        opener: loads models.
        keep_loaded: keep sessions loaded between parallel turns (the GUI's multi-turn
            parallel mode); `close()` unloads them. Sequential turns always unload each pane.
    """

    def __init__(self, opener: SessionOpener, keep_loaded: bool = False) -> None:
        self._opener = opener
        self._keep = keep_loaded
        self._lock = threading.Lock()
        self._kept: dict[int, tuple[_SessionKey, ModelSession]] = {}

    def run_turn(
        self,
        panes: Sequence[PaneSpec],
        histories: Sequence[tuple[ChatMessage, ...]],
        mode: CompareMode,
        params: GenerationParams,
        cancel: CancelToken,
    ) -> Iterator[PaneEvent]:
        """Send each pane its history (ending with the new user message) and yield events.

        Every pane ends with "done" or "failed"; a pane that loaded for this turn also
        yields "unloaded" once its model is gone (not when it is kept loaded).

        Raises:
            ValueError: not one history per pane.
        """
        if len(histories) != len(panes):
            raise ValueError(f"{len(panes)} panes but {len(histories)} histories")
        if mode == "sequential":
            yield from self._sequential(panes, histories, params, cancel)
        else:
            yield from self._parallel(panes, histories, params, cancel)

    def close(self) -> None:
        """Unload every kept session. Idempotent."""
        with self._lock:
            kept = list(self._kept.values())
            self._kept.clear()
        for _key, session in kept:
            _close_quietly(session)

    def _sequential(
        self,
        panes: Sequence[PaneSpec],
        histories: Sequence[tuple[ChatMessage, ...]],
        params: GenerationParams,
        cancel: CancelToken,
    ) -> Iterator[PaneEvent]:
        self.close()  # nothing else loaded while a pane is measured
        for index in range(1, len(panes)):
            yield PaneEvent(index, "waiting")
        inner = CancelToken()
        for index, pane in enumerate(panes):
            if cancel.cancelled or inner.cancelled:
                yield PaneEvent(index, "failed", STOPPED)
                continue
            events: queue.SimpleQueue[PaneEvent | None] = queue.SimpleQueue()
            thread = threading.Thread(
                target=self._run_pane,
                args=(index, pane, histories[index], params, inner, events, False),
                name=f"compare-pane-{index}",
                daemon=True,
            )
            yield from _pump([thread], events, cancel, inner)

    def _parallel(
        self,
        panes: Sequence[PaneSpec],
        histories: Sequence[tuple[ChatMessage, ...]],
        params: GenerationParams,
        cancel: CancelToken,
    ) -> Iterator[PaneEvent]:
        self._drop_stale(panes)
        inner = CancelToken()
        events: queue.SimpleQueue[PaneEvent | None] = queue.SimpleQueue()
        threads = [
            threading.Thread(
                target=self._run_pane,
                args=(i, pane, histories[i], params, inner, events, self._keep),
                name=f"compare-pane-{i}",
                daemon=True,
            )
            for i, pane in enumerate(panes)
        ]
        yield from _pump(threads, events, cancel, inner)

    def _drop_stale(self, panes: Sequence[PaneSpec]) -> None:
        """Unload kept sessions whose pane is gone or now names another model or options."""
        with self._lock:
            stale = [
                i
                for i, (key, _s) in self._kept.items()
                if i >= len(panes) or key != (panes[i].choice, panes[i].load)
            ]
            dropped = [self._kept.pop(i)[1] for i in stale]
        for session in dropped:
            _close_quietly(session)

    def _run_pane(
        self,
        index: int,
        pane: PaneSpec,
        history: tuple[ChatMessage, ...],
        params: GenerationParams,
        cancel: CancelToken,
        events: queue.SimpleQueue[PaneEvent | None],
        keep: bool,
    ) -> None:
        """One pane's turn on its own thread; every outcome becomes an event."""
        session: ModelSession | None = None
        try:
            session = self._session(index, pane, cancel, events)
            if cancel.cancelled:
                events.put(PaneEvent(index, "failed", STOPPED))
                return
            request = pane_request(pane, history, params)
            _text, figures = session.generate(
                request, cancel, lambda piece: events.put(PaneEvent(index, "text", piece))
            )
            if cancel.cancelled:
                events.put(PaneEvent(index, "failed", STOPPED, figures))
            else:
                events.put(PaneEvent(index, "done", figures=figures))
        except WorkbenchError as exc:
            message = STOPPED if cancel.cancelled else exc.message
            events.put(PaneEvent(index, "failed", message))
            keep = False
        except Exception as exc:  # a bug in one pane must not take the others down
            log.exception("compare pane %d (%s) failed", index, pane.choice)
            events.put(PaneEvent(index, "failed", f"Internal error: {exc}"))
            keep = False
        finally:
            try:
                self._finish(index, pane, session, keep and not cancel.cancelled, events)
            finally:
                events.put(None)  # the end mark, whatever happened: the pump counts on it

    def _session(
        self,
        index: int,
        pane: PaneSpec,
        cancel: CancelToken,
        events: queue.SimpleQueue[PaneEvent | None],
    ) -> ModelSession:
        with self._lock:
            kept = self._kept.pop(index, None)
        if kept is not None and kept[0] == (pane.choice, pane.load):
            events.put(PaneEvent(index, "loaded"))
            return kept[1]
        if kept is not None:
            _close_quietly(kept[1])
        events.put(PaneEvent(index, "loading"))
        session = self._opener.open(pane.choice, pane.load, cancel)
        events.put(PaneEvent(index, "loaded"))
        return session

    def _finish(
        self,
        index: int,
        pane: PaneSpec,
        session: ModelSession | None,
        keep: bool,
        events: queue.SimpleQueue[PaneEvent | None],
    ) -> None:
        if session is None:
            return
        if keep:
            with self._lock:
                self._kept[index] = ((pane.choice, pane.load), session)
            return
        _close_quietly(session)
        events.put(PaneEvent(index, "unloaded"))


def _pump(
    threads: Sequence[threading.Thread],
    events: queue.SimpleQueue[PaneEvent | None],
    cancel: CancelToken,
    inner: CancelToken,
) -> Iterator[PaneEvent]:
    """Start `threads`, yield their events until each has put its end mark (None); pass a
    cancel on to `inner`; if the consumer stops early, cancel and wait for the threads."""
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            if cancel.cancelled and not inner.cancelled:
                inner.cancel()
            try:
                event = events.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if event is None:
                running -= 1
            else:
                yield event
    finally:
        if running:
            inner.cancel()
        for thread in threads:
            thread.join()


def _close_quietly(session: ModelSession) -> None:
    try:
        session.close()
    except WorkbenchError as exc:  # an unload that fails leaves nothing to do but say so
        log.warning("unloading %s failed: %s", session.name, exc)
