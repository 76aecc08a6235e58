"""Eval sets, their cases, runs and results in SQLite, handed out as frozen views.

The GUI edits sets in place (add, update, delete, reorder cases); a run records one result
per (case, model) as it goes, so a cancelled or crashed run resumes where it stopped.
Summaries, run-to-run differences and exports live in `app.eval_report`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app import eval_report
from app.errors import UserFacingError
from app.eval_report import CaseDiff, EvalReport, ModelSummary
from app.eval_views import (
    CaseView,
    ResultView,
    RunView,
    SetSummary,
    SetView,
    case_view,
    result_view,
    run_view,
)
from app.evals import CaseSpec, make_case
from app.scorers import Score
from app.store import Database, EvalCase, EvalResult, EvalRun, EvalSet
from app.store.compare_models import EVAL_RUN_STATUSES
from app.store.models import utc_now
from runtimes.base import GenerationParams

__all__ = [
    "CaseView",
    "EvalStore",
    "ResultView",
    "RunView",
    "SetSummary",
    "SetView",
    "source_path_of",
]


class EvalStore:
    """Eval sets, cases, runs and results.

    Args:
        db: the open history database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- sets ---------------------------------------------------------------------------

    def create_set(self, name: str, cases: Sequence[CaseSpec], source_path: str = "") -> SetView:
        """A new set holding `cases` in order.

        Raises:
            UserFacingError: an empty name, or one another set already has.
        """
        name = self._free_name(name)
        with self._db.session() as s:
            row = EvalSet(name=name, source_path=source_path)
            s.add(row)
            s.flush()
            for position, case in enumerate(cases):
                s.add(_case_row(row.id, position, case))
            set_id = row.id
        return self.get_set(set_id)

    def import_set(self, name: str, cases: Sequence[CaseSpec], source_path: str = "") -> SetView:
        """The set loaded from `source_path`: the stored one when its cases are unchanged
        (so runs of the same file can be compared), else a new set with a free name."""
        for summary in self.sets():
            if source_path and summary.source_path == source_path:
                existing = self.get_set(summary.id)
                if [c.spec for c in existing.cases] == list(cases):
                    return existing
        return self.create_set(self.unused_name(name), cases, source_path)

    def unused_name(self, base: str) -> str:
        """`base`, or `base (2)`, `base (3)`... whichever no set has yet."""
        taken = {summary.name for summary in self.sets()}
        name, n = base, 2
        while name in taken:
            name, n = f"{base} ({n})", n + 1
        return name

    def sets(self) -> list[SetSummary]:
        """Every set, most recently changed first."""
        counts = (
            select(EvalCase.set_id, func.count(EvalCase.id).label("n"))
            .group_by(EvalCase.set_id)
            .subquery()
        )
        query = (
            select(EvalSet, counts.c.n)
            .outerjoin(counts, counts.c.set_id == EvalSet.id)
            .order_by(EvalSet.updated_at.desc(), EvalSet.id.desc())
        )
        with self._db.session() as s:
            return [
                SetSummary(row.id, row.name, row.source_path, n or 0, row.updated_at)
                for row, n in s.execute(query)
            ]

    def get_set(self, set_id: int) -> SetView:
        """A set with its cases.

        Raises:
            UserFacingError: no such set (deleted meanwhile).
        """
        with self._db.session() as s:
            row = _get(s, EvalSet, set_id, "eval set")
            cases = s.scalars(
                select(EvalCase).where(EvalCase.set_id == set_id).order_by(EvalCase.position)
            ).all()
            return SetView(row.id, row.name, row.source_path, tuple(case_view(c) for c in cases))

    def rename_set(self, set_id: int, name: str) -> None:
        """Give a set a new name.

        Raises:
            UserFacingError: an empty name, or one another set has.
        """
        name = name.strip()
        with self._db.session() as s:
            row = _get(s, EvalSet, set_id, "eval set")
            if name != row.name:
                self._check_free(s, name)
            row.name = name
            row.updated_at = utc_now()

    def delete_set(self, set_id: int) -> None:
        """Delete a set with its cases, runs and results."""
        with self._db.session() as s:
            s.execute(delete(EvalSet).where(EvalSet.id == set_id))

    # -- cases --------------------------------------------------------------------------

    def add_case(self, set_id: int, case: CaseSpec, position: int | None = None) -> CaseView:
        """Insert a checked case at `position` (None: at the end)."""
        case = _checked(case)
        with self._db.session() as s:
            rows = self._case_rows(s, set_id)
            at = len(rows) if position is None else max(0, min(position, len(rows)))
            row = _case_row(set_id, at, case)
            rows.insert(at, row)
            s.add(row)
            self._renumber(s, set_id, rows)
            s.flush()
            return case_view(row)

    def update_case(self, case_id: int, case: CaseSpec) -> CaseView:
        """Replace a case's prompt, expected answer, scorer, system prompt and options.

        Raises:
            UserFacingError: the case is invalid (bad regex, schema, ...) or gone.
        """
        case = _checked(case)
        with self._db.session() as s:
            row = _get(s, EvalCase, case_id, "eval case")
            row.prompt, row.expected, row.scorer = case.prompt, case.expected, case.scorer
            row.system_prompt, row.options = case.system_prompt, dict(case.options)
            _touch(s, row.set_id)
            return case_view(row)

    def delete_case(self, case_id: int) -> None:
        """Remove a case (and its results in every run)."""
        with self._db.session() as s:
            row = s.get(EvalCase, case_id)
            if row is None:
                return
            set_id = row.set_id
            s.delete(row)
            s.flush()
            self._renumber(s, set_id, self._case_rows(s, set_id))

    def move_case(self, case_id: int, position: int) -> None:
        """Move a case to `position` (clamped), shifting the others."""
        with self._db.session() as s:
            row = _get(s, EvalCase, case_id, "eval case")
            rows = [r for r in self._case_rows(s, row.set_id) if r.id != case_id]
            rows.insert(max(0, min(position, len(rows))), row)
            self._renumber(s, row.set_id, rows)

    def _case_rows(self, s: Session, set_id: int) -> list[EvalCase]:
        _get(s, EvalSet, set_id, "eval set")
        query = select(EvalCase).where(EvalCase.set_id == set_id).order_by(EvalCase.position)
        return list(s.scalars(query).all())

    def _renumber(self, s: Session, set_id: int, rows: list[EvalCase]) -> None:
        for position, row in enumerate(rows):
            row.position = position
        _touch(s, set_id)

    # -- runs and results ---------------------------------------------------------------

    def start_run(self, set_id: int, models: Sequence[str], params: GenerationParams) -> RunView:
        """A new run of a set across `models` (choices), status "running", no results yet.

        Raises:
            UserFacingError: no models, or the set has no cases.
        """
        if not models:
            raise UserFacingError("Choose at least one model to run the eval set on.")
        if not self.get_set(set_id).cases:
            raise UserFacingError("The eval set has no cases; add one first.")
        with self._db.session() as s:
            row = EvalRun(set_id=set_id, models=list(models), params=params.as_dict())
            s.add(row)
            s.flush()
            run_id = row.id
        return self.run(run_id)

    def run(self, run_id: int) -> RunView:
        """A run.

        Raises:
            UserFacingError: no such run.
        """
        with self._db.session() as s:
            row = _get(s, EvalRun, run_id, "eval run")
            set_row = _get(s, EvalSet, row.set_id, "eval set")
            return run_view(row, set_row.name)

    def runs(self, set_id: int | None = None) -> list[RunView]:
        """Runs, newest first (of one set, or all)."""
        query = select(EvalRun, EvalSet.name).join(EvalSet, EvalSet.id == EvalRun.set_id)
        if set_id is not None:
            query = query.where(EvalRun.set_id == set_id)
        with self._db.session() as s:
            rows = s.execute(query.order_by(EvalRun.id.desc())).all()
            return [run_view(row, name) for row, name in rows]

    def delete_run(self, run_id: int) -> None:
        """Delete a run and its results."""
        with self._db.session() as s:
            s.execute(delete(EvalRun).where(EvalRun.id == run_id))

    def set_status(self, run_id: int, status: str) -> None:
        """Mark a run "running" again (resuming) or finish it (see `finish_run`)."""
        if status not in EVAL_RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        with self._db.session() as s:
            row = _get(s, EvalRun, run_id, "eval run")
            row.status = status
            row.finished_at = None if status == "running" else utc_now()

    def finish_run(self, run_id: int, status: str) -> None:
        """End a run: "complete", "cancelled" (resumable) or "failed"."""
        self.set_status(run_id, status)

    def results(self, run_id: int) -> list[ResultView]:
        """Every result of a run, in case order then model order of the run."""
        with self._db.session() as s:
            run = _get(s, EvalRun, run_id, "eval run")
            order = {model: i for i, model in enumerate(run.models)}
            query = (
                select(EvalResult, EvalCase.position)
                .join(EvalCase, EvalCase.id == EvalResult.case_id)
                .where(EvalResult.run_id == run_id)
            )
            rows = list(s.execute(query).all())
        rows.sort(key=lambda r: (r[1], order.get(r[0].model, len(order)), r[0].model))
        return [result_view(row) for row, _position in rows]

    def record_result(
        self,
        run_id: int,
        case_id: int,
        model: str,
        reply: str,
        score: Score,
        *,
        model_name: str = "",
        error: str = "",
        decode_tps: float | None = None,
        ttft_ms: float | None = None,
        completion_tokens: int | None = None,
        peak_memory_bytes: int | None = None,
    ) -> ResultView:
        """Store (or replace) the result of `model` on a case in a run."""
        with self._db.session() as s:
            row = s.scalars(
                select(EvalResult).where(
                    EvalResult.run_id == run_id,
                    EvalResult.case_id == case_id,
                    EvalResult.model == model,
                )
            ).one_or_none()
            if row is None:
                row = EvalResult(run_id=run_id, case_id=case_id, model=model)
                s.add(row)
            row.model_name, row.reply, row.error = model_name, reply, error
            row.passed, row.detail = score.passed, score.detail
            row.decode_tps, row.ttft_ms = decode_tps, ttft_ms
            row.completion_tokens, row.peak_memory_bytes = completion_tokens, peak_memory_bytes
            row.created_at = utc_now()
            s.flush()
            return result_view(row)

    def judge(self, result_id: int, passed: bool | None) -> ResultView:
        """Set a verdict by hand (manual cases; also overrides a scorer). None: unjudged."""
        with self._db.session() as s:
            row = _get(s, EvalResult, result_id, "eval result")
            row.passed = passed
            verdict = {True: "pass", False: "fail", None: "waiting for a judgment"}[passed]
            row.detail = verdict if passed is None else f"judged {verdict} by hand"
            return result_view(row)

    # -- reports --------------------------------------------------------------------------

    def summary(self, run_id: int) -> list[ModelSummary]:
        """Per-model score, mean decode speed and peak memory, in the run's model order."""
        run = self.run(run_id)
        total = len(self.get_set(run.set_id).cases)
        return eval_report.summarize(run.models, total, self.results(run_id))

    def report(self, run_id: int) -> EvalReport:
        """The whole run as the CLI's JSON / the JSON export describes it."""
        return eval_report.build_report(self, run_id)

    def compare_runs(self, old_run_id: int, new_run_id: int) -> list[CaseDiff]:
        """Per case and model, the verdict then and now (see `CaseDiff.changed`)."""
        return eval_report.compare(self, old_run_id, new_run_id)

    def export_csv(self, run_id: int, path: Path) -> None:
        """Write one row per case and model (see `app.eval_report.ExportRow`)."""
        eval_report.write_csv(eval_report.export_rows(self, run_id), path)

    def export_json(self, run_id: int, path: Path) -> None:
        """Write the run's report as JSON (the same as `llm-workbench eval --json`)."""
        eval_report.write_json(self.report(run_id), path)

    @staticmethod
    def load_exported_json(path: Path) -> EvalReport:
        """Read a JSON export back."""
        return eval_report.read_json(path)

    # -- helpers --------------------------------------------------------------------------

    def _free_name(self, name: str) -> str:
        name = name.strip()
        with self._db.session() as s:
            self._check_free(s, name)
        return name

    def _check_free(self, s: Session, name: str) -> None:
        if not name:
            raise UserFacingError("An eval set needs a name.")
        if s.scalars(select(EvalSet.id).where(EvalSet.name == name)).first() is not None:
            raise UserFacingError(f"There is already an eval set named {name!r}; pick another.")


def _get(s: Session, model: Any, key: int, what: str) -> Any:
    row = s.get(model, key)
    if row is None:
        raise UserFacingError(f"The {what} #{key} no longer exists; it may have been deleted.")
    return row


def _touch(s: Session, set_id: int) -> None:
    row = s.get(EvalSet, set_id)
    if row is not None:
        row.updated_at = utc_now()


def _checked(case: CaseSpec) -> CaseSpec:
    return make_case(case.prompt, case.expected, case.scorer, case.system_prompt, case.options)


def _case_row(set_id: int, position: int, case: CaseSpec) -> EvalCase:
    return EvalCase(
        set_id=set_id,
        position=position,
        prompt=case.prompt,
        system_prompt=case.system_prompt,
        expected=case.expected,
        scorer=case.scorer,
        options=dict(case.options),
    )


def source_path_of(path: Path) -> str:
    """How a set's source file is remembered (absolute, resolved)."""
    return str(Path(path).expanduser().resolve())
