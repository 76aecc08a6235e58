"""The left panel: the conversation list with New, Rename and Delete."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QPoint, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.chat import ConversationSummary

_ID_ROLE = Qt.ItemDataRole.UserRole


class ConversationList(QWidget):
    """Lists conversations, most recent first.

    Signals:
        conversation_selected(int): the user opened this conversation.
        new_requested(): "New chat" was pressed.
        rename_requested(int, str): the user edited a title in place.
        delete_requested(int): the user confirmed deleting a conversation.
    """

    conversation_selected = Signal(int)
    new_requested = Signal()
    rename_requested = Signal(int, str)
    delete_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.new_button = QPushButton("+ New chat", self)
        self.new_button.setToolTip("Start a new conversation (Ctrl+N)")
        self.list = QListWidget(self)
        self.list.setObjectName("conversations")
        self.list.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.empty = QLabel("No conversations yet.", self)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet("color: gray")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 0, 6)
        top = QHBoxLayout()
        top.addWidget(self.new_button)
        layout.addLayout(top)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.empty)
        self.new_button.clicked.connect(self.new_requested)
        self.list.currentItemChanged.connect(self._on_list_current_item_changed)
        self.list.itemChanged.connect(self._on_list_item_changed)
        self.list.customContextMenuRequested.connect(self._on_list_context_menu_requested)
        self._filling = False

    def set_conversations(
        self, conversations: Sequence[ConversationSummary], current: int | None
    ) -> None:
        """Replace the list; select `current` without emitting `conversation_selected`."""
        self._filling = True
        try:
            self.list.clear()
            for conv in conversations:
                item = QListWidgetItem(conv.title)
                item.setData(_ID_ROLE, conv.id)
                item.setToolTip(
                    f"{conv.title}\n{conv.model_name or 'no model'} · {conv.message_count} messages"
                )
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
                self.list.addItem(item)
                if conv.id == current:
                    self.list.setCurrentItem(item)
        finally:
            self._filling = False
        self.empty.setVisible(not conversations)

    def titles(self) -> list[str]:
        """The titles shown, top to bottom (for tests)."""
        return [self.list.item(i).text() for i in range(self.list.count())]

    def current_id(self) -> int | None:
        """The id of the selected conversation."""
        item = self.list.currentItem()
        return int(item.data(_ID_ROLE)) if item is not None else None

    def start_rename(self, conversation_id: int) -> None:
        """Open the in-place editor on that conversation's title."""
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.data(_ID_ROLE) == conversation_id:
                self.list.editItem(item)

    @Slot(QListWidgetItem, QListWidgetItem)
    def _on_list_current_item_changed(
        self, current: QListWidgetItem | None, _previous: QListWidgetItem | None
    ) -> None:
        if current is not None and not self._filling:
            self.conversation_selected.emit(int(current.data(_ID_ROLE)))

    @Slot(QListWidgetItem)
    def _on_list_item_changed(self, item: QListWidgetItem) -> None:
        if not self._filling:
            self.rename_requested.emit(int(item.data(_ID_ROLE)), item.text().strip())

    @Slot(QPoint)
    def _on_list_context_menu_requested(self, pos: QPoint) -> None:
        item = self.list.itemAt(pos)
        if item is None:
            return
        conv_id = int(item.data(_ID_ROLE))
        menu = QMenu(self)
        menu.addAction("Rename", lambda: self.list.editItem(item))
        menu.addAction("Delete…", lambda: self.confirm_delete(conv_id, item.text()))
        menu.exec(self.list.mapToGlobal(pos))

    def confirm_delete(self, conversation_id: int, title: str) -> None:
        """Ask, then emit `delete_requested`."""
        answer = QMessageBox.question(
            self,
            "Delete conversation",
            f"Delete “{title}” and all its messages? This cannot be undone.",
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.delete_requested.emit(conversation_id)
