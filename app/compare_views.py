"""Frozen views of saved comparisons (what `app.compare.CompareService` hands out)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.compare_runner import PaneSpec
from app.model_session import RunFigures
from app.store.compare_models import CompareReply
from runtimes.base import GenerationParams, LoadOptions


@dataclass(frozen=True, slots=True)
class PaneView:
    """A pane of a saved comparison."""

    id: int
    position: int
    choice: str
    name: str
    runtime: str
    quant: str
    load: LoadOptions | None
    params: GenerationParams | None

    def spec(self, system_prompt: str | None = None) -> PaneSpec:
        """The pane as the runner takes it."""
        return PaneSpec(self.choice, self.name, self.load, self.params, system_prompt)


@dataclass(frozen=True, slots=True)
class ReplyView:
    """A pane's reply to a turn; `figures` None when it never produced any."""

    pane_id: int
    text: str
    status: str
    error: str
    figures: RunFigures | None


@dataclass(frozen=True, slots=True)
class TurnView:
    """A prompt sent to every pane, its replies, and the vote.

    Attributes:
        voted: whether the user judged this turn.
        winner_pane_id: the better pane; None with `voted` True is a tie.
    """

    id: int
    position: int
    prompt: str
    mode: str
    created_at: datetime
    replies: tuple[ReplyView, ...] = ()
    voted: bool = False
    winner_pane_id: int | None = None

    def reply_of(self, pane_id: int) -> ReplyView | None:
        """The reply of pane `pane_id`, if any."""
        return next((r for r in self.replies if r.pane_id == pane_id), None)


@dataclass(frozen=True, slots=True)
class RunView:
    """A whole comparison."""

    id: int
    title: str
    mode: str
    system_prompt: str
    params: GenerationParams
    source_conversation_id: int | None
    created_at: datetime
    updated_at: datetime
    panes: tuple[PaneView, ...]
    turns: tuple[TurnView, ...]


@dataclass(frozen=True, slots=True)
class RunSummary:
    """A comparison in the list of saved ones."""

    id: int
    title: str
    mode: str
    models: tuple[str, ...]
    turn_count: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class WinRate:
    """A model's record across every judged turn: rate = (wins + ties / 2) / turns."""

    model: str
    wins: int
    losses: int
    ties: int
    turns: int
    rate: float


def params_from(data: dict[str, Any] | None) -> GenerationParams | None:
    """GenerationParams from their stored form (unknown keys ignored)."""
    if data is None:
        return None
    names = {f.name for f in dataclasses.fields(GenerationParams)}
    values = {k: v for k, v in data.items() if k in names}
    if "stop" in values:
        values["stop"] = tuple(values["stop"] or ())
    return GenerationParams(**values)


def load_from(data: dict[str, Any] | None) -> LoadOptions | None:
    """LoadOptions from their stored form (unknown keys ignored)."""
    if data is None:
        return None
    names = {f.name for f in dataclasses.fields(LoadOptions)}
    return LoadOptions(**{k: v for k, v in data.items() if k in names})


def reply_view(row: CompareReply) -> ReplyView:
    figures = None
    if row.ttft_ms is not None or row.completion_tokens is not None:
        figures = RunFigures(
            load_seconds=row.load_seconds,
            ttft_ms=row.ttft_ms or 0.0,
            decode_tps=row.decode_tps or 0.0,
            prompt_tps=row.prompt_tps,
            prompt_tokens=row.prompt_tokens or 0,
            completion_tokens=row.completion_tokens or 0,
            total_seconds=row.total_seconds or 0.0,
            peak_memory_bytes=row.peak_memory_bytes,
        )
    return ReplyView(row.pane_id, row.text, row.status, row.error, figures)
