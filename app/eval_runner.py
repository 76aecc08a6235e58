"""Running an eval set across models: one model at a time, every case, scored and recorded.

Sequential on purpose: one model is loaded at a time, so speeds and memory are fair and
any set fits wherever its largest model fits. Results are written case by case, so a
cancelled or crashed run resumes where it stopped (cases already recorded are skipped; cases
that errored are tried again). A model that fails to load gets its cases marked with the
error and the run goes on with the next model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from app.errors import LoadCancelled, RuntimeCrashed, WorkbenchError
from app.eval_report import fallback_name
from app.eval_store import CaseView, EvalStore, ResultView
from app.model_session import ModelSession, SessionOpener
from app.scorers import Score, score
from runtimes.base import CancelToken, ChatMessage, ChatRequest, GenerationParams

log = logging.getLogger(__name__)

ProgressPhase = Literal["loading", "result", "load_failed"]


@dataclass(frozen=True, slots=True)
class EvalProgress:
    """Where a run stands, after each recorded result (and before each model's load).

    Attributes:
        done: results recorded in this run so far (including those of earlier attempts).
        total: cases × models.
        model: the choice being run.
        model_name: its display name (the choice's file or model name until it loads).
        case_index: position of the case just recorded (-1 while loading).
        eta_seconds: estimated seconds left; None until a case has finished.
        result: the result just recorded (None while loading).
        phase: "loading" (a model is about to load), "result", or "load_failed" (its
            cases were marked with `message`).
        message: the load error, for "load_failed".
    """

    done: int
    total: int
    model: str
    model_name: str
    case_index: int
    eta_seconds: float | None
    result: ResultView | None
    phase: ProgressPhase = "result"
    message: str = ""


class _Pace:
    """Seconds per case: this model's (its load spread over its cases) and the run's."""

    def __init__(self) -> None:
        self.run_seconds = 0.0
        self.run_cases = 0
        self.model_seconds = 0.0
        self.model_cases = 0

    def start_model(self, load_seconds: float) -> None:
        self.model_seconds, self.model_cases = load_seconds, 0
        self.run_seconds += load_seconds

    def case_done(self, seconds: float) -> None:
        self.model_seconds += seconds
        self.model_cases += 1
        self.run_seconds += seconds
        self.run_cases += 1

    def eta(self, left_this_model: int, left_after: int) -> float | None:
        if self.run_cases == 0:
            return None
        run_rate = self.run_seconds / self.run_cases
        model_rate = self.model_seconds / self.model_cases if self.model_cases else run_rate
        return left_this_model * model_rate + left_after * run_rate


class EvalRunner:
    """Runs a stored eval run through its models.

    Args:
        opener: loads models (`app.model_session.LocalSessionOpener`, or a fake in tests).
        store: where the run, its set and its results live. Results are written from the
            thread that iterates `run()`.
        clock: monotonic seconds (injected by tests).
    """

    def __init__(
        self,
        opener: SessionOpener,
        store: EvalStore,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._opener = opener
        self._store = store
        self._clock = clock

    def run(self, run_id: int, cancel: CancelToken) -> Iterator[EvalProgress]:
        """Run (or resume) `run_id`, yielding progress; ends with the run "complete", or
        "cancelled" (resumable) when `cancel` was set or the iteration was abandoned.

        Raises:
            UserFacingError: the run or its set no longer exists.
        """
        run = self._store.run(run_id)
        cases = self._store.get_set(run.set_id).cases
        case_ids = {c.id for c in cases}
        recorded = {
            (r.case_id, r.model)
            for r in self._store.results(run_id)
            if not r.error and r.case_id in case_ids
        }
        total = len(cases) * len(run.models)
        state = _RunState(done=len(recorded), total=total, pace=_Pace())
        self._store.set_status(run_id, "running")
        status = "cancelled"
        try:
            for index, model in enumerate(run.models):
                if cancel.cancelled:
                    break
                todo = [c for c in cases if (c.id, model) not in recorded]
                later = sum(
                    1 for m in run.models[index + 1 :] for c in cases if (c.id, m) not in recorded
                )
                yield from self._run_model(run_id, model, todo, later, run.params, cancel, state)
            if not cancel.cancelled:
                status = "complete"
        except Exception:
            status = "failed"
            raise
        finally:
            self._store.finish_run(run_id, status)

    def _run_model(
        self,
        run_id: int,
        model: str,
        todo: Sequence[CaseView],
        later: int,
        params: GenerationParams,
        cancel: CancelToken,
        state: _RunState,
    ) -> Iterator[EvalProgress]:
        if not todo:
            return
        name = fallback_name(model)
        eta = state.pace.eta(len(todo), later)
        yield EvalProgress(state.done, state.total, model, name, -1, eta, None, "loading")
        started = self._clock()
        try:
            session: ModelSession = self._opener.open(model, None, cancel)
        except LoadCancelled:
            return
        except WorkbenchError as exc:
            if cancel.cancelled:
                return
            yield from self._mark_failed(run_id, model, name, todo, later, exc, state)
            return
        state.pace.start_model(self._clock() - started)
        try:
            for position, case in enumerate(todo):
                if cancel.cancelled:
                    return
                if state.crashed:  # the worker died on the last case: load it again
                    state.crashed = False
                    session.close()
                    try:
                        session = self._opener.open(model, None, cancel)
                    except WorkbenchError as exc:
                        if cancel.cancelled:
                            return
                        rest = todo[position:]
                        yield from self._mark_failed(run_id, model, name, rest, later, exc, state)
                        return
                result = self._run_case(run_id, session, case, params, cancel, state)
                if result is None:  # cancelled mid-reply: not recorded, redone on resume
                    return
                state.done += 1
                eta = state.pace.eta(len(todo) - position - 1, later)
                yield EvalProgress(
                    state.done, state.total, model, session.name, case.position, eta, result
                )
        finally:
            session.close()

    def _run_case(
        self,
        run_id: int,
        session: ModelSession,
        case: CaseView,
        params: GenerationParams,
        cancel: CancelToken,
        state: _RunState,
    ) -> ResultView | None:
        messages = []
        if case.system_prompt:
            messages.append(ChatMessage("system", case.system_prompt))
        messages.append(ChatMessage("user", case.prompt))
        started = self._clock()
        try:
            reply, figures = session.generate(ChatRequest(tuple(messages), params), cancel)
        except WorkbenchError as exc:
            if cancel.cancelled:
                return None
            log.warning("eval case %s on %s failed: %s", case.id, session.choice, exc)
            state.pace.case_done(self._clock() - started)
            state.crashed = isinstance(exc, RuntimeCrashed)
            return self._store.record_result(
                run_id,
                case.id,
                session.choice,
                "",
                Score(False, "error"),
                model_name=session.name,
                error=exc.message,
            )
        if cancel.cancelled:
            return None
        state.pace.case_done(self._clock() - started)
        return self._store.record_result(
            run_id,
            case.id,
            session.choice,
            reply,
            score(case.spec, reply),
            model_name=session.name,
            decode_tps=figures.decode_tps,
            ttft_ms=figures.ttft_ms,
            completion_tokens=figures.completion_tokens,
            peak_memory_bytes=figures.peak_memory_bytes,
        )

    def _mark_failed(
        self,
        run_id: int,
        model: str,
        name: str,
        todo: Sequence[CaseView],
        later: int,
        exc: WorkbenchError,
        state: _RunState,
    ) -> Iterator[EvalProgress]:
        log.warning("eval model %s failed to load: %s", model, exc)
        message = f"Could not load the model: {exc.message}"
        for case in todo:
            result = self._store.record_result(
                run_id, case.id, model, "", Score(False, "error"), model_name=name, error=message
            )
            state.done += 1
            eta = state.pace.eta(0, later)
            yield EvalProgress(
                state.done, state.total, model, name, case.position, eta, result, "load_failed",
                message,
            )  # fmt: skip


@dataclass(slots=True)
class _RunState:
    done: int
    total: int
    pace: _Pace
    crashed: bool = False
