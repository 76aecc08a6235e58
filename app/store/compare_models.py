"""ORM models of side-by-side comparisons and eval sets (schema: migration 0005_compare_evals).

A comparison run has 2–4 panes (a model each), turns (one prompt sent to every pane), a reply
per pane and turn with its figures, and at most one vote per turn (a winning pane, or a tie:
`winner_pane_id` NULL). An eval set has cases; an eval run scores every case on each model
and keeps one result per (case, model).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.store.models import Base, UtcDateTime, utc_now

COMPARE_MODES = ("auto", "parallel", "sequential")
EVAL_RUN_STATUSES = ("running", "complete", "cancelled", "failed")
EVAL_SCORERS = ("exact", "contains", "regex", "json_valid", "json_schema", "numeric", "manual")


class CompareRun(Base):
    """One comparison: its panes, turns and the settings they share."""

    __tablename__ = "compare_runs"
    __table_args__ = (
        CheckConstraint(f"mode IN {COMPARE_MODES!r}", name="mode"),
        Index("ix_compare_runs_updated_at", "updated_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(16), default="auto")
    system_prompt: Mapped[str] = mapped_column(Text, default="")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source_conversation_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class ComparePane(Base):
    """A model in a comparison, with its own load options and parameter overrides."""

    __tablename__ = "compare_panes"
    __table_args__ = (UniqueConstraint("run_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("compare_runs.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    choice: Mapped[str] = mapped_column(Text)
    model_name: Mapped[str] = mapped_column(String(255), default="")
    runtime: Mapped[str] = mapped_column(String(64), default="")
    quant: Mapped[str] = mapped_column(String(32), default="")
    load_options: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class CompareTurn(Base):
    """One prompt sent to every pane, and how it ran (parallel or sequential)."""

    __tablename__ = "compare_turns"
    __table_args__ = (UniqueConstraint("run_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("compare_runs.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    prompt: Mapped[str] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class CompareReply(Base):
    """A pane's reply to a turn, with the figures measured while it ran."""

    __tablename__ = "compare_replies"
    __table_args__ = (UniqueConstraint("turn_id", "pane_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    turn_id: Mapped[int] = mapped_column(ForeignKey("compare_turns.id", ondelete="CASCADE"))
    pane_id: Mapped[int] = mapped_column(ForeignKey("compare_panes.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="complete")
    error: Mapped[str] = mapped_column(Text, default="")
    load_seconds: Mapped[float | None] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    decode_tps: Mapped[float | None] = mapped_column(Float)
    prompt_tps: Mapped[float | None] = mapped_column(Float)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    total_seconds: Mapped[float | None] = mapped_column(Float)
    peak_memory_bytes: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class CompareVote(Base):
    """The user's pick for a turn: the better pane, or a tie (`winner_pane_id` None)."""

    __tablename__ = "compare_votes"

    turn_id: Mapped[int] = mapped_column(
        ForeignKey("compare_turns.id", ondelete="CASCADE"), primary_key=True
    )
    winner_pane_id: Mapped[int | None] = mapped_column(
        ForeignKey("compare_panes.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class EvalSet(Base):
    """A named set of eval cases (imported from JSONL/CSV or written in the app)."""

    __tablename__ = "eval_sets"
    __table_args__ = (UniqueConstraint("name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    source_path: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class EvalCase(Base):
    """One case: a prompt, what a good answer is, and how to score it."""

    __tablename__ = "eval_cases"
    __table_args__ = (Index("ix_eval_cases_set_id_position", "set_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    set_id: Mapped[int] = mapped_column(ForeignKey("eval_sets.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    prompt: Mapped[str] = mapped_column(Text)
    system_prompt: Mapped[str] = mapped_column(Text, default="")
    expected: Mapped[str] = mapped_column(Text, default="")
    scorer: Mapped[str] = mapped_column(String(16), default="contains")
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class EvalRun(Base):
    """One run of a set across models (resumable: results are written case by case)."""

    __tablename__ = "eval_runs"
    __table_args__ = (CheckConstraint(f"status IN {EVAL_RUN_STATUSES!r}", name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    set_id: Mapped[int] = mapped_column(ForeignKey("eval_sets.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="running")
    models: Mapped[list[Any]] = mapped_column(JSON, default=list)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class EvalResult(Base):
    """A model's reply to a case and its score (`passed` None: a manual case not judged yet)."""

    __tablename__ = "eval_results"
    __table_args__ = (UniqueConstraint("run_id", "case_id", "model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("eval_runs.id", ondelete="CASCADE"))
    case_id: Mapped[int] = mapped_column(ForeignKey("eval_cases.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(Text)
    model_name: Mapped[str] = mapped_column(String(255), default="")
    reply: Mapped[str] = mapped_column(Text, default="")
    passed: Mapped[bool | None] = mapped_column()
    detail: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str] = mapped_column(Text, default="")
    decode_tps: Mapped[float | None] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    peak_memory_bytes: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
