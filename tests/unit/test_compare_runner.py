"""CompareRunner with a fake opener: parallel interleaving, failures, cancel, sequential order."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from app.compare_runner import STOPPED, CompareRunner, PaneEvent, PaneSpec, pane_request
from app.errors import ModelLoadFailed, RuntimeCrashed
from app.model_session import RunFigures
from runtimes.base import CancelToken, ChatMessage, ChatRequest, GenerationParams, LoadOptions

PARAMS = GenerationParams(temperature=0, seed=1, max_tokens=8)
HISTORY = (ChatMessage("user", "Hi"),)


def figures(tokens: int) -> RunFigures:
    return RunFigures(0.1, 5.0, 50.0, 100.0, 3, tokens, 0.2, 1000)


class FakeSession:
    def __init__(self, opener: FakeOpener, choice: str) -> None:
        self.choice = choice
        self.name = choice
        self.runtime = "llamacpp"
        self.load_seconds: float | None = 0.1
        self.closed = 0
        self._opener = opener

    def generate(
        self,
        request: ChatRequest,
        cancel: CancelToken,
        on_text: Callable[[str], None] | None = None,
    ) -> tuple[str, RunFigures]:
        self._opener.requests.append((self.choice, request))
        behaviour = self._opener.behaviours.get(self.choice, "ok")
        pieces: list[str] = []
        for i in range(3):
            if cancel.cancelled:
                break
            if behaviour == "crash" and i == 1:
                raise RuntimeCrashed(-9, "ggml_abort")
            if behaviour == "block" and i == 1:
                self._opener.blocking.set()
                cancel.wait(5)
                continue
            gate = self._opener.gates.get(self.choice)
            if gate is not None:  # hand the turn to the other pane
                mine, theirs = gate
                mine.wait(2)
                mine.clear()
                theirs.set()
            piece = f"{self.choice}{i} "
            pieces.append(piece)
            if on_text is not None:
                on_text(piece)
        return "".join(pieces), figures(len(pieces))

    def count_tokens(self, messages: tuple[ChatMessage, ...]) -> int | None:
        return len(messages)

    def close(self) -> None:
        self.closed += 1
        self._opener.log.append(("close", self.choice))
        self._opener.open_now.discard(self.choice)


class FakeOpener:
    def __init__(self) -> None:
        self.behaviours: dict[str, str] = {}
        self.gates: dict[str, tuple[threading.Event, threading.Event]] = {}
        self.blocking = threading.Event()
        self.sessions: list[FakeSession] = []
        self.log: list[tuple[str, str]] = []
        self.requests: list[tuple[str, ChatRequest]] = []
        self.open_now: set[str] = set()
        self.most_open = 0
        self._lock = threading.Lock()

    def open(
        self, choice: str, load: LoadOptions | None = None, cancel: CancelToken | None = None
    ) -> FakeSession:
        if self.behaviours.get(choice) == "load_error":
            raise ModelLoadFailed(f"llama.cpp could not load {choice}.")
        with self._lock:
            self.log.append(("open", choice))
            self.open_now.add(choice)
            self.most_open = max(self.most_open, len(self.open_now))
            session = FakeSession(self, choice)
            self.sessions.append(session)
        return session


def run(
    runner: CompareRunner, panes: list[PaneSpec], mode: str, cancel: CancelToken | None = None
) -> list[PaneEvent]:
    histories = [HISTORY] * len(panes)
    return list(runner.run_turn(panes, histories, mode, PARAMS, cancel or CancelToken()))  # type: ignore[arg-type]


def kinds(events: list[PaneEvent], pane: int) -> list[str]:
    return [e.kind for e in events if e.pane == pane]


def text_of(events: list[PaneEvent], pane: int) -> str:
    return "".join(e.text for e in events if e.pane == pane and e.kind == "text")


def test_parallel_panes_interleave_and_both_finish() -> None:
    opener = FakeOpener()
    a_turn, b_turn = threading.Event(), threading.Event()
    a_turn.set()
    opener.gates = {"a": (a_turn, b_turn), "b": (b_turn, a_turn)}
    events = run(CompareRunner(opener), [PaneSpec("a"), PaneSpec("b")], "parallel")
    texts = [e.pane for e in events if e.kind == "text"]
    assert texts == [0, 1, 0, 1, 0, 1]
    for pane in (0, 1):
        assert kinds(events, pane)[:2] == ["loading", "loaded"]
        assert kinds(events, pane)[-2:] == ["done", "unloaded"]
    done = [e for e in events if e.kind == "done"]
    assert all(e.figures is not None and e.figures.completion_tokens == 3 for e in done)
    assert text_of(events, 0) == "a0 a1 a2 "
    assert opener.most_open == 2
    assert all(s.closed == 1 for s in opener.sessions)


def test_a_crashing_pane_fails_and_the_other_finishes() -> None:
    opener = FakeOpener()
    opener.behaviours = {"bad": "crash"}
    events = run(CompareRunner(opener), [PaneSpec("bad"), PaneSpec("good")], "parallel")
    failed = [e for e in events if e.kind == "failed"]
    assert [e.pane for e in failed] == [0]
    assert failed[0].text.startswith("The model's worker process stopped unexpectedly")
    assert kinds(events, 1)[-2:] == ["done", "unloaded"]
    assert text_of(events, 1) == "good0 good1 good2 "
    assert all(s.closed == 1 for s in opener.sessions)


def test_a_pane_that_cannot_load_fails_and_the_other_finishes_sequentially() -> None:
    opener = FakeOpener()
    opener.behaviours = {"missing": "load_error"}
    events = run(CompareRunner(opener), [PaneSpec("missing"), PaneSpec("good")], "sequential")
    assert kinds(events, 0) == ["loading", "failed"]
    assert "could not load missing" in next(e.text for e in events if e.kind == "failed")
    assert kinds(events, 1) == [
        "waiting",
        "loading",
        "loaded",
        "text",
        "text",
        "text",
        "done",
        "unloaded",
    ]


def test_cancel_stops_every_pane_and_closes_their_sessions() -> None:
    opener = FakeOpener()
    opener.behaviours = {"a": "block", "b": "block"}
    cancel = CancelToken()
    runner = CompareRunner(opener, keep_loaded=True)
    events: list[PaneEvent] = []
    for event in runner.run_turn(
        [PaneSpec("a"), PaneSpec("b")], [HISTORY, HISTORY], "parallel", PARAMS, cancel
    ):
        events.append(event)
        if event.kind == "text":
            assert opener.blocking.wait(2)
            cancel.cancel()
    stopped = [e for e in events if e.kind == "failed"]
    assert sorted(e.pane for e in stopped) == [0, 1]
    assert all(e.stopped and e.text == STOPPED for e in stopped)
    assert len(opener.sessions) == 2
    assert all(s.closed == 1 for s in opener.sessions)  # cancelled: not kept, even kept mode
    assert not opener.open_now


def test_cancel_in_sequential_mode_skips_the_panes_not_started() -> None:
    opener = FakeOpener()
    opener.behaviours = {"a": "block"}
    cancel = CancelToken()
    events: list[PaneEvent] = []
    runner = CompareRunner(opener)
    panes = [PaneSpec("a"), PaneSpec("b"), PaneSpec("c")]
    for event in runner.run_turn(panes, [HISTORY] * 3, "sequential", PARAMS, cancel):
        events.append(event)
        if event.kind == "text":
            assert opener.blocking.wait(2)
            cancel.cancel()
    assert [e.text for e in events if e.kind == "failed"] == [STOPPED, STOPPED, STOPPED]
    assert opener.log == [("open", "a"), ("close", "a")]


def test_sequential_closes_each_pane_before_opening_the_next() -> None:
    opener = FakeOpener()
    runner = CompareRunner(opener, keep_loaded=True)
    events = run(runner, [PaneSpec("a"), PaneSpec("b"), PaneSpec("c")], "sequential")
    assert opener.log == [
        ("open", "a"),
        ("close", "a"),
        ("open", "b"),
        ("close", "b"),
        ("open", "c"),
        ("close", "c"),
    ]
    assert opener.most_open == 1
    assert [e.kind for e in events[:2]] == ["waiting", "waiting"]
    assert [e.pane for e in events if e.kind == "done"] == [0, 1, 2]


def test_keep_loaded_reuses_sessions_between_parallel_turns_until_close() -> None:
    opener = FakeOpener()
    runner = CompareRunner(opener, keep_loaded=True)
    first = run(runner, [PaneSpec("a"), PaneSpec("b")], "parallel")
    second = run(runner, [PaneSpec("a"), PaneSpec("b")], "parallel")
    assert len(opener.sessions) == 2
    assert "unloaded" not in [e.kind for e in first + second]
    assert kinds(second, 0)[0] == "loaded"
    runner.close()
    runner.close()
    assert all(s.closed == 1 for s in opener.sessions)


def test_keep_loaded_replaces_a_pane_whose_model_changed() -> None:
    opener = FakeOpener()
    runner = CompareRunner(opener, keep_loaded=True)
    run(runner, [PaneSpec("a"), PaneSpec("b")], "parallel")
    run(runner, [PaneSpec("a"), PaneSpec("c")], "parallel")
    assert ("close", "b") in opener.log
    assert [s.choice for s in opener.sessions] == ["a", "b", "c"] or [
        s.choice for s in opener.sessions
    ] == ["b", "a", "c"]
    runner.close()
    assert not opener.open_now


def test_each_pane_gets_its_history_its_system_prompt_and_its_params() -> None:
    opener = FakeOpener()
    own = GenerationParams(temperature=0.5, max_tokens=4)
    panes = [PaneSpec("a"), PaneSpec("b", params=own, system_prompt="Be terse.")]
    histories = [
        (ChatMessage("system", "Shared."), ChatMessage("user", "Q1")),
        (ChatMessage("system", "Shared."), ChatMessage("user", "Q2")),
    ]
    list(CompareRunner(opener).run_turn(panes, histories, "sequential", PARAMS, CancelToken()))
    requests = dict(opener.requests)
    assert requests["a"].messages == histories[0]
    assert requests["a"].params == PARAMS
    assert requests["b"].messages == (ChatMessage("system", "Be terse."), ChatMessage("user", "Q2"))
    assert requests["b"].params == own


def test_an_empty_pane_system_prompt_removes_the_shared_one() -> None:
    request = pane_request(
        PaneSpec("a", system_prompt=""),
        (ChatMessage("system", "Shared."), ChatMessage("user", "Q")),
        PARAMS,
    )
    assert request.messages == (ChatMessage("user", "Q"),)


def test_histories_must_match_the_panes() -> None:
    with pytest.raises(ValueError, match="2 panes but 1 histories"):
        run_turn = CompareRunner(FakeOpener()).run_turn(
            [PaneSpec("a"), PaneSpec("b")], [HISTORY], "parallel", PARAMS, CancelToken()
        )
        next(run_turn)
