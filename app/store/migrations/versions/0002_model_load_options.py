"""Load options remembered per model: one row per model key, one column per option.

Revision ID: 0002_model_load_options
Revises: 0001_initial
Create Date: 2025-12-04

Frozen once released, like 0001: the table is spelled out here, not imported.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_model_load_options"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `model_load_options`."""
    op.create_table(
        "model_load_options",
        sa.Column("model_key", sa.Text(), nullable=False),
        sa.Column("n_ctx", sa.Integer(), nullable=False),
        sa.Column("n_gpu_layers", sa.Integer(), nullable=False),
        sa.Column("n_threads", sa.Integer(), nullable=True),
        sa.Column("n_batch", sa.Integer(), nullable=False),
        sa.Column("flash_attn", sa.Boolean(), nullable=False),
        sa.Column("kv_cache_type", sa.String(length=8), nullable=False),
        sa.Column("use_mmap", sa.Boolean(), nullable=False),
        sa.Column("use_mlock", sa.Boolean(), nullable=False),
        sa.Column("keep_alive_s", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "kv_cache_type IN ('f16', 'q8_0', 'q4_0')",
            name=op.f("ck_model_load_options_kv_cache_type"),
        ),
        sa.PrimaryKeyConstraint("model_key", name=op.f("pk_model_load_options")),
    )


def downgrade() -> None:
    """Drop `model_load_options`."""
    op.drop_table("model_load_options")
