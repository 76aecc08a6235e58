"""The history search results: conversation titles with highlighted snippets."""

from __future__ import annotations

import html
from collections.abc import Sequence

from PySide6.QtCore import QSize, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.history_search import SearchHit

_ID_ROLE = Qt.ItemDataRole.UserRole
_HTML_ROLE = Qt.ItemDataRole.UserRole + 1
_ROLE_NAMES = {"user": "You", "assistant": "Assistant", "system": "System"}


def hit_html(hit: SearchHit) -> str:
    """The rich text shown for one hit: the title, what matched, the highlighted snippet."""
    source = _ROLE_NAMES.get(hit.role, hit.role) if hit.message_id is not None else "Title"
    title = html.escape(hit.conversation_title, quote=False)
    return (
        f"<div><span style='font-weight:600'>{title}</span>"
        f" <span style='color:gray'>· {html.escape(source, quote=False)}</span></div>"
        f"<div>{hit.snippet_html}</div>"
    )


class HistorySearchView(QWidget):
    """A list of search hits; activating one (Enter, double-click) opens its conversation.

    Signals:
        hit_activated(int): the user chose the hit of this conversation id.
    """

    hit_activated = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget(self)
        self.list.setObjectName("search_results")
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.status = QLabel("", self)
        self.status.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.status.setStyleSheet("color: gray")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.status)
        self.list.itemActivated.connect(self._on_list_item_activated)

    def set_hits(self, hits: Sequence[SearchHit]) -> None:
        """Show these hits, the first one selected; "No matches." when there are none."""
        self.list.clear()
        for hit in hits:
            self._add_hit(hit)
        if hits:
            self.list.setCurrentRow(0)
        self.show_status("" if hits else "No matches.")

    def show_status(self, message: str) -> None:
        """A line under the list (no matches, a failure); "" hides it."""
        self.status.setText(message)
        self.status.setVisible(bool(message))

    def hit_count(self) -> int:
        """How many hits are listed."""
        return self.list.count()

    def hit_html_at(self, row: int) -> str:
        """The rich text of the hit in `row` (for tests)."""
        return str(self.list.item(row).data(_HTML_ROLE))

    def conversation_id_at(self, row: int) -> int:
        """The conversation the hit in `row` belongs to."""
        return int(self.list.item(row).data(_ID_ROLE))

    def move_selection(self, step: int) -> None:
        """Select the hit `step` rows down (negative: up), staying within the list."""
        if self.list.count() == 0:
            return
        row = min(max(self.list.currentRow() + step, 0), self.list.count() - 1)
        self.list.setCurrentRow(row)

    def activate_current(self) -> bool:
        """Emit `hit_activated` for the selected hit; False when there is none."""
        item = self.list.currentItem()
        if item is None:
            return False
        self.hit_activated.emit(int(item.data(_ID_ROLE)))
        return True

    def _add_hit(self, hit: SearchHit) -> None:
        rich = hit_html(hit)
        item = QListWidgetItem()
        item.setData(_ID_ROLE, hit.conversation_id)
        item.setData(_HTML_ROLE, rich)
        item.setToolTip(hit.conversation_title)
        label = QLabel(rich)
        label.setTextFormat(Qt.TextFormat.RichText)
        label.setWordWrap(True)
        label.setContentsMargins(4, 3, 4, 3)
        # Clicks go to the list, so selection and double-click work over the label.
        label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.list.addItem(item)
        self.list.setItemWidget(item, label)
        width = max(self.list.viewport().width(), 120)
        item.setSizeHint(QSize(width, max(label.heightForWidth(width), label.sizeHint().height())))

    @Slot(QListWidgetItem)
    def _on_list_item_activated(self, item: QListWidgetItem) -> None:
        self.hit_activated.emit(int(item.data(_ID_ROLE)))
