"""The frozen values the conversation service hands out, and how rows become them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, cast

from sqlalchemy.orm import Session

from app.errors import UserFacingError
from app.store.models import Conversation, Message
from runtimes.base import GenerationStats, StopReason

MessageRole = Literal["system", "user", "assistant"]
MessageStatus = Literal["complete", "partial", "interrupted", "error"]


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
    """A conversation as the list shows it. Times are aware, in UTC.

    `message_count` counts every stored message, other branches included.
    """

    id: int
    title: str
    created_at: datetime
    updated_at: datetime
    model_name: str
    message_count: int
    model_path: str = ""
    runtime: str = ""
    pinned: bool = False


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


def live_conversation(session: Session, conversation_id: int) -> Conversation:
    """The conversation row, unless missing or (soft-)deleted. Raises ConversationNotFound."""
    row = session.get(Conversation, conversation_id)
    if row is None or row.deleted_at is not None:
        raise ConversationNotFound(conversation_id)
    return row


def summary_of(row: Conversation, message_count: int) -> ConversationSummary:
    """The list's view of a conversation row."""
    return ConversationSummary(
        id=row.id,
        title=row.title,
        created_at=row.created_at,
        updated_at=row.updated_at,
        model_name=row.model_name,
        message_count=message_count,
        model_path=row.model_path,
        runtime=row.runtime,
        pinned=bool(row.pinned),
    )


def message_view(row: Message, branch_index: int = 1, branch_count: int = 1) -> MessageView:
    """A message row as a frozen view, with its place among its sibling versions."""
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
        parent_id=row.parent_id,
        branch_index=branch_index,
        branch_count=branch_count,
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
