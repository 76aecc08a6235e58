"""Branches, pins and undo-able deletes on conversations; named sampling presets.

Revision ID: 0004_branches_pins_presets
Revises: 0003_load_measurements
Create Date: 2026-11-28

Frozen once released, like the revisions before it: everything is spelled out here.
`active_leaf_id` is a plain integer (no foreign key): messages already point at their
conversation, and a key back would make a cycle SQLite cannot order on delete.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_branches_pins_presets"
down_revision: str | None = "0003_load_measurements"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIST_INDEX = "ix_conversations_deleted_at_pinned_updated_at"

# Until now every message hung off the newest one, so the newest is the end of the thread.
_BACKFILL_LEAF = (
    "UPDATE conversations SET active_leaf_id = "
    "(SELECT max(messages.id) FROM messages WHERE messages.conversation_id = conversations.id)"
)


def upgrade() -> None:
    """Add the conversation columns, backfill the active leaf, create `sampling_presets`."""
    op.add_column(
        "conversations",
        sa.Column("pinned", sa.Boolean(), nullable=False, server_default=sa.text("0")),
    )
    op.add_column("conversations", sa.Column("deleted_at", sa.DateTime(), nullable=True))
    op.add_column("conversations", sa.Column("active_leaf_id", sa.Integer(), nullable=True))
    op.execute(_BACKFILL_LEAF)
    # The list query: WHERE deleted_at IS NULL ORDER BY pinned DESC, updated_at DESC.
    op.create_index(_LIST_INDEX, "conversations", ["deleted_at", "pinned", "updated_at"])
    op.create_table(
        "sampling_presets",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sampling_presets")),
    )


def downgrade() -> None:
    """Drop what `upgrade` added (soft-deleted conversations come back as normal ones)."""
    op.drop_table("sampling_presets")
    op.drop_index(_LIST_INDEX, table_name="conversations")
    op.drop_column("conversations", "active_leaf_id")
    op.drop_column("conversations", "deleted_at")
    op.drop_column("conversations", "pinned")
