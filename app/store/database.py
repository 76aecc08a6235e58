"""Opening the history database: SQLite pragmas, Alembic upgrade at startup, clear failures."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from app.errors import DatabaseUnavailable, UserFacingError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DEFAULT_BUSY_TIMEOUT_S = 2.0

# sqlite3 messages of failures outside our code: another writer, a full or broken disk.
_UNAVAILABLE_MARKERS = (
    "database is locked",
    "disk i/o error",
    "database or disk is full",
    "readonly database",
    "unable to open database file",
)


class DatabaseFileInvalid(UserFacingError):
    """The history file is not an SQLite database the workbench can use."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"{path} is not a usable LLM Workbench history database ({reason}). "
            "Move the file aside or delete it, then start the workbench again "
            "to begin a new history.",
        )
        self.path = path


class DatabaseTooNew(UserFacingError):
    """The history was written by a newer workbench whose schema this code does not know."""

    def __init__(self, path: Path, revision: str) -> None:
        super().__init__(
            f"{path} was written by a newer version of LLM Workbench (schema {revision}). "
            "Update the workbench, or move the file aside to start a new history.",
        )
        self.path = path
        self.revision = revision


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` is SQLite saying the file is locked, full, read-only or failing."""
    if isinstance(exc, sa_exc.DBAPIError):
        exc = exc.orig if isinstance(exc.orig, BaseException) else exc
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return any(marker in text for marker in _UNAVAILABLE_MARKERS)


def describe_unavailable(path: Path, exc: BaseException) -> str:
    """A sentence for the user about a database access that failed for an outside reason."""
    text = str(exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc)
    lowered = text.lower()
    if "locked" in lowered:
        return (
            f"The history database {path} is locked by another program; "
            "close other copies of the workbench."
        )
    if "full" in lowered:
        return f"The disk holding the history database {path} is full; free some space."
    return (
        f"The history database {path} cannot be used ({text}); "
        "check the disk and the file's permissions."
    )


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the packaged migrations, no alembic.ini needed.

    Args:
        connection: the connection to migrate; env.py uses it instead of a URL.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest schema revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no Alembic revisions under {MIGRATIONS_DIR}")
    return head


class Database:
    """An open history database: an engine plus short-lived sessions.

    Args:
        path: the SQLite file.
        engine: an engine from `open_database` (pragmas set, schema current).
    """

    def __init__(self, path: Path, engine: Engine) -> None:
        self._path = path
        self._engine = engine

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return self._path

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for migrations and raw queries in tests)."""
        return self._engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on a normal exit, rolled back on an error.

        Raises:
            DatabaseUnavailable: the file is locked by another writer past the busy
                timeout, the disk is full or failing, or the file is read-only.
        """
        try:
            with Session(self._engine, expire_on_commit=False) as session, session.begin():
                yield session
        except sa_exc.OperationalError as exc:
            if not is_unavailable(exc):
                raise
            raise DatabaseUnavailable(describe_unavailable(self._path, exc)) from exc

    def revision(self) -> str:
        """The schema revision the file is at ("" when unversioned)."""
        with self._engine.connect() as connection:
            heads = MigrationContext.configure(connection).get_current_heads()
        return heads[0] if heads else ""

    def close(self) -> None:
        """Close every pooled connection. The object must not be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_database(path: Path, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> Database:
    """Open (creating if needed) the history database and bring its schema up to date.

    Args:
        path: the SQLite file; its folder is created.
        busy_timeout_s: how long a statement waits for another writer's lock.

    Raises:
        DatabaseFileInvalid: the file is not SQLite, or holds something else.
        DatabaseTooNew: a newer workbench wrote it.
        DatabaseUnavailable: the folder or file cannot be created, opened or written.
    """
    path = Path(path).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseUnavailable(
            f"Cannot create the folder for the history database {path}: {exc.strerror}. "
            "Check the folder's permissions.",
        ) from exc
    engine = _create_engine(path, busy_timeout_s)
    try:
        _migrate(engine, path)
    except BaseException:
        engine.dispose()
        raise
    return Database(path, engine)


def _create_engine(path: Path, busy_timeout_s: float) -> Engine:
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": busy_timeout_s})
    busy_ms = max(0, round(busy_timeout_s * 1000))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transactions out of pysqlite's hands: it would not BEGIN before DDL, so
        # migrations would not be atomic. SQLAlchemy's "begin" event emits BEGIN instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            # WAL + NORMAL survives an app crash intact; only a power cut may drop the
            # last commits, and it saves an fsync on every streaming flush.
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine


def _migrate(engine: Engine, path: Path) -> None:
    try:
        with engine.begin() as connection:
            _check_schema(connection, path)
            command.upgrade(alembic_config(connection), "head")
    except (sa_exc.OperationalError, sqlite3.OperationalError) as exc:
        if not is_unavailable(exc):
            raise
        raise DatabaseUnavailable(describe_unavailable(path, exc)) from exc
    except (sa_exc.DatabaseError, sqlite3.DatabaseError) as exc:
        reason = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
        # Exactly DatabaseError is SQLite on a bad file ("file is not a database",
        # "disk image is malformed"); its subclasses (integrity, programming) are bugs.
        if type(reason) is not sqlite3.DatabaseError:
            raise
        raise DatabaseFileInvalid(path, str(reason)) from exc


def _check_schema(connection: Connection, path: Path) -> None:
    """Refuse a schema from the future, or a database that belongs to something else."""
    heads = MigrationContext.configure(connection).get_current_heads()
    script = ScriptDirectory.from_config(alembic_config())
    known = {revision.revision for revision in script.walk_revisions()}
    unknown = sorted(set(heads) - known)
    if unknown:
        raise DatabaseTooNew(path, unknown[0])
    if heads:
        return
    tables = [
        name
        for name in inspect(connection).get_table_names()
        if name != "alembic_version" and not name.startswith("sqlite_")
    ]
    if tables:
        raise DatabaseFileInvalid(path, f"it holds other tables: {', '.join(sorted(tables))}")
