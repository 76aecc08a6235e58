"""The "If the model fails, retry on" box under the chat: one fallback model per conversation."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Slot

from app.chat import ConversationService
from app.errors import WorkbenchError
from ui.chat_view import ChatView
from ui.model_picker import ModelPicker


class FallbackControl(QObject):
    """Fills the fallback box from the picker and stores the choice with the conversation.

    Args:
        service: the conversation service.
        view: the chat view (its `fallback` box and banner).
        picker: the toolbar's model picker (the choices offered).
        conversation: returns the open conversation's id, creating one when `create` is True.
    """

    def __init__(
        self,
        service: ConversationService,
        view: ChatView,
        picker: ModelPicker,
        conversation: Callable[[bool], int | None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._service = service
        self._view = view
        self._picker = picker
        self._conversation = conversation
        view.fallback.about_to_open.connect(self._on_fallback_about_to_open)
        view.fallback.activated.connect(self._on_fallback_activated)

    def show(self) -> None:
        """Show the open conversation's fallback (or none)."""
        conversation_id = self._conversation(False)
        current = self._service.fallback(conversation_id) if conversation_id else None
        combo = self._view.fallback
        combo.blockSignals(True)
        try:
            combo.clear()
            combo.addItem("no fallback", "")
            if current is not None:
                combo.addItem(current[1], current[0])
                combo.setCurrentIndex(1)
        finally:
            combo.blockSignals(False)

    def set(self, choice: str, name: str) -> None:
        """Make `choice` the open conversation's fallback ("" for none)."""
        conversation_id = self._conversation(True)
        if conversation_id is None:  # it could not be created; the banner says why
            return
        try:
            self._service.set_fallback(conversation_id, choice, name if choice else "")
        except WorkbenchError as exc:
            self._view.banner.show_error(exc)
            return
        self.show()

    @Slot()
    def _on_fallback_about_to_open(self) -> None:
        combo = self._view.fallback
        chosen = combo.currentData()
        combo.blockSignals(True)
        try:
            combo.clear()
            combo.addItem("no fallback", "")
            for name, choice in self._picker.choices():
                combo.addItem(name, choice)
            combo.setCurrentIndex(max(combo.findData(chosen), 0))
        finally:
            combo.blockSignals(False)

    @Slot(int)
    def _on_fallback_activated(self, index: int) -> None:
        combo = self._view.fallback
        self.set(str(combo.itemData(index) or ""), combo.itemText(index))
