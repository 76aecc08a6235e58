"""Measured memory and speed of real loads, next to what the estimator predicted.

Revision ID: 0003_load_measurements
Revises: 0002_model_load_options
Create Date: 2026-11-27

Frozen once released, like 0001 and 0002: the table is spelled out here, not imported.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_load_measurements"
down_revision: str | None = "0002_model_load_options"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `load_measurements`."""
    op.create_table(
        "load_measurements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_key", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("file_size", sa.Integer(), nullable=False),
        sa.Column("backend", sa.String(length=16), nullable=False),
        sa.Column("n_ctx", sa.Integer(), nullable=False),
        sa.Column("n_gpu_layers", sa.Integer(), nullable=False),
        sa.Column("kv_cache_type", sa.String(length=8), nullable=False),
        sa.Column("flash_attn", sa.Boolean(), nullable=False),
        sa.Column("predicted_total_bytes", sa.Integer(), nullable=True),
        sa.Column("predicted_resident_bytes", sa.Integer(), nullable=True),
        sa.Column("predicted_gpu_bytes", sa.Integer(), nullable=True),
        sa.Column("predicted_source", sa.String(length=24), nullable=False),
        sa.Column("rss_after_load_bytes", sa.Integer(), nullable=True),
        sa.Column("peak_rss_bytes", sa.Integer(), nullable=True),
        sa.Column("gpu_bytes", sa.Integer(), nullable=True),
        sa.Column("load_seconds", sa.Float(), nullable=False),
        sa.Column("bytes_per_token", sa.Integer(), nullable=True),
        sa.Column("active_parameters", sa.Integer(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("decode_tps", sa.Float(), nullable=True),
        sa.Column("prompt_tps", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_load_measurements")),
    )
    op.create_index(
        "ix_load_measurements_model_key", "load_measurements", ["model_key"], unique=False
    )
    op.create_index("ix_load_measurements_backend", "load_measurements", ["backend"], unique=False)


def downgrade() -> None:
    """Drop `load_measurements`."""
    op.drop_index("ix_load_measurements_backend", table_name="load_measurements")
    op.drop_index("ix_load_measurements_model_key", table_name="load_measurements")
    op.drop_table("load_measurements")
