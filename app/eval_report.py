"""What an eval run says: per-model summaries, the difference between two runs, and exports.

The JSON export is exactly what `llm-workbench eval --json` prints (`EvalReport.as_dict`),
and `load_exported_json` reads it back; the CSV export has one row per case and model.
"""

from __future__ import annotations

import csv
import json
import statistics
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.errors import UserFacingError

if TYPE_CHECKING:
    from app.eval_store import CaseView, EvalStore, ResultView


@dataclass(frozen=True, slots=True)
class ModelSummary:
    """How one model did in a run.

    Attributes:
        model: the choice (a .gguf path or "<runtime>::<model>").
        model_name: its display name.
        passed: results that passed.
        total: cases in the set.
        judged: results with a verdict (scored, judged by hand, or errors); manual cases
            not judged yet and cases not run yet are left out.
        score: passed / judged, None when nothing is judged.
        errors: results that never ran (load failure, crash).
        decode_tokens_per_second: mean decode speed over its replies (None: no figures).
        peak_memory_bytes: the largest peak memory seen (None: not measured, e.g. a server).
    """

    model: str
    model_name: str
    passed: int
    total: int
    judged: int
    score: float | None
    errors: int = 0
    decode_tokens_per_second: float | None = None
    peak_memory_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class CaseDiff:
    """A case's verdict for one model in an old run and a new one (None: none / not judged)."""

    case_id: int
    position: int
    prompt: str
    model: str
    was: bool | None
    now: bool | None

    @property
    def changed(self) -> bool:
        """Whether the verdict differs."""
        return self.was != self.now


@dataclass(frozen=True, slots=True)
class ReportResult:
    """A model's reply to a case, as exported."""

    passed: bool | None
    reply: str
    detail: str
    error: str = ""


@dataclass(frozen=True, slots=True)
class ReportCase:
    """A case and each model's result (keyed by model choice)."""

    prompt: str
    expected: str
    scorer: str
    system_prompt: str
    results: dict[str, ReportResult]


@dataclass(frozen=True, slots=True)
class EvalReport:
    """A whole run: the JSON of `llm-workbench eval --json` and of the JSON export."""

    set_name: str
    run_id: int
    status: str
    models: tuple[ModelSummary, ...]
    cases: tuple[ReportCase, ...]

    def as_dict(self) -> dict[str, Any]:
        """The JSON form: `set`, `run_id`, `status`, `models`, `cases`."""
        return {
            "set": self.set_name,
            "run_id": self.run_id,
            "status": self.status,
            "models": [_summary_dict(m) for m in self.models],
            "cases": [
                {
                    "prompt": c.prompt,
                    "expected": c.expected,
                    "scorer": c.scorer,
                    "system": c.system_prompt,
                    "results": {
                        model: {
                            "passed": r.passed,
                            "reply": r.reply,
                            "detail": r.detail,
                            "error": r.error,
                        }
                        for model, r in c.results.items()
                    },
                }
                for c in self.cases
            ],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> EvalReport:
        """Read back `as_dict()` output.

        Raises:
            KeyError, TypeError, ValueError: not an eval export.
        """
        models = tuple(
            ModelSummary(
                model=m["model"],
                model_name=m["model_name"],
                passed=int(m["passed"]),
                total=int(m["total"]),
                judged=int(m["judged"]),
                score=m["score"],
                errors=int(m["errors"]),
                decode_tokens_per_second=m["decode_tokens_per_second"],
                peak_memory_bytes=m["peak_memory_bytes"],
            )
            for m in raw["models"]
        )
        cases = tuple(
            ReportCase(
                c["prompt"],
                c["expected"],
                c["scorer"],
                c.get("system", ""),
                {k: ReportResult(**v) for k, v in c["results"].items()},
            )
            for c in raw["cases"]
        )
        return cls(raw["set"], int(raw["run_id"]), raw["status"], models, cases)


def _summary_dict(m: ModelSummary) -> dict[str, Any]:
    return {
        "model": m.model,
        "model_name": m.model_name,
        "passed": m.passed,
        "total": m.total,
        "judged": m.judged,
        "score": m.score,
        "errors": m.errors,
        "decode_tokens_per_second": m.decode_tokens_per_second,
        "peak_memory_bytes": m.peak_memory_bytes,
    }


def summarize(models: tuple[str, ...], total: int, results: list[ResultView]) -> list[ModelSummary]:
    """Per-model figures of a run, in the run's model order."""
    out = []
    for model in models:
        mine = [r for r in results if r.model == model]
        judged = [r for r in mine if r.passed is not None]
        passed = sum(1 for r in judged if r.passed)
        speeds = [r.decode_tps for r in mine if r.decode_tps is not None and not r.error]
        peaks = [r.peak_memory_bytes for r in mine if r.peak_memory_bytes is not None]
        name = next((r.model_name for r in mine if r.model_name), "") or fallback_name(model)
        out.append(
            ModelSummary(
                model=model,
                model_name=name,
                passed=passed,
                total=total,
                judged=len(judged),
                score=passed / len(judged) if judged else None,
                errors=sum(1 for r in mine if r.error),
                decode_tokens_per_second=statistics.fmean(speeds) if speeds else None,
                peak_memory_bytes=max(peaks) if peaks else None,
            )
        )
    return out


def fallback_name(choice: str) -> str:
    """A readable name for a model choice no session named (it never loaded)."""
    if "::" in choice:
        return choice.split("::", 1)[1]
    return Path(choice).stem or choice


def build_report(store: EvalStore, run_id: int) -> EvalReport:
    """The report of a run, from the store."""
    run = store.run(run_id)
    cases: tuple[CaseView, ...] = store.get_set(run.set_id).cases
    results = store.results(run_id)
    by_case: dict[int, dict[str, ReportResult]] = {c.id: {} for c in cases}
    for r in results:
        if r.case_id in by_case:
            by_case[r.case_id][r.model] = ReportResult(r.passed, r.reply, r.detail, r.error)
    report_cases = tuple(
        ReportCase(c.prompt, c.expected, c.scorer, c.system_prompt, by_case[c.id]) for c in cases
    )
    summaries = tuple(summarize(run.models, len(cases), results))
    return EvalReport(run.set_name, run.id, run.status, summaries, report_cases)


def compare(store: EvalStore, old_run_id: int, new_run_id: int) -> list[CaseDiff]:
    """Per case and model, the old and the new verdict. Cases are matched by id when both
    runs used the same set, else by prompt; models by choice. Only pairs in both runs."""
    old_run, new_run = store.run(old_run_id), store.run(new_run_id)
    old_cases = store.get_set(old_run.set_id).cases
    new_cases = store.get_set(new_run.set_id).cases
    old_verdicts = {(r.case_id, r.model): r.passed for r in store.results(old_run_id)}
    new_verdicts = {(r.case_id, r.model): r.passed for r in store.results(new_run_id)}
    old_by_prompt = {c.prompt: c.id for c in old_cases}
    same_set = old_run.set_id == new_run.set_id
    diffs = []
    for case in new_cases:
        old_id = case.id if same_set else old_by_prompt.get(case.prompt)
        if old_id is None:
            continue
        for model in new_run.models:
            if model not in old_run.models:
                continue
            if (old_id, model) not in old_verdicts or (case.id, model) not in new_verdicts:
                continue
            was, now = old_verdicts[(old_id, model)], new_verdicts[(case.id, model)]
            diffs.append(CaseDiff(case.id, case.position, case.prompt, model, was, now))
    return diffs


@dataclass(frozen=True, slots=True)
class ExportRow:
    """One row of the CSV export: a case and a model."""

    case: int
    prompt: str
    expected: str
    scorer: str
    model: str
    model_name: str
    passed: bool | None
    detail: str
    reply: str
    error: str
    decode_tps: float | None
    ttft_ms: float | None
    completion_tokens: int | None
    peak_memory_bytes: int | None


EXPORT_COLUMNS = tuple(f.name for f in fields(ExportRow))


def export_rows(store: EvalStore, run_id: int) -> list[ExportRow]:
    """The CSV export's rows, in case then model order (case numbers start at 1)."""
    run = store.run(run_id)
    cases = {c.id: c for c in store.get_set(run.set_id).cases}
    rows = []
    for r in store.results(run_id):
        c = cases[r.case_id]
        rows.append(
            ExportRow(
                c.position + 1, c.prompt, c.expected, c.scorer, r.model, r.model_name,
                r.passed, r.detail, r.reply, r.error, r.decode_tps, r.ttft_ms,
                r.completion_tokens, r.peak_memory_bytes,
            )
        )  # fmt: skip
    return rows


def write_csv(rows: list[ExportRow], path: Path) -> None:
    """Write the CSV export (passed as "pass", "fail" or "" for not judged).

    Raises:
        UserFacingError: the file cannot be written.
    """
    try:
        with Path(path).open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(EXPORT_COLUMNS)
            for row in rows:
                writer.writerow([_cell(getattr(row, name)) for name in EXPORT_COLUMNS])
    except OSError as exc:
        raise UserFacingError(
            f"Cannot write {path}: {exc.strerror}. Choose another place."
        ) from exc


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "pass" if value else "fail"
    return str(value)


def read_csv(path: Path) -> list[ExportRow]:
    """Read a CSV export back (for checks and re-imports)."""
    with Path(path).open(encoding="utf-8-sig", newline="") as f:
        return [_row_from_cells(cells) for cells in csv.DictReader(f)]


def _row_from_cells(cells: dict[str, str]) -> ExportRow:
    def opt_float(name: str) -> float | None:
        return float(cells[name]) if cells[name] else None

    def opt_int(name: str) -> int | None:
        return int(cells[name]) if cells[name] else None

    passed = {"pass": True, "fail": False, "": None}[cells["passed"]]
    return ExportRow(
        int(cells["case"]), cells["prompt"], cells["expected"], cells["scorer"],
        cells["model"], cells["model_name"], passed, cells["detail"], cells["reply"],
        cells["error"], opt_float("decode_tps"), opt_float("ttft_ms"),
        opt_int("completion_tokens"), opt_int("peak_memory_bytes"),
    )  # fmt: skip


def write_json(report: EvalReport, path: Path) -> None:
    """Write the JSON export (`EvalReport.as_dict`).

    Raises:
        UserFacingError: the file cannot be written.
    """
    text = json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n"
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserFacingError(
            f"Cannot write {path}: {exc.strerror}. Choose another place."
        ) from exc


def read_json(path: Path) -> EvalReport:
    """Read a JSON export back.

    Raises:
        UserFacingError: the file is not an eval export.
    """
    try:
        return EvalReport.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserFacingError(f"{path} is not an LLM Workbench eval export ({exc}).") from exc
