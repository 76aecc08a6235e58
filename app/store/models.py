"""SQLAlchemy 2.0 ORM models of the history database: models, their options, conversations.

The schema itself is owned by the Alembic migrations in `app.store.migrations`; these
classes must match them (a unit test runs Alembic's `compare_metadata` to prove it).
The FTS5 index over message text lives only in the migrations (SQLAlchemy has no model
for virtual tables), so `include_name` hides it from schema comparison.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

FTS_TABLE = "messages_fts"
"""The FTS5 table over `messages.content`, kept in sync by triggers."""

MESSAGE_STATUSES = ("complete", "partial", "interrupted", "error")
MESSAGE_ROLES = ("system", "user", "assistant")
KV_CACHE_TYPES = ("f16", "q8_0", "q4_0")
"""The values of `runtimes.base.KVCacheType`, which the options table accepts."""

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC text (SQLite has no time zones), read back aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware time to naive UTC; naive input is taken as UTC already."""
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to the stored naive time."""
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC)
        return None


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so every constraint has a stable name."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ModelFile(Base):
    """A model file the user opened or downloaded, with what its GGUF header says."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(32), default="local")
    repo: Mapped[str] = mapped_column(String(255), default="")
    file: Mapped[str] = mapped_column(String(255), default="")
    path: Mapped[str] = mapped_column(Text, unique=True)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    architecture: Mapped[str] = mapped_column(String(64), default="")
    parameters: Mapped[int] = mapped_column(Integer, default=0)
    quant: Mapped[str] = mapped_column(String(32), default="")
    context_length: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(255), default="")
    added_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class Conversation(Base):
    """A chat: its title, the model it last used, its own settings, pin and branch shown."""

    __tablename__ = "conversations"
    __table_args__ = (
        Index(None, "updated_at"),
        Index(None, "deleted_at", "pinned", "updated_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(Text, default="New chat")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    model_path: Mapped[str] = mapped_column(Text, default="")
    model_name: Mapped[str] = mapped_column(String(255), default="")
    runtime: Mapped[str] = mapped_column(String(32), default="")
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    title_is_auto: Mapped[bool] = mapped_column(default=True)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("0"))
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """Set when the user deletes it (undo-able); rows are removed for good by a purge."""
    active_leaf_id: Mapped[int | None] = mapped_column(Integer)
    """The last message of the branch shown; no foreign key (it would make a cycle)."""


class Message(Base):
    """One turn of a conversation, with the figures of how it was generated.

    `status` is 'partial' while a reply streams (it is written as it grows), then
    'complete', 'interrupted' (stopped, or the worker died) or 'error'. `parent_id` points
    at the previous turn, ready for branches.
    """

    __tablename__ = "messages"
    __table_args__ = (
        Index(None, "conversation_id", "id"),
        CheckConstraint(f"role IN {MESSAGE_ROLES!r}", name="role"),
        CheckConstraint(f"status IN {MESSAGE_STATUSES!r}", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="complete")
    model_name: Mapped[str] = mapped_column(String(255), default="")
    runtime: Mapped[str] = mapped_column(String(32), default="")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    load_time_s: Mapped[float | None] = mapped_column(Float)
    ttft_s: Mapped[float | None] = mapped_column(Float)
    decode_tps: Mapped[float | None] = mapped_column(Float)
    total_time_s: Mapped[float | None] = mapped_column(Float)
    stop_reason: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class ModelLoadOptions(Base):
    """The load options the user chose for one model, by model key ("llamacpp:/m/x.gguf").

    One column per `runtimes.base.LoadOptions` field; a new field needs a migration.
    """

    __tablename__ = "model_load_options"
    __table_args__ = (
        CheckConstraint(f"kv_cache_type IN {KV_CACHE_TYPES!r}", name="kv_cache_type"),
    )

    model_key: Mapped[str] = mapped_column(Text, primary_key=True)
    n_ctx: Mapped[int] = mapped_column(Integer)
    n_gpu_layers: Mapped[int] = mapped_column(Integer)
    n_threads: Mapped[int | None] = mapped_column(Integer)
    n_batch: Mapped[int] = mapped_column(Integer)
    flash_attn: Mapped[bool] = mapped_column(Boolean)
    kv_cache_type: Mapped[str] = mapped_column(String(8))
    use_mmap: Mapped[bool] = mapped_column(Boolean)
    use_mlock: Mapped[bool] = mapped_column(Boolean)
    keep_alive_s: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class LoadMeasurement(Base):
    """One real load: what the estimator predicted and what was measured, then the speed of
    its first generation (the closed loop of `app.measurements`)."""

    __tablename__ = "load_measurements"
    __table_args__ = (
        Index("ix_load_measurements_model_key", "model_key"),
        Index("ix_load_measurements_backend", "backend"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_key: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)
    file_size: Mapped[int] = mapped_column(Integer)
    backend: Mapped[str] = mapped_column(String(16))
    n_ctx: Mapped[int] = mapped_column(Integer)
    n_gpu_layers: Mapped[int] = mapped_column(Integer)
    kv_cache_type: Mapped[str] = mapped_column(String(8))
    flash_attn: Mapped[bool] = mapped_column(Boolean)
    predicted_total_bytes: Mapped[int | None] = mapped_column(Integer)
    predicted_resident_bytes: Mapped[int | None] = mapped_column(Integer)
    predicted_gpu_bytes: Mapped[int | None] = mapped_column(Integer)
    predicted_source: Mapped[str] = mapped_column(String(24))
    rss_after_load_bytes: Mapped[int | None] = mapped_column(Integer)
    peak_rss_bytes: Mapped[int | None] = mapped_column(Integer)
    gpu_bytes: Mapped[int | None] = mapped_column(Integer)
    load_seconds: Mapped[float] = mapped_column(Float)
    bytes_per_token: Mapped[int | None] = mapped_column(Integer)
    active_parameters: Mapped[int | None] = mapped_column(Integer)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    decode_tps: Mapped[float | None] = mapped_column(Float)
    prompt_tps: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class SamplingPreset(Base):
    """A sampling preset the user saved under a name (the built-in ones live in code)."""

    __tablename__ = "sampling_presets"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic filter: leave the FTS5 table and its shadow tables out of comparisons."""
    return not (type_ == "table" and name is not None and name.startswith(FTS_TABLE))
