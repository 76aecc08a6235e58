"""What the conversation list asks of the history: rename, pin, delete with undo, purge."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, Slot

from app.chat import ConversationService
from app.errors import WorkbenchError
from ui.chat_controller import ChatController
from ui.conversation_list import ConversationList

log = logging.getLogger(__name__)


class HistoryActions(QObject):
    """Carries out the conversation list's requests through the conversation service.

    A delete is soft until the list's Undo bar expires (or the app closes): then the
    conversation is purged for good.

    Args:
        service: the conversation service.
        listing: the conversation list (its signals are connected here).
        chat: the chat controller (a deleted open conversation is closed).
        refresh: reloads the list.
    """

    def __init__(
        self,
        service: ConversationService,
        listing: ConversationList,
        chat: ChatController,
        refresh: Callable[[], None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._service = service
        self._list = listing
        self._chat = chat
        self._refresh = refresh
        listing.rename_requested.connect(self._on_list_rename_requested)
        listing.delete_requested.connect(self._on_list_delete_requested)
        listing.pin_requested.connect(self._on_list_pin_requested)
        listing.undo_requested.connect(self._on_list_undo_requested)
        listing.undo_expired.connect(self._on_list_undo_expired)

    def purge_deleted(self) -> None:
        """Remove soft-deleted conversations for good (their undo is over)."""
        try:
            self._service.purge_deleted()
        except WorkbenchError as exc:
            log.warning("deleted conversations not purged yet: %s", exc)

    @Slot(int, str)
    def _on_list_rename_requested(self, conversation_id: int, title: str) -> None:
        try:
            self._service.rename(conversation_id, title)
        except WorkbenchError as exc:
            self._chat.view.banner.show_error(exc)
        self._refresh()

    @Slot(int)
    def _on_list_delete_requested(self, conversation_id: int) -> None:
        chat = self._chat
        if chat.busy and conversation_id == chat.conversation_id:
            chat.view.banner.show_message("Stop the reply before deleting this conversation.")
            return
        try:
            title = self._service.get(conversation_id).title
            self._service.delete(conversation_id)  # soft: Undo brings it back
        except WorkbenchError as exc:
            chat.view.banner.show_error(exc)
            return
        if conversation_id == chat.conversation_id:
            chat.conversation_id = None
            chat.view.show_messages([])
        self._refresh()
        self._list.show_undo(conversation_id, title)

    @Slot(int)
    def _on_list_undo_requested(self, conversation_id: int) -> None:
        try:
            self._service.restore(conversation_id)
        except WorkbenchError as exc:
            self._chat.view.banner.show_error(exc)
        self._refresh()

    @Slot(int)
    def _on_list_undo_expired(self, _conversation_id: int) -> None:
        self.purge_deleted()

    @Slot(int, bool)
    def _on_list_pin_requested(self, conversation_id: int, pinned: bool) -> None:
        try:
            self._service.set_pinned(conversation_id, pinned)
        except WorkbenchError as exc:
            self._chat.view.banner.show_error(exc)
        self._refresh()
