"""Side-by-side comparisons (runs, panes, turns, replies, votes) and eval sets (sets, cases,
runs, results).

Revision ID: 0005_compare_evals
Revises: 0004_branches_pins_presets
Create Date: 2026-11-28

Frozen once released, like the revisions before it: everything is spelled out here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_compare_evals"
down_revision: str | None = "0004_branches_pins_presets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.Integer(), nullable=False)


def _stamp(name: str = "created_at", nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(), nullable=nullable)


def _fk(column: str, table: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    """Create the comparison and eval tables."""
    _compare_tables()
    _eval_tables()


def _compare_tables() -> None:
    op.create_table(
        "compare_runs",
        _id(),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("system_prompt", sa.Text(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("source_conversation_id", sa.Integer(), nullable=True),
        _stamp(),
        _stamp("updated_at"),
        sa.CheckConstraint(
            "mode IN ('auto', 'parallel', 'sequential')", name=op.f("ck_compare_runs_mode")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compare_runs")),
    )
    op.create_index("ix_compare_runs_updated_at", "compare_runs", ["updated_at"])
    op.create_table(
        "compare_panes",
        _id(),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("choice", sa.Text(), nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("runtime", sa.String(64), nullable=False),
        sa.Column("quant", sa.String(32), nullable=False),
        sa.Column("load_options", sa.JSON(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=True),
        _fk("run_id", "compare_panes", "compare_runs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compare_panes")),
        sa.UniqueConstraint("run_id", "position", name=op.f("uq_compare_panes_run_id_position")),
    )
    op.create_table(
        "compare_turns",
        _id(),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        _stamp(),
        _fk("run_id", "compare_turns", "compare_runs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compare_turns")),
        sa.UniqueConstraint("run_id", "position", name=op.f("uq_compare_turns_run_id_position")),
    )
    op.create_table(
        "compare_replies",
        _id(),
        sa.Column("turn_id", sa.Integer(), nullable=False),
        sa.Column("pane_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("load_seconds", sa.Float(), nullable=True),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("decode_tps", sa.Float(), nullable=True),
        sa.Column("prompt_tps", sa.Float(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("total_seconds", sa.Float(), nullable=True),
        sa.Column("peak_memory_bytes", sa.Integer(), nullable=True),
        _stamp(),
        _fk("turn_id", "compare_replies", "compare_turns"),
        _fk("pane_id", "compare_replies", "compare_panes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compare_replies")),
        sa.UniqueConstraint("turn_id", "pane_id", name=op.f("uq_compare_replies_turn_id_pane_id")),
    )
    op.create_table(
        "compare_votes",
        sa.Column("turn_id", sa.Integer(), nullable=False),
        sa.Column("winner_pane_id", sa.Integer(), nullable=True),
        _stamp(),
        _fk("turn_id", "compare_votes", "compare_turns"),
        sa.ForeignKeyConstraint(
            ["winner_pane_id"],
            ["compare_panes.id"],
            name=op.f("fk_compare_votes_winner_pane_id_compare_panes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("turn_id", name=op.f("pk_compare_votes")),
    )


def _eval_tables() -> None:
    op.create_table(
        "eval_sets",
        _id(),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        _stamp(),
        _stamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_sets")),
        sa.UniqueConstraint("name", name=op.f("uq_eval_sets_name")),
    )
    op.create_table(
        "eval_cases",
        _id(),
        sa.Column("set_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("system_prompt", sa.Text(), nullable=False),
        sa.Column("expected", sa.Text(), nullable=False),
        sa.Column("scorer", sa.String(16), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        _fk("set_id", "eval_cases", "eval_sets"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_cases")),
    )
    op.create_index("ix_eval_cases_set_id_position", "eval_cases", ["set_id", "position"])
    op.create_table(
        "eval_runs",
        _id(),
        sa.Column("set_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        _stamp(),
        _stamp("finished_at", nullable=True),
        _fk("set_id", "eval_runs", "eval_sets"),
        sa.CheckConstraint(
            "status IN ('running', 'complete', 'cancelled', 'failed')",
            name=op.f("ck_eval_runs_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_runs")),
    )
    op.create_table(
        "eval_results",
        _id(),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("reply", sa.Text(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("decode_tps", sa.Float(), nullable=True),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("peak_memory_bytes", sa.Integer(), nullable=True),
        _stamp(),
        _fk("run_id", "eval_results", "eval_runs"),
        _fk("case_id", "eval_results", "eval_cases"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_results")),
        sa.UniqueConstraint(
            "run_id", "case_id", "model", name=op.f("uq_eval_results_run_id_case_id_model")
        ),
    )


def downgrade() -> None:
    """Drop the comparison and eval tables."""
    for table in ("eval_results", "eval_runs", "eval_cases", "eval_sets"):
        op.drop_table(table)
    for table in ("compare_votes", "compare_replies", "compare_turns", "compare_panes"):
        op.drop_table(table)
    op.drop_index("ix_compare_runs_updated_at", table_name="compare_runs")
    op.drop_table("compare_runs")
