"""The actions under each message: regenerate, edit and resend, continue, versions ‹ 2/3 ›,
delete, copy; and the Chat menu's "last message" shortcuts to them."""

from __future__ import annotations

from PySide6.QtCore import QObject, Slot
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMessageBox, QWidget

from app.chat import MessageView
from app.errors import WorkbenchError
from ui.chat_controller import ChatController, ReplyJob


def confirm_delete(parent: QWidget, message: MessageView) -> bool:
    """Ask before deleting a message (its text is gone for good)."""
    preview = " ".join(message.content.split())
    preview = preview if len(preview) <= 80 else preview[:79] + "…"
    answer = QMessageBox.question(
        parent,
        "Delete Message",
        f"Delete this message?\n\n“{preview}”\n\nThe messages after it stay.",
    )
    return answer == QMessageBox.StandardButton.Yes


class MessageActions(QObject):
    """Carries out what the links under a message ask for, through the chat controller.

    Args:
        chat: the chat controller (it streams the new replies).
    """

    def __init__(self, chat: ChatController, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.chat = chat
        self.confirm_delete = confirm_delete
        """Asked before a message is deleted (tests replace it)."""
        chat.view.action_requested.connect(self._on_view_action_requested)
        chat.view.edit_submitted.connect(self._on_view_edit_submitted)

    # ------------------------------------------------------------------ actions

    def regenerate(self, message_id: int) -> None:
        """Answer the user message before reply `message_id` again (a new version beside it)."""
        chat = self.chat
        if chat.refuse_while_busy() or chat.conversation_id is None:
            return
        path = chat.chosen_model()
        if not path:
            return
        try:
            parent = chat.service.regenerate_parent(chat.conversation_id, message_id)
        except WorkbenchError as exc:
            chat.view.banner.show_error(exc)
            return
        chat.begin_checked(ReplyJob("regenerate", target=parent), path)

    def continue_reply(self, message_id: int) -> None:
        """Let the model carry on writing a stopped or cut-off reply."""
        chat = self.chat
        if chat.refuse_while_busy() or chat.conversation_id is None:
            return
        path = chat.chosen_model()
        if path:
            chat.begin_checked(ReplyJob("continue", target=message_id), path)

    def edit(self, message_id: int, text: str) -> None:
        """Send an edited user message as a new version beside the original."""
        chat = self.chat
        if chat.refuse_while_busy() or chat.conversation_id is None:
            return
        path = chat.chosen_model()
        if not path:
            return
        try:
            chat.service.edit_user_message(chat.conversation_id, message_id, text)
        except WorkbenchError as exc:
            chat.view.banner.show_error(exc)
            return
        chat.view.accept_sent()
        chat.conversations_changed.emit()
        chat.begin_checked(ReplyJob("reply"), path)

    def start_edit(self, message_id: int) -> None:
        """Put a user message in the box to edit; Send forks a new version."""
        if self.chat.refuse_while_busy():
            return
        message = self.message(message_id)
        if message is not None:
            self.chat.view.start_edit(message_id, message.content)

    def switch_branch(self, message_id: int, step: int) -> None:
        """Show the previous (-1) or next (+1) version of a message."""
        chat = self.chat
        if chat.refuse_while_busy() or chat.conversation_id is None:
            return
        try:
            path = chat.service.switch_branch(chat.conversation_id, message_id, step)
        except WorkbenchError as exc:
            chat.view.banner.show_error(exc)
            return
        chat.view.show_messages(path)
        chat.update_meter()

    def delete_message(self, message_id: int) -> None:
        """Delete one message (after asking); the turns after it stay."""
        chat = self.chat
        if chat.refuse_while_busy() or chat.conversation_id is None:
            return
        message = self.message(message_id)
        if message is None or not self.confirm_delete(chat.view, message):
            return
        try:
            path = chat.service.delete_message(chat.conversation_id, message_id)
        except WorkbenchError as exc:
            chat.view.banner.show_error(exc)
            return
        chat.view.show_messages(path)
        chat.conversations_changed.emit()
        chat.update_meter()

    # ---------------------------------------------------------- the Chat menu

    @Slot()
    def regenerate_last(self) -> None:
        """Chat ▸ Regenerate: a new version of the last reply."""
        last = self.last("assistant")
        if last is not None:
            self.regenerate(last.id)

    @Slot()
    def continue_last(self) -> None:
        """Chat ▸ Continue: carry on the last reply."""
        if self.can_continue():
            self.continue_reply(self.path()[-1].id)

    @Slot()
    def edit_last(self) -> None:
        """Chat ▸ Edit Last Message."""
        last = self.last("user")
        if last is not None:
            self.start_edit(last.id)

    @Slot()
    def copy_last_reply(self) -> None:
        """Chat ▸ Copy Last Reply."""
        last = self.last("assistant")
        if last is not None:
            QGuiApplication.clipboard().setText(last.content)

    def can_continue(self) -> bool:
        """Whether the last message is a reply with text that can be carried on."""
        path = self.path()
        return bool(path) and path[-1].role == "assistant" and bool(path[-1].content)

    def path(self) -> list[MessageView]:
        """The open conversation's messages as shown (the active versions)."""
        chat = self.chat
        if chat.conversation_id is None:
            return []
        try:
            return chat.service.messages(chat.conversation_id)
        except WorkbenchError:
            return []

    def last(self, role: str) -> MessageView | None:
        """The last message of `role` on the shown path."""
        return next((m for m in reversed(self.path()) if m.role == role), None)

    def message(self, message_id: int) -> MessageView | None:
        """A message on the shown path."""
        return next((m for m in self.path() if m.id == message_id), None)

    # -------------------------------------------------------------------- slots

    @Slot(str, int)
    def _on_view_action_requested(self, action: str, message_id: int) -> None:
        if action == "regenerate":
            self.regenerate(message_id)
        elif action == "continue":
            self.continue_reply(message_id)
        elif action == "edit":
            self.start_edit(message_id)
        elif action == "delete":
            self.delete_message(message_id)
        elif action in ("prev", "next"):
            self.switch_branch(message_id, -1 if action == "prev" else 1)

    @Slot(int, str)
    def _on_view_edit_submitted(self, message_id: int, text: str) -> None:
        self.edit(message_id, text)
