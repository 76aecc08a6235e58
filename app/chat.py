"""The conversation service: conversations and messages in, frozen views out (no Qt, no ORM)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.branches import BranchOperations
from app.conversation_settings import (
    ConversationSettings,
    settings_from_json,
    settings_to_json,
)
from app.conversation_views import (
    ConversationNotFound,
    ConversationSummary,
    MessageRole,
    MessageStatus,
    MessageView,
    live_conversation,
    message_view,
    summary_of,
)
from app.errors import UserFacingError
from app.store.database import Database
from app.store.models import Conversation, Message, utc_now
from app.store.queries import has_user_message, insert_message, message_count, rowcount
from app.store.replies import ReplyRecorder
from runtimes.base import ChatMessage, GenerationParams

__all__ = [
    "ConversationNotFound",
    "ConversationService",
    "ConversationSettings",
    "ConversationSummary",
    "MessageRole",
    "MessageStatus",
    "MessageView",
    "ReplyRecorder",
    "auto_title",
]

DEFAULT_TITLE = "New chat"
TITLE_LIMIT = 48
INTERRUPTED_BY_EXIT = "The workbench stopped before this reply finished."


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


class ConversationService(BranchOperations):
    """Creates, lists and edits conversations, and records replies as they stream.

    Branch-aware reading and editing of messages comes from `BranchOperations`.

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
            return summary_of(row, 0)

    def list_conversations(self) -> list[ConversationSummary]:
        """Every conversation not deleted: pinned ones first, then the most recently active.

        Plain columns, not ORM objects, and a count per row from the (conversation_id, id)
        index: about 15 ms for 2,000 conversations of 50 messages (benchmarks/bench_history).
        """
        count = (
            select(func.count(Message.id))
            .where(Message.conversation_id == Conversation.id)
            .correlate(Conversation)
            .scalar_subquery()
        )
        query = (
            select(
                Conversation.id,
                Conversation.title,
                Conversation.created_at,
                Conversation.updated_at,
                Conversation.model_name,
                count,
                Conversation.model_path,
                Conversation.runtime,
                Conversation.pinned,
            )
            .where(Conversation.deleted_at.is_(None))
            .order_by(
                Conversation.deleted_at,  # lets SQLite walk the list index in order
                Conversation.pinned.desc(),
                Conversation.updated_at.desc(),
                Conversation.id.desc(),
            )
        )
        with self._db.session() as session:
            return [
                ConversationSummary(
                    id=row.id,
                    title=row.title,
                    created_at=row.created_at,
                    updated_at=row.updated_at,
                    model_name=row.model_name,
                    message_count=int(row[5]),
                    model_path=row.model_path,
                    runtime=row.runtime,
                    pinned=bool(row.pinned),
                )
                for row in session.execute(query)
            ]

    def get(self, conversation_id: int) -> ConversationSummary:
        """One conversation. Raises ConversationNotFound."""
        with self._db.session() as session:
            row = live_conversation(session, conversation_id)
            return summary_of(row, message_count(session, conversation_id))

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
            row = live_conversation(session, conversation_id)
            row.title = title
            row.title_is_auto = False
            return summary_of(row, message_count(session, conversation_id))

    def set_pinned(self, conversation_id: int, pinned: bool) -> ConversationSummary:
        """Pin a conversation to the top of the list, or unpin it. Raises ConversationNotFound."""
        with self._db.session() as session:
            row = live_conversation(session, conversation_id)
            row.pinned = pinned
            return summary_of(row, message_count(session, conversation_id))

    def delete(self, conversation_id: int) -> None:
        """Delete a conversation, undo-ably: `restore` brings it back until `purge_deleted`.

        Raises:
            ConversationNotFound: no such conversation (or it is deleted already).
        """
        with self._db.session() as session:
            live_conversation(session, conversation_id).deleted_at = utc_now()

    def restore(self, conversation_id: int) -> ConversationSummary:
        """Undo `delete`. Raises ConversationNotFound when it was purged (or never existed)."""
        with self._db.session() as session:
            row = session.get(Conversation, conversation_id)
            if row is None:
                raise ConversationNotFound(conversation_id)
            row.deleted_at = None
            return summary_of(row, message_count(session, conversation_id))

    def purge_deleted(self, older_than: timedelta | None = None) -> int:
        """Remove deleted conversations and their messages for good. Returns how many.

        Args:
            older_than: only those deleted at least this long ago; None: all of them.
        """
        statement = delete(Conversation).where(Conversation.deleted_at.is_not(None))
        if older_than is not None:
            statement = statement.where(Conversation.deleted_at <= utc_now() - older_than)
        with self._db.session() as session:
            return rowcount(session.execute(statement))

    def add_user_message(self, conversation_id: int, text: str) -> MessageView:
        """Store what the user typed; the first message titles an untitled conversation.

        Raises:
            UserFacingError: the text is empty.
            ConversationNotFound: no such conversation.
        """
        if not text.strip():
            raise UserFacingError("The message is empty. Type something to send.")
        with self._db.session() as session:
            conversation = live_conversation(session, conversation_id)
            if conversation.title_is_auto and not has_user_message(session, conversation_id):
                conversation.title = auto_title(text)
            row = insert_message(session, conversation, role="user", content=text)
            return message_view(row)

    def set_model(
        self, conversation_id: int, model_path: str, model_name: str, runtime: str
    ) -> None:
        """Remember which model the conversation uses now. Raises ConversationNotFound."""
        with self._db.session() as session:
            row = live_conversation(session, conversation_id)
            row.model_path, row.model_name, row.runtime = model_path, model_name, runtime

    def set_fallback(self, conversation_id: int, choice: str, name: str) -> None:
        """Name the model to retry on when this conversation's model fails ("" clears it)."""
        with self._db.session() as session:
            row = live_conversation(session, conversation_id)
            settings = dict(row.settings or {})
            if choice:
                settings["fallback"] = {"choice": choice, "name": name}
            else:
                settings.pop("fallback", None)
            row.settings = settings  # a new dict, so the JSON column is written

    def fallback(self, conversation_id: int) -> tuple[str, str] | None:
        """The (choice, name) to retry on, or None when the conversation names none."""
        with self._db.session() as session:
            settings = live_conversation(session, conversation_id).settings or {}
        value = settings.get("fallback")
        if isinstance(value, dict) and value.get("choice"):
            return str(value["choice"]), str(value.get("name", ""))
        return None

    def settings(self, conversation_id: int) -> ConversationSettings:
        """The conversation's system prompt, preset, parameters and context size.

        Stored values that are missing or unusable read as their defaults.

        Raises:
            ConversationNotFound: no such conversation.
        """
        with self._db.session() as session:
            return settings_from_json(live_conversation(session, conversation_id).settings)

    def set_settings(self, conversation_id: int, settings: ConversationSettings) -> None:
        """Store the conversation's settings (other stored keys, like "fallback", stay).

        Raises:
            UserFacingError: `n_ctx` is not a positive number of tokens.
            ConversationNotFound: no such conversation.
        """
        if settings.n_ctx is not None and settings.n_ctx <= 0:
            raise UserFacingError("The context length must be a positive number of tokens.")
        with self._db.session() as session:
            row = live_conversation(session, conversation_id)
            row.settings = settings_to_json(row.settings, settings)

    def request_messages(
        self,
        conversation_id: int,
        system_prompt: str = "",
        exclude: Collection[int] = (),
        *,
        include_partial_last: bool = False,
    ) -> tuple[ChatMessage, ...]:
        """The history to send to a runtime: the shown branch's turns that have text.

        Failed replies and empty turns are left out; interrupted replies keep their text,
        except those in `exclude` (a reply being retried elsewhere). A reply still being
        written ('partial') at the end of the branch is left out unless
        `include_partial_last`: a continue request (see `continue_reply`) ends with it.
        """
        views = self.messages(conversation_id)
        if views and views[-1].status == "partial" and not include_partial_last:
            views.pop()
        history: list[ChatMessage] = []
        if system_prompt.strip():
            history.append(ChatMessage("system", system_prompt))
        for view in views:
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
        parent_id: int | None = None,
    ) -> ReplyRecorder:
        """Insert an assistant message (status 'partial'), make it the leaf, return its recorder.

        `note` is stored with the parameters (e.g. "retried on X: Y crashed") and shown
        under the reply. `parent_id` (from `regenerate_parent`) makes the reply a new
        version beside the earlier replies to that message; None appends it to the end
        of the shown branch.

        Raises:
            UserFacingError: `parent_id` is not a message of this conversation.
            ConversationNotFound: no such conversation.
        """
        with self._db.session() as session:
            conversation = live_conversation(session, conversation_id)
            if parent_id is not None:
                _check_member(session, conversation_id, parent_id)
            row = insert_message(
                session,
                conversation,
                role="assistant",
                parent_id=... if parent_id is None else parent_id,
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


def _check_member(session: Session, conversation_id: int, message_id: int) -> None:
    found = session.scalar(
        select(Message.id).where(
            Message.id == message_id, Message.conversation_id == conversation_id
        )
    )
    if found is None:
        raise UserFacingError(
            f"Message {message_id} is no longer in this conversation. Reopen the conversation."
        )
