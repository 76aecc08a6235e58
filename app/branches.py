"""Branches of a conversation: messages form a tree by `parent_id`; one path is shown.

A conversation's `active_leaf_id` names the last message of the branch being shown; the
path from the root down to it is what the chat displays and what a runtime is sent.
Versions of a message (an edited question, a regenerated reply) are siblings: messages
with the same parent and the same role, numbered by id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.conversation_views import MessageView, live_conversation, message_view
from app.errors import UserFacingError
from app.store.database import Database
from app.store.models import Message, utc_now
from app.store.queries import insert_message
from app.store.replies import ReplyRecorder


class MessageTree:
    """The messages of one conversation as a tree, built in memory from one query.

    Args:
        rows: the conversation's messages, ordered by id.
    """

    def __init__(self, rows: Sequence[Message]) -> None:
        self.rows = {row.id: row for row in rows}
        self._children: dict[int | None, list[int]] = {}
        for row in rows:
            self._children.setdefault(self.parent_of(row.id), []).append(row.id)

    def parent_of(self, message_id: int) -> int | None:
        """The parent's id; None for a root (or a parent outside the conversation)."""
        parent = self.rows[message_id].parent_id
        return parent if parent in self.rows else None

    def children(self, message_id: int | None) -> list[int]:
        """Ids of the messages that follow `message_id` (None: the roots), oldest first."""
        return self._children.get(message_id, [])

    def siblings(self, message_id: int) -> list[int]:
        """The versions of a message: same parent, same role, oldest first (itself included)."""
        role = self.rows[message_id].role
        family = self.children(self.parent_of(message_id))
        return [other for other in family if self.rows[other].role == role]

    def leaf(self, active_leaf_id: int | None) -> int | None:
        """The stored active leaf when it is here, else the newest message (None: empty)."""
        if active_leaf_id in self.rows:
            return active_leaf_id
        return max(self.rows) if self.rows else None

    def newest_leaf_under(self, message_id: int) -> int:
        """Follow the newest child down from `message_id` to a message without children."""
        while kids := self.children(message_id):
            message_id = kids[-1]
        return message_id

    def path(self, leaf: int | None) -> list[Message]:
        """The messages from the root down to `leaf`."""
        path: list[Message] = []
        seen: set[int] = set()
        current = leaf
        while current is not None and current not in seen:
            seen.add(current)
            path.append(self.rows[current])
            current = self.parent_of(current)
        path.reverse()
        return path

    def views(self, leaf: int | None) -> list[MessageView]:
        """The path to `leaf` as views, each with its version number and count."""
        views = []
        for row in self.path(leaf):
            versions = self.siblings(row.id)
            views.append(message_view(row, versions.index(row.id) + 1, len(versions)))
        return views


def load_tree(session: Session, conversation_id: int) -> MessageTree:
    """Every message of a conversation, as a tree."""
    rows = session.scalars(
        select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)
    ).all()
    return MessageTree(rows)


def _member(tree: MessageTree, message_id: int) -> Message:
    row = tree.rows.get(message_id)
    if row is None:
        raise UserFacingError(
            f"Message {message_id} is no longer in this conversation. Reopen the conversation."
        )
    return row


class BranchOperations:
    """The branch-aware part of `ConversationService`: the path shown, versions, edits.

    Mixed into `ConversationService`, which sets the attributes below.
    """

    _db: Database
    _flush_interval: float
    _clock: Callable[[], float]

    def messages(self, conversation_id: int) -> list[MessageView]:
        """The active path, root first, each message with its version number and count.

        Raises:
            ConversationNotFound: no such conversation (or it was deleted).
        """
        with self._db.session() as session:
            conversation = live_conversation(session, conversation_id)
            tree = load_tree(session, conversation_id)
            return tree.views(tree.leaf(conversation.active_leaf_id))

    def regenerate_parent(self, conversation_id: int, message_id: int) -> int:
        """The message a new version of assistant reply `message_id` answers.

        Pass it as `parent_id` to `start_reply`.

        Raises:
            UserFacingError: the message is not an assistant reply of this conversation.
            ConversationNotFound: no such conversation.
        """
        with self._db.session() as session:
            live_conversation(session, conversation_id)
            tree = load_tree(session, conversation_id)
            row = _member(tree, message_id)
            parent = tree.parent_of(message_id)
            if row.role != "assistant" or parent is None:
                raise UserFacingError(
                    "Only a model's reply can be regenerated. Pick a reply, not your message."
                )
            return parent

    def edit_user_message(self, conversation_id: int, message_id: int, text: str) -> MessageView:
        """Store an edited question as a new version of `message_id`; it becomes the leaf.

        The old version and the replies under it stay, reachable with `switch_branch`.

        Raises:
            UserFacingError: the text is empty, or the message is not the user's.
            ConversationNotFound: no such conversation.
        """
        if not text.strip():
            raise UserFacingError("The message is empty. Type something to send.")
        with self._db.session() as session:
            conversation = live_conversation(session, conversation_id)
            tree = load_tree(session, conversation_id)
            if _member(tree, message_id).role != "user":
                raise UserFacingError("Only your own messages can be edited.")
            # Titles come from the first exchange only: an edit never retitles.
            parent = tree.parent_of(message_id)
            row = insert_message(session, conversation, role="user", content=text, parent_id=parent)
            count = len(tree.siblings(message_id)) + 1
            return message_view(row, count, count)

    def switch_branch(self, conversation_id: int, message_id: int, step: int) -> list[MessageView]:
        """Show the version `step` away from `message_id` (clamped), down to its newest leaf.

        Returns:
            The new active path.

        Raises:
            UserFacingError: the message is not in this conversation.
            ConversationNotFound: no such conversation.
        """
        with self._db.session() as session:
            conversation = live_conversation(session, conversation_id)
            tree = load_tree(session, conversation_id)
            _member(tree, message_id)
            versions = tree.siblings(message_id)
            index = min(max(versions.index(message_id) + step, 0), len(versions) - 1)
            leaf = tree.newest_leaf_under(versions[index])
            conversation.active_leaf_id = leaf
            return tree.views(leaf)

    def delete_message(self, conversation_id: int, message_id: int) -> list[MessageView]:
        """Delete one message; the messages after it move up to its parent.

        When it was the active leaf, the newest leaf under its parent is shown (the parent
        itself when nothing else follows it; the newest message when it was a root).

        Returns:
            The new active path.

        Raises:
            UserFacingError: the message is not in this conversation.
            ConversationNotFound: no such conversation.
        """
        with self._db.session() as session:
            conversation = live_conversation(session, conversation_id)
            tree = load_tree(session, conversation_id)
            row = _member(tree, message_id)
            parent = tree.parent_of(message_id)
            was_leaf = tree.leaf(conversation.active_leaf_id) == message_id
            session.execute(
                update(Message).where(Message.parent_id == message_id).values(parent_id=parent)
            )
            session.delete(row)
            session.flush()
            session.expire_all()
            tree = load_tree(session, conversation_id)
            if was_leaf:
                leaf = tree.newest_leaf_under(parent) if parent is not None else tree.leaf(None)
                conversation.active_leaf_id = leaf
            return tree.views(tree.leaf(conversation.active_leaf_id))

    def continue_reply(self, conversation_id: int, message_id: int) -> ReplyRecorder:
        """Reopen the assistant reply at the end of the shown branch so it can be extended.

        Its status goes back to 'partial' and its figures are cleared; the recorder starts
        with the stored text, so appended text extends it.

        Raises:
            UserFacingError: the message is not an assistant reply at the end of the branch.
            ConversationNotFound: no such conversation.
        """
        with self._db.session() as session:
            conversation = live_conversation(session, conversation_id)
            tree = load_tree(session, conversation_id)
            row = _member(tree, message_id)
            if row.role != "assistant" or tree.leaf(conversation.active_leaf_id) != message_id:
                raise UserFacingError(
                    "Only the last reply of the conversation can be continued. "
                    "Switch to its branch first, or send a new message."
                )
            if row.status == "partial":
                raise UserFacingError("This reply is still being written. Wait for it or stop it.")
            _reopen(row)
            conversation.active_leaf_id = message_id
            initial = row.content
        return ReplyRecorder(
            self._db,
            message_id,
            conversation_id,
            flush_interval=self._flush_interval,
            clock=self._clock,
            initial_text=initial,
        )


def _reopen(row: Message) -> None:
    row.status = "partial"
    row.error = ""
    row.stop_reason = None
    row.prompt_tokens = row.completion_tokens = None
    row.load_time_s = row.ttft_s = row.decode_tps = row.total_time_s = None
    row.updated_at = utc_now()
