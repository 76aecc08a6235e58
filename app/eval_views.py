"""Frozen views of stored eval sets, cases, runs and results (what the UI and CLI get)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.evals import CaseSpec
from app.store import EvalCase, EvalResult, EvalRun
from runtimes.base import GenerationParams


@dataclass(frozen=True, slots=True)
class CaseView:
    """A stored case; `spec` gives what the scorer needs."""

    id: int
    set_id: int
    position: int
    prompt: str
    expected: str
    scorer: str
    system_prompt: str
    options: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def spec(self) -> CaseSpec:
        """The case as a `CaseSpec` (for scoring and saving to a file)."""
        return CaseSpec(self.prompt, self.expected, self.scorer, self.system_prompt, self.options)


@dataclass(frozen=True, slots=True)
class SetSummary:
    """A set in the list: its name, where it came from, how many cases."""

    id: int
    name: str
    source_path: str
    case_count: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SetView:
    """A set with its cases in order."""

    id: int
    name: str
    source_path: str
    cases: tuple[CaseView, ...]


@dataclass(frozen=True, slots=True)
class RunView:
    """An eval run: which set, which models (choices, in run order), the sampling used."""

    id: int
    set_id: int
    set_name: str
    status: str
    models: tuple[str, ...]
    params: GenerationParams
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class ResultView:
    """One model's reply to one case, its verdict and figures (`error`: it never ran)."""

    id: int
    run_id: int
    case_id: int
    model: str
    model_name: str
    reply: str
    passed: bool | None
    detail: str
    error: str
    decode_tps: float | None
    ttft_ms: float | None
    completion_tokens: int | None
    peak_memory_bytes: int | None


def params_from_dict(raw: dict[str, Any]) -> GenerationParams:
    """`GenerationParams` back from its stored `as_dict()` form (unknown keys ignored)."""
    known = {name: raw[name] for name in GenerationParams.__dataclass_fields__ if name in raw}
    if "stop" in known:
        known["stop"] = tuple(known["stop"])
    return GenerationParams(**known)


def case_view(row: EvalCase) -> CaseView:
    return CaseView(
        row.id,
        row.set_id,
        row.position,
        row.prompt,
        row.expected,
        row.scorer,
        row.system_prompt,
        dict(row.options or {}),
    )


def run_view(row: EvalRun, set_name: str) -> RunView:
    return RunView(
        row.id,
        row.set_id,
        set_name,
        row.status,
        tuple(str(m) for m in row.models),
        params_from_dict(dict(row.params or {})),
        row.created_at,
        row.finished_at,
    )


def result_view(row: EvalResult) -> ResultView:
    return ResultView(
        row.id,
        row.run_id,
        row.case_id,
        row.model,
        row.model_name,
        row.reply,
        row.passed,
        row.detail,
        row.error,
        row.decode_tps,
        row.ttft_ms,
        row.completion_tokens,
        row.peak_memory_bytes,
    )
