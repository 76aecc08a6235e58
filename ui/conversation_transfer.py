"""File ▸ Export Conversation… / Import Conversation…: the actions, dialogs and outcomes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog

from app.errors import WorkbenchError
from app.transfer import import_json, write_export

if TYPE_CHECKING:
    from ui.main_window import MainWindow


class ConversationTransfer(QObject):
    """Exports the open conversation (Markdown or JSON) and imports JSON exports.

    The dialogs go through `ask_export_path` / `ask_import_path` (tests replace them);
    outcomes and failures are said in the window's banner.
    """

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self._window = window
        self.export_action = QAction("&Export Conversation…", window)
        self.export_action.setShortcut(QKeySequence("Ctrl+Shift+E"))
        self.export_action.setEnabled(False)  # until a conversation is open
        self.import_action = QAction("&Import Conversation…", window)
        self.export_action.triggered.connect(self._on_export_action_triggered)
        self.import_action.triggered.connect(self._on_import_action_triggered)

    def update_actions(self) -> None:
        """Export is possible only with a conversation open."""
        self.export_action.setEnabled(self._window.chat.conversation_id is not None)

    def ask_export_path(self, title: str) -> Path | None:
        """Ask where to export (None: cancelled); the suffix follows the chosen type."""
        start = str(Path.home() / f"{title}.md")
        filters = "Markdown (*.md);;JSON (*.json)"
        filename, chosen = QFileDialog.getSaveFileName(
            self._window, "Export conversation", start, filters
        )
        if not filename:
            return None
        path = Path(filename)
        if path.suffix.lower() not in (".md", ".json"):
            path = path.with_name(path.name + (".json" if "json" in chosen else ".md"))
        return path

    def ask_import_path(self) -> Path | None:
        """Ask for an exported conversation to import (None: cancelled)."""
        filters = "Conversation exports (*.json);;All files (*)"
        filename, _ = QFileDialog.getOpenFileName(
            self._window, "Import conversation", str(Path.home()), filters
        )
        return Path(filename) if filename else None

    @Slot()
    def _on_export_action_triggered(self) -> None:
        conversation_id = self._window.chat.conversation_id
        if conversation_id is None:
            self._window.chat_view.banner.show_message("Open a conversation to export it.")
            return
        conversations = self._window.services.conversations
        try:
            title = conversations.get(conversation_id).title
            path = self.ask_export_path("".join(c for c in title if c not in '/\\:*?"<>|'))
            if path is None:
                return
            write_export(path, conversations, conversation_id)
        except WorkbenchError as exc:
            self._window.chat_view.banner.show_error(exc)
            return
        self._window.chat_view.banner.show_message(f"Exported '{title}' to {path}.")

    @Slot()
    def _on_import_action_triggered(self) -> None:
        path = self.ask_import_path()
        if path is None:
            return
        if self._window.services.database is None:
            self._window.chat_view.banner.show_message(
                "No history database is open to import into."
            )
            return
        try:
            conversation_id = import_json(self._window.services.database, path)
        except WorkbenchError as exc:
            self._window.chat_view.banner.show_error(exc)
            return
        if self._window.chat.busy:
            self._window.chat_view.banner.show_message(f"Imported {path.name}; it is in the list.")
        else:
            self._window.chat.open_conversation(conversation_id)
        self._window.refresh_conversations()
