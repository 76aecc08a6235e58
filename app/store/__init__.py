"""The history database: SQLAlchemy models, Alembic migrations, and how to open it."""

from __future__ import annotations

from app.store.compare_models import (
    ComparePane,
    CompareReply,
    CompareRun,
    CompareTurn,
    CompareVote,
    EvalCase,
    EvalResult,
    EvalRun,
    EvalSet,
)
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
    "ComparePane",
    "CompareReply",
    "CompareRun",
    "CompareTurn",
    "CompareVote",
    "Conversation",
    "Database",
    "DatabaseFileInvalid",
    "DatabaseTooNew",
    "EvalCase",
    "EvalResult",
    "EvalRun",
    "EvalSet",
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
