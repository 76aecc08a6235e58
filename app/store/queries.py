"""Small queries the services share: counts, row counts, appending a message to a branch."""

from __future__ import annotations

from types import EllipsisType
from typing import Any, cast

from sqlalchemy import CursorResult, Result, func, select
from sqlalchemy.orm import Session

from app.store.models import Conversation, Message, utc_now


def rowcount(result: Result[Any]) -> int:
    """Rows a DML statement touched (execute() of DML returns a CursorResult)."""
    return int(cast(CursorResult[Any], result).rowcount)


def message_count(session: Session, conversation_id: int) -> int:
    """How many messages a conversation holds."""
    query = select(func.count(Message.id)).where(Message.conversation_id == conversation_id)
    return int(session.scalar(query) or 0)


def has_user_message(session: Session, conversation_id: int) -> bool:
    """Whether the user has written anything in the conversation yet."""
    query = select(Message.id).where(
        Message.conversation_id == conversation_id, Message.role == "user"
    )
    return session.scalar(query.limit(1)) is not None


def resolved_leaf(session: Session, conversation: Conversation) -> int | None:
    """The conversation's active leaf if it is one of its messages, else its newest message."""
    leaf = conversation.active_leaf_id
    if leaf is not None:
        found = session.scalar(
            select(Message.id).where(Message.id == leaf, Message.conversation_id == conversation.id)
        )
        if found is not None:
            return leaf
    return session.scalar(
        select(func.max(Message.id)).where(Message.conversation_id == conversation.id)
    )


def insert_message(
    session: Session,
    conversation: Conversation,
    *,
    role: str,
    content: str,
    parent_id: int | EllipsisType | None = ...,
    **fields: object,
) -> Message:
    """Insert a message, make it the active leaf, and mark the conversation active.

    Args:
        session: the open session.
        conversation: the conversation the message joins.
        role: "system", "user" or "assistant".
        content: the text.
        parent_id: the message it answers or follows; left out, the end of the branch
            shown (the active leaf). None makes a root (a new first message).
        **fields: other `Message` columns.
    """
    parent = resolved_leaf(session, conversation) if parent_id is ... else parent_id
    now = utc_now()
    row = Message(
        conversation_id=conversation.id,
        parent_id=parent,
        role=role,
        content=content,
        created_at=now,
        updated_at=now,
        **fields,
    )
    session.add(row)
    conversation.updated_at = now
    session.flush()
    conversation.active_leaf_id = row.id
    return row
