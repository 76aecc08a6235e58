"""ReplyRecorder: writes a streaming assistant reply to the database as it grows.

The reply row exists (status 'partial') from the first moment; text is written at most
every `flush_interval` seconds, so a crash or a kill loses at most that much. When the
database is locked or the disk is full, the text stays in memory and the write is retried
later: nothing is lost, and `append()` never raises for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import update

from app.errors import DatabaseUnavailable
from app.store.database import Database
from app.store.models import Conversation, Message, utc_now
from runtimes.base import GenerationStats

FAILURE_BACKOFF_S = 2.0
"""After a failed write, how long `append()` waits before trying again (each try can block
for the busy timeout, so retrying at every token would freeze the caller)."""

_KEPT = " The reply is kept in memory and saved as soon as the database can be written."


def status_for(stats: GenerationStats) -> str:
    """The message status a finished stream earns from its stop reason."""
    if stats.stop_reason == "cancelled":
        return "interrupted"
    if stats.stop_reason == "error":
        return "error"
    return "complete"


class ReplyRecorder:
    """Persists one assistant reply while it streams. Used from one thread only.

    Args:
        db: the open history database.
        message_id: the assistant message (already inserted with status 'partial').
        conversation_id: its conversation, whose `updated_at` moves when the reply ends.
        flush_interval: the longest time, in seconds, text may wait in memory.
        clock: a monotonic clock in seconds (injectable for tests).
        initial_text: text the row already holds (a reply being continued); appended
            text extends it, and every write stores the whole.
    """

    def __init__(
        self,
        db: Database,
        message_id: int,
        conversation_id: int,
        *,
        flush_interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        initial_text: str = "",
    ) -> None:
        self._db = db
        self._message_id = message_id
        self._conversation_id = conversation_id
        self._flush_interval = flush_interval
        self._clock = clock
        self._parts: list[str] = [initial_text] if initial_text else []
        self._status = "partial"
        self._error = ""
        self._stats: GenerationStats | None = None
        self._ended = False
        self._dirty = False
        self._pending_error = ""
        self._next_write_at = clock() + flush_interval

    @property
    def message_id(self) -> int:
        """The assistant message's id."""
        return self._message_id

    @property
    def conversation_id(self) -> int:
        """The conversation the reply belongs to."""
        return self._conversation_id

    @property
    def text(self) -> str:
        """The initial text plus everything appended so far (saved or not)."""
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    @property
    def status(self) -> str:
        """'partial' while streaming, then 'complete', 'interrupted' or 'error'."""
        return self._status

    @property
    def saved(self) -> bool:
        """Whether the database holds everything this recorder knows."""
        return not self._dirty

    @property
    def pending_error(self) -> str:
        """Why the last write failed (a sentence for the user), "" once a write succeeds."""
        return self._pending_error

    def append(self, text: str) -> None:
        """Add streamed text; writes when `flush_interval` has passed. Never raises for I/O.

        Raises:
            RuntimeError: the reply has already ended (a bug in the caller).
        """
        self._check_open()
        if not text:
            return
        self._parts.append(text)
        self._dirty = True
        if self._clock() >= self._next_write_at:
            self._write()

    def flush(self) -> bool:
        """Write now whatever is unsaved. Returns True when the database is up to date."""
        if not self._dirty:
            return True
        return self._write()

    def finish(self, stats: GenerationStats) -> None:
        """End the reply with its figures: 'complete', or 'interrupted' when cancelled.

        Raises:
            DatabaseUnavailable: still unwritable after a retry; call `retry()` later.
        """
        self._end(status_for(stats), "", stats)

    def interrupt(self, error: str) -> None:
        """End the reply as 'interrupted' (the worker died), keeping its partial text.

        Raises:
            DatabaseUnavailable: still unwritable after a retry; call `retry()` later.
        """
        self._end("interrupted", error, None)

    def fail(self, error: str) -> None:
        """End the reply as 'error' with the error text.

        Raises:
            DatabaseUnavailable: still unwritable after a retry; call `retry()` later.
        """
        self._end("error", error, None)

    def retry(self) -> None:
        """Write whatever is unsaved, trying twice.

        Raises:
            DatabaseUnavailable: the database still cannot be written.
        """
        if self._dirty and not self._write() and not self._write():
            raise DatabaseUnavailable(self._pending_error)

    def _end(self, status: str, error: str, stats: GenerationStats | None) -> None:
        self._check_open()
        self._ended = True
        self._status = status
        self._error = error
        self._stats = stats
        self._dirty = True
        self.retry()

    def _check_open(self) -> None:
        if self._ended:
            raise RuntimeError(f"reply {self._message_id} has already ended ({self._status})")

    def _write(self) -> bool:
        values = self._values()
        try:
            with self._db.session() as session:
                session.execute(
                    update(Message).where(Message.id == self._message_id).values(**values)
                )
                if self._ended:
                    session.execute(
                        update(Conversation)
                        .where(Conversation.id == self._conversation_id)
                        .values(updated_at=values["updated_at"])
                    )
        except DatabaseUnavailable as exc:
            self._pending_error = exc.message + _KEPT
            self._next_write_at = self._clock() + max(self._flush_interval, FAILURE_BACKOFF_S)
            return False
        self._pending_error = ""
        # Text appended while writing is impossible (one thread), so the row is current.
        self._dirty = False
        self._next_write_at = self._clock() + self._flush_interval
        return True

    def _values(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "content": self.text,
            "status": self._status,
            "error": self._error,
            "updated_at": utc_now(),
        }
        if self._stats is not None:
            values.update(self._stats.as_dict())
        return values
