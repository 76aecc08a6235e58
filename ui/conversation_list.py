"""The left panel: the conversation list with New, Rename, Delete and history search."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from PySide6.QtCore import QEvent, QObject, QPoint, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.chat import ConversationSummary
from app.errors import WorkbenchError
from app.history_search import SearchHit
from ui.history_search_view import HistorySearchView

log = logging.getLogger(__name__)

_ID_ROLE = Qt.ItemDataRole.UserRole
SEARCH_DEBOUNCE_MS = 200
"""Quiet time after the last keystroke before the search runs."""

HistorySearch = Callable[[str], Sequence[SearchHit]]
"""Runs a search for the typed text (e.g. `functools.partial(search_history, db)`)."""


class ConversationList(QWidget):
    """Lists conversations, most recent first; a search box above finds any of them.

    Typing in the search box (after a short pause) replaces the list with matching
    titles and messages; Enter or a double-click opens one, Esc returns to the list.
    Ctrl+K (Cmd+K on macOS) anywhere in the window jumps to the search box.

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
        self._build_search(layout)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.empty)
        self.new_button.clicked.connect(self.new_requested)
        self.list.currentItemChanged.connect(self._on_list_current_item_changed)
        self.list.itemChanged.connect(self._on_list_item_changed)
        self.list.customContextMenuRequested.connect(self._on_list_context_menu_requested)
        self._filling = False

    def _build_search(self, layout: QVBoxLayout) -> None:
        self._search: HistorySearch | None = None
        self.search_box = QLineEdit(self)
        self.search_box.setObjectName("history_search")
        self.search_box.setPlaceholderText("Search chats (Ctrl+K)")
        self.search_box.setClearButtonEnabled(True)
        self.search_box.installEventFilter(self)
        self.results = HistorySearchView(self)
        self.results.hide()
        self.search_action = QAction("&Search Chats", self)
        self.search_action.setShortcut(QKeySequence("Ctrl+K"))
        self.search_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.addAction(self.search_action)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(SEARCH_DEBOUNCE_MS)
        layout.addWidget(self.search_box)
        layout.addWidget(self.results, 1)
        self.search_box.textChanged.connect(self._on_search_box_text_changed)
        self.search_box.returnPressed.connect(self._on_search_box_return_pressed)
        self._debounce.timeout.connect(self._on_debounce_timeout)
        self.results.hit_activated.connect(self._on_results_hit_activated)
        self.search_action.triggered.connect(self._on_search_action_triggered)

    def set_search(self, search: HistorySearch | None) -> None:
        """Give the box its search function (None: searching shows a hint instead)."""
        self._search = search

    def focus_search(self) -> None:
        """Put the cursor in the search box with its text selected."""
        self.search_box.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search_box.selectAll()

    def clear_search(self) -> None:
        """Empty the search box and show the conversation list again."""
        self._debounce.stop()
        self.search_box.clear()
        self._show_results(False)

    def searching(self) -> bool:
        """Whether search results are shown instead of the list."""
        return not self.results.isHidden()

    def run_search(self) -> None:
        """Search for the box's text now (the debounce timer calls this)."""
        self._debounce.stop()
        query = self.search_box.text()
        if not query.strip():
            self._show_results(False)
            return
        self._show_results(True)
        if self._search is None:
            self.results.set_hits([])
            self.results.show_status("Search is not available.")
            return
        try:
            hits = self._search(query)
        except WorkbenchError as exc:
            log.warning("history search failed: %s", exc)
            self.results.set_hits([])
            self.results.show_status(f"Search failed: {exc}")
            return
        self.results.set_hits(hits)

    def _show_results(self, shown: bool) -> None:
        self.results.setVisible(shown)
        self.list.setVisible(not shown)
        self.empty.setVisible(not shown and self.list.count() == 0)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Esc, Up and Down in the search box act on the results."""
        if watched is self.search_box and isinstance(event, QKeyEvent):
            key = event.key()
            if event.type() == QEvent.Type.ShortcutOverride and key == Qt.Key.Key_Escape:
                # Claim Esc from the window's shortcuts (Stop Reply) while a search is open.
                if self.search_box.text() or self.searching():
                    event.accept()
                    return True
            elif event.type() == QEvent.Type.KeyPress:
                if key == Qt.Key.Key_Escape and (self.search_box.text() or self.searching()):
                    self.clear_search()
                    return True
                if key in (Qt.Key.Key_Down, Qt.Key.Key_Up) and self.searching():
                    self.results.move_selection(1 if key == Qt.Key.Key_Down else -1)
                    return True
        return super().eventFilter(watched, event)

    @Slot(str)
    def _on_search_box_text_changed(self, text: str) -> None:
        if text.strip():
            self._debounce.start()
        else:
            self._debounce.stop()
            self._show_results(False)

    @Slot()
    def _on_search_box_return_pressed(self) -> None:
        if self._debounce.isActive():
            self.run_search()
        if self.searching():
            self.results.activate_current()

    @Slot()
    def _on_debounce_timeout(self) -> None:
        self.run_search()

    @Slot(int)
    def _on_results_hit_activated(self, conversation_id: int) -> None:
        self.conversation_selected.emit(conversation_id)

    @Slot()
    def _on_search_action_triggered(self) -> None:
        self.focus_search()

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
        self.empty.setVisible(not conversations and not self.searching())

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
