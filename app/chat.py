"""The conversation service: conversations and messages in, frozen views out (no Qt, no ORM)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, cast

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.errors import UserFacingError
from app.store.database import Database
from app.store.models import Conversation, Message, utc_now
from app.store.queries import has_user_message, insert_message, message_count, rowcount
from app.store.replies import ReplyRecorder
from runtimes.base import ChatMessage, GenerationParams, GenerationStats, StopReason

__all__ = [
    "ConversationNotFound",
    "ConversationService",
    "ConversationSummary",
    "MessageView",
    "ReplyRecorder",
    "auto_title",
]

MessageRole = Literal["system", "user", "assistant"]
MessageStatus = Literal["complete", "partial", "interrupted", "error"]

DEFAULT_TITLE = "New chat"
TITLE_LIMIT = 48
INTERRUPTED_BY_EXIT = "The workbench stopped before this reply finished."


class ConversationNotFound(UserFacingError):
    """A conversation id that is not (or no longer) in the history."""

    def __init__(self, conversation_id: int) -> None:
        super().__init__(
            f"Conversation {conversation_id} is no longer in the history. "
            "Pick another one from the list or start a new chat.",
        )
        self.conversation_id = conversation_id


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    """A conversation as the list shows it. Times are aware, in UTC."""

    id: int
    title: str
    created_at: datetime
    updated_at: datetime
    model_name: str
    message_count: int
    model_path: str = ""
    runtime: str = ""


@dataclass(frozen=True, slots=True)
class MessageView:
    """One stored message. `stats` is None until a reply ends with figures."""

    id: int
    conversation_id: int
    role: MessageRole
    content: str
    status: MessageStatus
    model_name: str
    runtime: str
    params: dict[str, object] = field(hash=False)
    stats: GenerationStats | None
    error: str
    created_at: datetime
    parent_id: int | None = None
    branch_index: int = 1
    """1-based position of this message among its siblings (versions with the same parent)."""
    branch_count: int = 1
    """How many versions (siblings with the same parent, same role) exist; 1 when none."""


def auto_title(text: str, limit: int = TITLE_LIMIT) -> str:
    """A title from a first message: its first non-empty line, cut at a word with an ellipsis."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = " ".join(line.split())
    if not line:
        return DEFAULT_TITLE
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,.;:-") + "…"


class ConversationService:
    """Creates, lists and edits conversations, and records replies as they stream.

    Called from the GUI thread (which owns database writes).

    Args:
        db: the open history database.
        flush_interval: how often a streaming reply is written, in seconds.
        clock: a monotonic clock for the reply recorders (injectable for tests).
    """

    def __init__(
        self,
        db: Database,
        *,
        flush_interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._flush_interval = flush_interval
        self._clock = clock

    def create(
        self, model_path: str = "", model_name: str = "", runtime: str = "llamacpp"
    ) -> ConversationSummary:
        """Start an empty conversation titled "New chat"."""
        with self._db.session() as session:
            now = utc_now()
            row = Conversation(
                model_path=model_path,
                model_name=model_name,
                runtime=runtime,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
            return _summary(row, 0)

    def list_conversations(self) -> list[ConversationSummary]:
        """Every conversation, the most recently active first."""
        counts = (
            select(Message.conversation_id, func.count(Message.id).label("n"))
            .group_by(Message.conversation_id)
            .subquery()
        )
        query = (
            select(Conversation, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.conversation_id == Conversation.id)
            .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
        )
        with self._db.session() as session:
            return [_summary(row, count) for row, count in session.execute(query)]

    def get(self, conversation_id: int) -> ConversationSummary:
        """One conversation. Raises ConversationNotFound."""
        with self._db.session() as session:
            row = _conversation(session, conversation_id)
            return _summary(row, message_count(session, conversation_id))

    def rename(self, conversation_id: int, title: str) -> ConversationSummary:
        """Give a conversation the user's own title (automatic titles stop).

        Raises:
            UserFacingError: the title is empty.
            ConversationNotFound: no such conversation.
        """
        title = " ".join(title.split())
        if not title:
            raise UserFacingError("A conversation title cannot be empty. Type a few words.")
        with self._db.session() as session:
            row = _conversation(session, conversation_id)
            row.title = title
            row.title_is_auto = False
            return _summary(row, message_count(session, conversation_id))

    def delete(self, conversation_id: int) -> None:
        """Delete a conversation and its messages. Raises ConversationNotFound."""
        with self._db.session() as session:
            statement = delete(Conversation).where(Conversation.id == conversation_id)
            if rowcount(session.execute(statement)) == 0:
                raise ConversationNotFound(conversation_id)

    def messages(self, conversation_id: int) -> list[MessageView]:
        """A conversation's messages in order. Raises ConversationNotFound."""
        with self._db.session() as session:
            _conversation(session, conversation_id)
            rows = session.scalars(
                select(Message)
                .where(Message.conversation_id == conversation_id)
                .order_by(Message.id)
            )
            return [_message_view(row) for row in rows]

    def add_user_message(self, conversation_id: int, text: str) -> MessageView:
        """Store what the user typed; the first message titles an untitled conversation.

        Raises:
            UserFacingError: the text is empty.
            ConversationNotFound: no such conversation.
        """
        if not text.strip():
            raise UserFacingError("The message is empty. Type something to send.")
        with self._db.session() as session:
            conversation = _conversation(session, conversation_id)
            if conversation.title_is_auto and not has_user_message(session, conversation_id):
                conversation.title = auto_title(text)
            row = insert_message(session, conversation, role="user", content=text)
            return _message_view(row)

    def set_model(
        self, conversation_id: int, model_path: str, model_name: str, runtime: str
    ) -> None:
        """Remember which model the conversation uses now. Raises ConversationNotFound."""
        with self._db.session() as session:
            row = _conversation(session, conversation_id)
            row.model_path, row.model_name, row.runtime = model_path, model_name, runtime

    def set_fallback(self, conversation_id: int, choice: str, name: str) -> None:
        """Name the model to retry on when this conversation's model fails ("" clears it)."""
        with self._db.session() as session:
            row = _conversation(session, conversation_id)
            settings = dict(row.settings or {})
            if choice:
                settings["fallback"] = {"choice": choice, "name": name}
            else:
                settings.pop("fallback", None)
            row.settings = settings  # a new dict, so the JSON column is written

    def fallback(self, conversation_id: int) -> tuple[str, str] | None:
        """The (choice, name) to retry on, or None when the conversation names none."""
        with self._db.session() as session:
            settings = _conversation(session, conversation_id).settings or {}
        value = settings.get("fallback")
        if isinstance(value, dict) and value.get("choice"):
            return str(value["choice"]), str(value.get("name", ""))
        return None

    def request_messages(
        self, conversation_id: int, system_prompt: str = "", exclude: Collection[int] = ()
    ) -> tuple[ChatMessage, ...]:
        """The history to send to a runtime: user and assistant turns that have text.

        Failed replies and empty turns are left out; interrupted replies keep their text,
        except those in `exclude` (a reply being retried elsewhere).
        """
        history: list[ChatMessage] = []
        if system_prompt.strip():
            history.append(ChatMessage("system", system_prompt))
        for view in self.messages(conversation_id):
            if view.role == "system" or view.status == "error" or not view.content.strip():
                continue
            if view.id in exclude:
                continue
            history.append(ChatMessage(view.role, view.content))
        return tuple(history)

    def start_reply(
        self,
        conversation_id: int,
        model_name: str,
        runtime: str,
        params: GenerationParams,
        note: str = "",
    ) -> ReplyRecorder:
        """Insert an assistant message (status 'partial') and return its recorder.

        `note` is stored with the parameters (e.g. "retried on X: Y crashed") and shown
        under the reply.
        """
        with self._db.session() as session:
            conversation = _conversation(session, conversation_id)
            row = insert_message(
                session,
                conversation,
                role="assistant",
                content="",
                status="partial",
                model_name=model_name,
                runtime=runtime,
                params={**params.as_dict(), **({"note": note} if note else {})},
            )
            message_id = row.id
        return ReplyRecorder(
            self._db,
            message_id,
            conversation_id,
            flush_interval=self._flush_interval,
            clock=self._clock,
        )

    def recover_interrupted(self) -> int:
        """At startup: replies a crash left 'partial' become 'interrupted'. Returns how many.

        Call it before any reply starts; it would also end a reply streaming now.
        """
        with self._db.session() as session:
            statement = (
                update(Message)
                .where(Message.status == "partial")
                .values(status="interrupted", error=INTERRUPTED_BY_EXIT, updated_at=utc_now())
            )
            return rowcount(session.execute(statement))


def _conversation(session: Session, conversation_id: int) -> Conversation:
    row = session.get(Conversation, conversation_id)
    if row is None:
        raise ConversationNotFound(conversation_id)
    return row


def _summary(row: Conversation, message_count: int) -> ConversationSummary:
    return ConversationSummary(
        id=row.id,
        title=row.title,
        created_at=row.created_at,
        updated_at=row.updated_at,
        model_name=row.model_name,
        message_count=message_count,
        model_path=row.model_path,
        runtime=row.runtime,
    )


def _message_view(row: Message) -> MessageView:
    return MessageView(
        id=row.id,
        conversation_id=row.conversation_id,
        role=cast(MessageRole, row.role),
        content=row.content,
        status=cast(MessageStatus, row.status),
        model_name=row.model_name,
        runtime=row.runtime,
        params=dict(row.params),
        stats=_stats(row),
        error=row.error,
        created_at=row.created_at,
    )


def _stats(row: Message) -> GenerationStats | None:
    if row.stop_reason is None:
        return None
    return GenerationStats(
        prompt_tokens=row.prompt_tokens or 0,
        completion_tokens=row.completion_tokens or 0,
        load_time_s=row.load_time_s or 0.0,
        ttft_s=row.ttft_s or 0.0,
        decode_tps=row.decode_tps or 0.0,
        total_time_s=row.total_time_s or 0.0,
        stop_reason=cast(StopReason, row.stop_reason),
    )
