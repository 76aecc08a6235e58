"""The history database: SQLAlchemy models, Alembic migrations, and how to open it."""

from __future__ import annotations

from app.store.database import (
    Database,
    DatabaseFileInvalid,
    DatabaseTooNew,
    alembic_config,
    describe_unavailable,
    head_revision,
    is_unavailable,
    open_database,
)
from app.store.models import (
    Base,
    Conversation,
    LoadMeasurement,
    Message,
    ModelFile,
    ModelLoadOptions,
)

__all__ = [
    "Base",
    "Conversation",
    "Database",
    "DatabaseFileInvalid",
    "DatabaseTooNew",
    "LoadMeasurement",
    "Message",
    "ModelFile",
    "ModelLoadOptions",
    "alembic_config",
    "describe_unavailable",
    "head_revision",
    "is_unavailable",
    "open_database",
]
