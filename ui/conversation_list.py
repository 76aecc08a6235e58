"""The left panel: conversations grouped by day, with pins, undoable delete and search."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, QRectF, Qt, QTimer, Signal, Slot
from PySide6.QtGui import (
    QAction,
    QColor,
    QIcon,
    QKeyEvent,
    QKeySequence,
    QPainter,
    QPalette,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.chat import ConversationSummary
from app.errors import WorkbenchError
from app.history_search import SearchHit
from ui.conversation_groups import group_conversations
from ui.history_search_view import HistorySearchView

log = logging.getLogger(__name__)

_ID_ROLE = Qt.ItemDataRole.UserRole
_PINNED_ROLE = Qt.ItemDataRole.UserRole + 1
_HEADER_ROLE = Qt.ItemDataRole.UserRole + 2
_LIST_KEYS = (Qt.Key.Key_Delete, Qt.Key.Key_Backspace, Qt.Key.Key_F2)
_UNDO_TITLE_CHARS = 40
UNDO_TIMEOUT_MS = 8000
"""How long the "Deleted … · Undo" bar stays before the deletion becomes final."""
SEARCH_DEBOUNCE_MS = 200
"""Quiet time after the last keystroke before the search runs."""

HistorySearch = Callable[[str], Sequence[SearchHit]]
"""Runs a search for the typed text (e.g. `functools.partial(search_history, db)`)."""


class ConversationList(QWidget):
    """Lists conversations under day headers, pinned ones first; a search box finds any.

    Typing in the search box (after a short pause) replaces the list with matching
    titles and messages; Enter or a double-click opens one, Esc returns to the list.
    Ctrl+K (Cmd+K on macOS) anywhere in the window jumps to the search box. F2 or a
    double-click renames a row in place; Delete or Backspace deletes it at once, and
    the owner calls `show_undo` to offer taking that back for a few seconds.

    Signals:
        conversation_selected(int): the user opened this conversation.
        new_requested(): "New chat" was pressed.
        rename_requested(int, str): the user edited a title in place.
        delete_requested(int): the user asked to delete a conversation (not confirmed:
            the owner should delete it softly and call `show_undo`).
        pin_requested(int, bool): the user chose Pin (True) or Unpin (False).
        undo_requested(int): Undo was pressed on the bar for this deleted conversation.
        undo_expired(int): the undo bar for this conversation timed out or was replaced;
            its deletion is final.
    """

    conversation_selected = Signal(int)
    new_requested = Signal()
    rename_requested = Signal(int, str)
    delete_requested = Signal(int)
    pin_requested = Signal(int, bool)
    undo_requested = Signal(int)
    undo_expired = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.new_button = QPushButton("+ New chat", self)
        self.new_button.setToolTip("Start a new conversation (Ctrl+N)")
        self.list = QListWidget(self)
        self.list.setObjectName("conversations")
        # F2 is handled in eventFilter on every platform (EditKeyPressed is Return on macOS).
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked)
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
        self._build_undo_bar(layout)
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        """Where "now" comes from when grouping by day (tests replace it)."""
        self._header_font = self.list.font()
        self._header_font.setBold(True)
        if self._header_font.pointSizeF() > 0:  # -1 when the font is sized in pixels
            self._header_font.setPointSizeF(self._header_font.pointSizeF() * 0.85)
        self._pin_icon = _pin_icon(self.palette().color(QPalette.ColorRole.PlaceholderText))
        self.list.installEventFilter(self)
        self.new_button.clicked.connect(self.new_requested)
        self.list.currentItemChanged.connect(self._on_list_current_item_changed)
        self.list.itemChanged.connect(self._on_list_item_changed)
        self.list.customContextMenuRequested.connect(self._on_list_context_menu_requested)
        self._filling = False

    def _build_undo_bar(self, layout: QVBoxLayout) -> None:
        self._undo_id: int | None = None
        self.undo_timeout_ms = UNDO_TIMEOUT_MS
        self.undo_bar = QFrame(self)
        self.undo_bar.setObjectName("undo_bar")
        self.undo_bar.setFrameShape(QFrame.Shape.StyledPanel)
        self.undo_label = QLabel("", self.undo_bar)
        self.undo_button = QPushButton("Undo", self.undo_bar)
        self.undo_button.setFlat(True)
        self.undo_button.setToolTip("Bring the conversation back")
        bar = QHBoxLayout(self.undo_bar)
        bar.setContentsMargins(6, 2, 2, 2)
        bar.addWidget(self.undo_label, 1)
        bar.addWidget(self.undo_button)
        self.undo_bar.hide()
        layout.addWidget(self.undo_bar)
        self._undo_timer = QTimer(self)
        self._undo_timer.setSingleShot(True)
        self.undo_button.clicked.connect(self._on_undo_button_clicked)
        self._undo_timer.timeout.connect(self._on_undo_timer_timeout)

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
        """Esc, Up and Down in the search box act on the results; F2 and Delete on the list."""
        if (
            watched is self.list
            and isinstance(event, QKeyEvent)
            and event.type() in (QEvent.Type.KeyPress, QEvent.Type.ShortcutOverride)
            and self._handle_list_key(event)
        ):
            return True
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
        """Replace the list, grouped by day; select `current` without emitting a signal."""
        self._filling = True
        self.list.setUpdatesEnabled(False)
        try:
            self.list.clear()
            for label, members in group_conversations(conversations, self.clock()):
                self.list.addItem(self._header_item(label))
                for conv in members:
                    item = self._conversation_item(conv)
                    self.list.addItem(item)
                    if conv.id == current:
                        self.list.setCurrentItem(item)
        finally:
            self.list.setUpdatesEnabled(True)
            self._filling = False
        self.empty.setVisible(not conversations and not self.searching())

    def _header_item(self, label: str) -> QListWidgetItem:
        # No flags at all: not selectable, and the view's arrow keys skip disabled rows.
        item = QListWidgetItem(label)
        item.setFlags(Qt.ItemFlag.NoItemFlags)
        item.setData(_HEADER_ROLE, True)
        item.setFont(self._header_font)
        return item

    def _conversation_item(self, conv: ConversationSummary) -> QListWidgetItem:
        item = QListWidgetItem(conv.title)
        item.setData(_ID_ROLE, conv.id)
        item.setData(_PINNED_ROLE, conv.pinned)
        if conv.pinned:
            item.setIcon(self._pin_icon)
        item.setToolTip(
            f"{conv.title}\n{conv.model_name or 'no model'} · {conv.message_count} messages"
        )
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
        return item

    def _conversation_items(self) -> list[QListWidgetItem]:
        items = (self.list.item(i) for i in range(self.list.count()))
        return [item for item in items if item.data(_ID_ROLE) is not None]

    def headers(self) -> list[str]:
        """The section headers shown, top to bottom (for tests)."""
        items = (self.list.item(i) for i in range(self.list.count()))
        return [item.text() for item in items if item.data(_HEADER_ROLE)]

    def titles(self) -> list[str]:
        """The conversation titles shown, top to bottom, without headers (for tests)."""
        return [item.text() for item in self._conversation_items()]

    def item_for(self, conversation_id: int) -> QListWidgetItem | None:
        """The row of that conversation, if it is listed."""
        for item in self._conversation_items():
            if item.data(_ID_ROLE) == conversation_id:
                return item
        return None

    def current_id(self) -> int | None:
        """The id of the selected conversation (never a header)."""
        item = self.list.currentItem()
        conv_id = item.data(_ID_ROLE) if item is not None else None
        return int(conv_id) if conv_id is not None else None

    def start_rename(self, conversation_id: int) -> None:
        """Open the in-place editor on that conversation's title."""
        item = self.item_for(conversation_id)
        if item is not None:
            self.list.setCurrentItem(item)
            self.list.editItem(item)

    def confirm_delete(self, conversation_id: int, title: str) -> None:
        """Emit `delete_requested` at once: deleting is undone from the bar, not confirmed.

        Kept for callers of the old confirm-first flow; `title` is unused.
        """
        del title
        self.delete_requested.emit(conversation_id)

    # ------------------------------------------------------------------ undo

    def show_undo(self, conversation_id: int, title: str) -> None:
        """Show "Deleted “title” · Undo" under the list for `undo_timeout_ms`.

        A bar still showing for another conversation is replaced, and that deletion
        expires at once (`undo_expired` is emitted for it).
        """
        previous = self._undo_id
        if previous is not None and previous != conversation_id:
            self._undo_id = None
            self.undo_expired.emit(previous)
        self._undo_id = conversation_id
        shown = title if len(title) <= _UNDO_TITLE_CHARS else title[: _UNDO_TITLE_CHARS - 1] + "…"
        self.undo_label.setText(f"Deleted “{shown}”")
        self.undo_label.setToolTip(title)
        self.undo_bar.show()
        self._undo_timer.start(self.undo_timeout_ms)

    def pending_undo(self) -> int | None:
        """The conversation whose deletion can still be undone, if any."""
        return self._undo_id

    def expire_undo(self) -> None:
        """End the undo window now (e.g. on quit): hide the bar and emit `undo_expired`."""
        self._undo_timer.stop()
        self.undo_bar.hide()
        conv_id, self._undo_id = self._undo_id, None
        if conv_id is not None:
            self.undo_expired.emit(conv_id)

    @Slot()
    def _on_undo_button_clicked(self) -> None:
        self._undo_timer.stop()
        self.undo_bar.hide()
        conv_id, self._undo_id = self._undo_id, None
        if conv_id is not None:
            self.undo_requested.emit(conv_id)

    @Slot()
    def _on_undo_timer_timeout(self) -> None:
        self.expire_undo()

    # ------------------------------------------------------------ list events

    def _handle_list_key(self, event: QKeyEvent) -> bool:
        """F2 renames and Delete/Backspace deletes the selected row; True when handled."""
        key = event.key()
        if key not in _LIST_KEYS or event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            return False
        conv_id = self.current_id()
        if conv_id is None:
            return False
        if event.type() == QEvent.Type.KeyPress:
            if key == Qt.Key.Key_F2:
                self.start_rename(conv_id)
            else:
                self.delete_requested.emit(conv_id)
        # A ShortcutOverride is accepted too, so no window shortcut takes these keys.
        event.accept()
        return True

    @Slot(QListWidgetItem, QListWidgetItem)
    def _on_list_current_item_changed(
        self, current: QListWidgetItem | None, _previous: QListWidgetItem | None
    ) -> None:
        if current is None or self._filling:
            return
        conv_id = current.data(_ID_ROLE)
        if conv_id is not None:
            self.conversation_selected.emit(int(conv_id))

    @Slot(QListWidgetItem)
    def _on_list_item_changed(self, item: QListWidgetItem) -> None:
        conv_id = item.data(_ID_ROLE)
        if not self._filling and conv_id is not None:
            self.rename_requested.emit(int(conv_id), item.text().strip())

    @Slot(QPoint)
    def _on_list_context_menu_requested(self, pos: QPoint) -> None:
        menu = self.context_menu_for(self.list.itemAt(pos))
        if menu is not None:
            menu.exec(self.list.mapToGlobal(pos))
            menu.deleteLater()

    def context_menu_for(self, item: QListWidgetItem | None) -> QMenu | None:
        """The menu for a row: Rename, Pin or Unpin, Delete (None for headers and blanks)."""
        conv_id = item.data(_ID_ROLE) if item is not None else None
        if item is None or conv_id is None:
            return None
        # Act by id, not by item: a refresh while the menu is open replaces the items.
        conv_id = int(conv_id)
        pinned = bool(item.data(_PINNED_ROLE))
        menu = QMenu(self)
        menu.addAction("Rename", lambda: self.start_rename(conv_id))
        menu.addAction(
            "Unpin" if pinned else "Pin", lambda: self.pin_requested.emit(conv_id, not pinned)
        )
        menu.addSeparator()
        menu.addAction("Delete", lambda: self.delete_requested.emit(conv_id))
        return menu


def _pin_icon(color: QColor) -> QIcon:
    """A small drawn pushpin: fonts differ in emoji, a painted icon looks the same everywhere."""
    pixmap = QPixmap(16, 16)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QPen(color, 1.6))
    painter.drawLine(QPointF(8, 8), QPointF(8, 15))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(color)
    painter.drawRoundedRect(QRectF(4.5, 6, 7, 2.2), 1, 1)
    painter.drawEllipse(QRectF(5, 1, 6, 6))
    painter.end()
    return QIcon(pixmap)
