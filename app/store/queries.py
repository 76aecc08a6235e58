"""Small queries the services share: counts, row counts, appending a message to a thread."""

from __future__ import annotations

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


def insert_message(
    session: Session, conversation: Conversation, *, role: str, content: str, **fields: object
) -> Message:
    """Insert a message after the conversation's last one, and mark the conversation active."""
    last_id = session.scalar(
        select(func.max(Message.id)).where(Message.conversation_id == conversation.id)
    )
    now = utc_now()
    row = Message(
        conversation_id=conversation.id,
        parent_id=last_id,
        role=role,
        content=content,
        created_at=now,
        updated_at=now,
        **fields,
    )
    session.add(row)
    conversation.updated_at = now
    session.flush()
    return row
