"""EvalRunner with a fake opener: progress and ETA, resume, cancel, failing loads and crashes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app.errors import ModelLoadFailed, RuntimeCrashed
from app.eval_runner import EvalProgress, EvalRunner
from app.eval_store import EvalStore
from app.evals import make_case
from app.model_session import RunFigures
from app.store import Database, open_database
from runtimes.base import CancelToken, ChatMessage, ChatRequest, GenerationParams, LoadOptions

CASES = [
    make_case("Capital of France?", "Paris"),
    make_case("17 + 25?", "42", "numeric", "Numbers only."),
    make_case("A haiku", "", "manual"),
]
GOOD, BAD, OTHER = "/m/good.gguf", "/m/broken.gguf", "ollama::other"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeSession:
    choice: str
    name: str
    answers: dict[str, str]
    clock: FakeClock
    seconds_per_reply: float
    log: list[str]
    on_generate: Callable[[ChatRequest], None] | None = None
    runtime: str = "llamacpp"
    load_seconds: float | None = 1.0
    requests: list[ChatRequest] = field(default_factory=list)

    def generate(
        self, request: ChatRequest, cancel: CancelToken, on_text: object = None
    ) -> tuple[str, RunFigures]:
        self.requests.append(request)
        self.log.append(f"generate {self.choice}")
        self.clock.now += self.seconds_per_reply
        if self.on_generate is not None:
            self.on_generate(request)
        reply = self.answers.get(request.messages[-1].content, "I do not know")
        return reply, RunFigures(None, 10.0, 50.0, None, 5, 4, 0.1, 1000)

    def count_tokens(self, messages: tuple[ChatMessage, ...]) -> int | None:
        return None

    def close(self) -> None:
        self.log.append(f"close {self.choice}")


class FakeOpener:
    """Loads take `load_seconds` of fake time; choices in `broken` fail to load."""

    def __init__(self, clock: FakeClock, load_seconds: float = 2.0) -> None:
        self.clock = clock
        self.load_seconds = load_seconds
        self.broken: set[str] = set()
        self.log: list[str] = []
        self.answers = {"Capital of France?": "It is Paris.", "17 + 25?": "42"}
        self.on_generate: Callable[[ChatRequest], None] | None = None
        self.sessions: list[FakeSession] = []

    def open(
        self, choice: str, load: LoadOptions | None = None, cancel: CancelToken | None = None
    ) -> FakeSession:
        self.log.append(f"open {choice}")
        self.clock.now += self.load_seconds
        if choice in self.broken:
            raise ModelLoadFailed(f"{choice} is not a model")
        session = FakeSession(choice, f"Name of {Path(choice).name}", self.answers,
                              self.clock, 1.0, self.log, self.on_generate)  # fmt: skip
        self.sessions.append(session)
        return session


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(tmp_path / "history.sqlite3", busy_timeout_s=0.05)
    yield database
    database.close()


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def opener(clock: FakeClock) -> FakeOpener:
    return FakeOpener(clock)


@pytest.fixture()
def store(db: Database) -> EvalStore:
    return EvalStore(db)


def _start(store: EvalStore, models: list[str]) -> int:
    made = store.create_set("basics", CASES)
    return store.start_run(made.id, models, GenerationParams(temperature=0.0, seed=1)).id


def _runner(opener: FakeOpener, store: EvalStore, clock: FakeClock) -> EvalRunner:
    return EvalRunner(opener, store, clock=clock)


def test_each_model_loads_once_runs_every_case_and_closes(
    opener: FakeOpener, store: EvalStore, clock: FakeClock
) -> None:
    run_id = _start(store, [GOOD, OTHER])
    progress = list(_runner(opener, store, clock).run(run_id, CancelToken()))
    assert opener.log == [
        "open /m/good.gguf", *["generate /m/good.gguf"] * 3, "close /m/good.gguf",
        "open ollama::other", *["generate ollama::other"] * 3, "close ollama::other",
    ]  # fmt: skip
    assert [(p.phase, p.done, p.case_index) for p in progress] == [
        ("loading", 0, -1), ("result", 1, 0), ("result", 2, 1), ("result", 3, 2),
        ("loading", 3, -1), ("result", 4, 0), ("result", 5, 1), ("result", 6, 2),
    ]  # fmt: skip
    assert {p.total for p in progress} == {6}
    assert progress[1].model_name == "Name of good.gguf"
    assert store.run(run_id).status == "complete"
    verdicts = [(r.model, r.passed) for r in store.results(run_id)]
    assert verdicts == [(GOOD, True), (OTHER, True), (GOOD, True), (OTHER, True),
                        (GOOD, None), (OTHER, None)]  # fmt: skip


def test_the_request_carries_the_system_prompt_and_the_run_params(
    opener: FakeOpener, store: EvalStore, clock: FakeClock
) -> None:
    run_id = _start(store, [GOOD])
    list(_runner(opener, store, clock).run(run_id, CancelToken()))
    second = opener.sessions[0].requests[1]
    assert second.messages == (
        ChatMessage("system", "Numbers only."),
        ChatMessage("user", "17 + 25?"),
    )
    assert second.params == GenerationParams(temperature=0.0, seed=1)
    assert opener.sessions[0].requests[0].messages == (ChatMessage("user", "Capital of France?"),)


def test_results_keep_the_figures(opener: FakeOpener, store: EvalStore, clock: FakeClock) -> None:
    run_id = _start(store, [GOOD])
    list(_runner(opener, store, clock).run(run_id, CancelToken()))
    first = store.results(run_id)[0]
    assert (first.decode_tps, first.ttft_ms, first.completion_tokens) == (50.0, 10.0, 4)
    assert (first.peak_memory_bytes, first.model_name) == (1000, "Name of good.gguf")
    [summary] = store.summary(run_id)
    assert (summary.passed, summary.judged, summary.score) == (2, 2, 1.0)


def test_eta_uses_the_seconds_per_case_so_far_with_the_load_spread(
    opener: FakeOpener, store: EvalStore, clock: FakeClock
) -> None:
    run_id = _start(store, [GOOD, OTHER])
    etas = [p.eta_seconds for p in _runner(opener, store, clock).run(run_id, CancelToken())]
    # Load 2 s + 1 s per reply: after case 1 of model 1, 3 s per case over 5 cases left;
    # after case 2, (2 + 1 + 1) / 2 = 2 s per case over 4 left.
    assert etas[0] is None
    assert etas[1:4] == [15.0, 4 * 2.0, 3 * (5 / 3)]
    assert etas[4] == pytest.approx(3 * (5 / 3))  # loading the next model: the run's pace
    # The second model's first case: its own pace, (2 + 1) s, for its 2 left.
    assert etas[5] == pytest.approx(2 * 3.0)
    assert etas[-1] == 0.0


def test_a_model_that_fails_to_load_marks_its_cases_and_the_run_goes_on(
    opener: FakeOpener, store: EvalStore, clock: FakeClock
) -> None:
    opener.broken.add(BAD)
    run_id = _start(store, [BAD, GOOD])
    progress = list(_runner(opener, store, clock).run(run_id, CancelToken()))
    failed = [p for p in progress if p.phase == "load_failed"]
    assert len(failed) == 3
    assert failed[0].message == "Could not load the model: /m/broken.gguf is not a model"
    assert store.run(run_id).status == "complete"
    results = [r for r in store.results(run_id) if r.model == BAD]
    assert {(r.passed, r.error, r.model_name) for r in results} == {
        (False, "Could not load the model: /m/broken.gguf is not a model", "broken")
    }
    assert [r.passed for r in store.results(run_id) if r.model == GOOD] == [True, True, None]
    summary = store.summary(run_id)
    assert (summary[0].errors, summary[0].score) == (3, 0.0)


def _cancel_after(
    token: CancelToken, results: int
) -> Callable[[Iterator[EvalProgress]], list[EvalProgress]]:
    def consume(progress: Iterator[EvalProgress]) -> list[EvalProgress]:
        seen = []
        for p in progress:
            seen.append(p)
            if p.phase == "result" and sum(1 for s in seen if s.phase == "result") == results:
                token.cancel()
        return seen

    return consume


def test_cancel_stops_after_the_current_case_and_resume_does_the_rest(
    opener: FakeOpener, store: EvalStore, clock: FakeClock
) -> None:
    run_id = _start(store, [GOOD, OTHER])
    token = CancelToken()
    seen = _cancel_after(token, 2)(_runner(opener, store, clock).run(run_id, token))
    assert [p.done for p in seen if p.phase == "result"] == [1, 2]
    assert store.run(run_id).status == "cancelled"
    assert opener.log[-1] == "close /m/good.gguf"
    assert len(store.results(run_id)) == 2

    opener.log.clear()
    resumed = list(_runner(opener, store, clock).run(run_id, CancelToken()))
    assert [p.done for p in resumed if p.phase == "result"] == [3, 4, 5, 6]
    assert opener.log.count("generate /m/good.gguf") == 1
    assert opener.log.count("generate ollama::other") == 3
    assert store.run(run_id).status == "complete"
    assert len(store.results(run_id)) == 6


def test_a_reply_cancelled_midway_is_not_recorded(
    opener: FakeOpener, store: EvalStore, clock: FakeClock
) -> None:
    run_id = _start(store, [GOOD])
    token = CancelToken()
    opener.on_generate = lambda request: token.cancel()
    list(_runner(opener, store, clock).run(run_id, token))
    assert store.results(run_id) == []
    assert store.run(run_id).status == "cancelled"
    assert opener.log == ["open /m/good.gguf", "generate /m/good.gguf", "close /m/good.gguf"]


def test_resume_skips_recorded_results_and_retries_errors(
    opener: FakeOpener, store: EvalStore, clock: FakeClock
) -> None:
    opener.broken.add(BAD)
    run_id = _start(store, [BAD])
    list(_runner(opener, store, clock).run(run_id, CancelToken()))
    opener.broken.clear()
    opener.log.clear()
    list(_runner(opener, store, clock).run(run_id, CancelToken()))
    assert opener.log.count("generate /m/broken.gguf") == 3
    assert [r.error for r in store.results(run_id)] == ["", "", ""]
    opener.log.clear()
    assert list(_runner(opener, store, clock).run(run_id, CancelToken())) == []
    assert opener.log == []
    assert store.run(run_id).status == "complete"


def test_abandoning_the_iteration_closes_the_model_and_leaves_the_run_resumable(
    opener: FakeOpener, store: EvalStore, clock: FakeClock
) -> None:
    run_id = _start(store, [GOOD])
    progress = _runner(opener, store, clock).run(run_id, CancelToken())
    next(progress)
    next(progress)
    progress.close()
    assert opener.log[-1] == "close /m/good.gguf"
    assert store.run(run_id).status == "cancelled"


def test_a_worker_crash_records_an_error_and_reloads_for_the_next_case(
    opener: FakeOpener, store: EvalStore, clock: FakeClock
) -> None:
    run_id = _start(store, [GOOD])

    def crash_on_france(request: ChatRequest) -> None:
        if request.messages[-1].content == "Capital of France?":
            raise RuntimeCrashed(-9, "killed")

    opener.on_generate = crash_on_france
    list(_runner(opener, store, clock).run(run_id, CancelToken()))
    results = store.results(run_id)
    assert results[0].passed is False
    assert results[0].error.startswith("The model's worker process stopped unexpectedly")
    assert [r.passed for r in results[1:]] == [True, None]
    assert opener.log.count("open /m/good.gguf") == 2
    assert opener.log.count("close /m/good.gguf") == 2
