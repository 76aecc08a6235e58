"""The Runtimes page: each runtime's state, where it is, what to do, and a Test button.

Saved OpenAI-compatible endpoints are added, edited and removed here; the Ollama panel
(models, loaded models, pull) sits under the Ollama row.
"""

from __future__ import annotations

import html
from typing import cast

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.endpoints import EndpointStore, SavedEndpoint
from app.errors import WorkbenchError
from app.runtimes import RuntimeEntry, RuntimeRegistry
from app.settings import Settings
from runtimes.base import RuntimeStatus
from runtimes.ollama import OllamaRuntime
from ui.endpoint_editor import EndpointEditor
from ui.ollama_panel import OllamaPanel
from ui.workers import WorkerThread, start_worker, wait_all

_MARKS = {"available": ("●", "#2e7d32"), "not_found": ("○", "#777777"), "error": ("✕", "#b3541e")}
_STATES = {"available": "available", "not_found": "not found", "error": "error"}


class StatusWorker(QObject):
    """Checks one runtime off the GUI thread (server checks have short timeouts).

    Signals:
        checked(object): the `RuntimeEntry` with its fresh status.
        finished(): always last.
    """

    checked = Signal(object)
    finished = Signal()

    def __init__(self, registry: RuntimeRegistry, key: str) -> None:
        super().__init__()
        self._registry = registry
        self._key = key

    @Slot()
    def run(self) -> None:
        """Check the runtime; a status check reports problems as states, not exceptions."""
        try:
            entry = self._registry.status(self._key)
        except WorkbenchError as exc:  # e.g. an endpoint removed while its check ran
            kind = self._key.split(":", 1)[0]
            label = self._key.split(":", 1)[-1]
            entry = RuntimeEntry(
                self._key, kind, label, RuntimeStatus("error", "", "", exc.message)
            )
        try:
            self.checked.emit(entry)
        finally:
            self.finished.emit()


class RuntimesPage(QWidget):
    """One row per runtime: state, name and version, endpoint, detail and warnings, Test.

    Saved endpoints get Edit and Remove; "Add endpoint…" opens the editor. After a change
    the page rebuilds its registry from the settings (keeping keys held for this session)
    and announces it.

    Args:
        registry: the runtimes to show.
        settings: where endpoints are saved; None hides endpoint editing.

    Signals:
        status_changed(object): a row got a fresh `RuntimeEntry`.
        registry_changed(object): the new `RuntimeRegistry` after an endpoint changed.
    """

    status_changed = Signal(object)
    registry_changed = Signal(object)

    def __init__(
        self,
        registry: RuntimeRegistry,
        settings: Settings | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Runtimes — LLM Workbench")
        self.registry = registry
        self.store = EndpointStore(settings) if settings is not None else None
        self.grid = QGridLayout()
        self.grid.setColumnStretch(1, 1)
        title = QLabel("<b>Runtimes</b> — where your models can run", self)
        hint = QLabel(
            "llama.cpp runs models inside the workbench. Ollama and OpenAI-compatible servers "
            "(vLLM, llama-server, LM Studio) run them elsewhere, on this machine or a bigger one.",
            self,
        )
        hint.setWordWrap(True)
        self.notice = QLabel("", self)
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("color: #b3541e")
        self.notice.hide()
        self.add_button = QPushButton("Add endpoint…", self)
        self.add_button.setVisible(self.store is not None)
        self.add_button.clicked.connect(self._on_add_button_clicked)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addStretch(1)
        self.ollama_panel = OllamaPanel(self._ollama_runtime, self)
        self.ollama_panel.hide()
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(hint)
        layout.addWidget(self.notice)
        layout.addLayout(self.grid)
        layout.addLayout(buttons)
        layout.addStretch(1)
        self.rows: dict[str, tuple[QLabel, QLabel, QPushButton]] = {}
        self.endpoint_buttons: dict[str, tuple[QPushButton, QPushButton]] = {}
        self._row_widgets: list[QWidget] = []
        self._checks: list[WorkerThread] = []
        self.editor: EndpointEditor | None = None
        self.rebuild()

    def rebuild(self) -> None:
        """One row per runtime key, each starting as "checking…"; the Ollama panel under
        the Ollama row, Edit and Remove on saved endpoints."""
        for widget in self._row_widgets:
            self.grid.removeWidget(widget)
            widget.deleteLater()
        self._row_widgets.clear()
        self.grid.removeWidget(self.ollama_panel)
        self.rows.clear()
        self.endpoint_buttons.clear()
        row = 0
        for key in self.registry.runtime_keys():
            mark = QLabel("◌", self)
            text = QLabel(f"{html.escape(key)} — checking…", self)
            text.setWordWrap(True)
            button = QPushButton("Test", self)
            button.clicked.connect(lambda _=False, k=key: self.check(k))
            self.grid.addWidget(mark, row, 0)
            self.grid.addWidget(text, row, 1)
            self.grid.addWidget(button, row, 2)
            self._row_widgets += [mark, text, button]
            self.rows[key] = (mark, text, button)
            if key.startswith("openai:") and self.store is not None:
                self._add_endpoint_buttons(key.split(":", 1)[1], row)
            row += 1
            if key == "ollama":
                self.grid.addWidget(self.ollama_panel, row, 1, 1, 4)
                row += 1

    def _add_endpoint_buttons(self, name: str, row: int) -> None:
        edit = QPushButton("Edit", self)
        edit.clicked.connect(lambda _=False, n=name: self.edit_endpoint(n))
        remove = QPushButton("Remove", self)
        remove.clicked.connect(lambda _=False, n=name: self.remove_endpoint(n))
        self.grid.addWidget(edit, row, 3)
        self.grid.addWidget(remove, row, 4)
        self._row_widgets += [edit, remove]
        self.endpoint_buttons[name] = (edit, remove)

    # ------------------------------------------------------------- endpoints

    def add_endpoint(self) -> EndpointEditor:
        """Open the editor for a new endpoint (window-modal, not blocking)."""
        return self._open_editor(None)

    def edit_endpoint(self, name: str) -> EndpointEditor | None:
        """Open the editor on the saved endpoint `name`."""
        assert self.store is not None
        try:
            endpoint = self.store.get(name)
        except WorkbenchError as exc:
            self.show_notice(exc.message)
            return None
        return self._open_editor(endpoint)

    def remove_endpoint(self, name: str, confirm: bool = True) -> None:
        """Forget the endpoint `name` (after asking, unless `confirm` is False)."""
        assert self.store is not None
        if confirm:
            answer = QMessageBox.question(
                self, "Remove endpoint", f"Remove the endpoint “{name}” and its saved key?"
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        try:
            self.store.remove(name)
        except WorkbenchError as exc:
            self.show_notice(exc.message)
            return
        self._apply_endpoints()

    def show_notice(self, message: str) -> None:
        """Show one sentence above the rows ("" hides it)."""
        self.notice.setText(message)
        self.notice.setVisible(bool(message))

    def _open_editor(self, endpoint: SavedEndpoint | None) -> EndpointEditor:
        assert self.store is not None
        if self.editor is not None:
            self.editor.deleteLater()
        self.editor = EndpointEditor(self.store, endpoint, self)
        self.editor.saved.connect(self._on_editor_saved)
        self.editor.key_not_stored.connect(self._on_editor_key_not_stored)
        self.editor.open()
        return self.editor

    def _apply_endpoints(self) -> None:
        """Rebuild the registry from the saved endpoints, the rows, and check them again."""
        assert self.store is not None
        store = self.store
        # Built on this page's store, not `registry_for`: a key kept for this session only
        # (no keyring) lives in the store's memory and must reach the runtime.
        self.registry = RuntimeRegistry(
            endpoints=[(e.name, e.base_url) for e in store.list()],
            endpoint_runtime=store.runtime_for,
        )
        self.rebuild()
        self.check_all()
        self.registry_changed.emit(self.registry)

    @Slot(object)
    def _on_editor_saved(self, _endpoint: SavedEndpoint) -> None:
        self._apply_endpoints()

    @Slot(str)
    def _on_editor_key_not_stored(self, _message: str) -> None:
        self.show_notice(
            "API keys cannot be stored on this system; the key is used for this session only."
        )

    @Slot()
    def _on_add_button_clicked(self) -> None:
        self.add_endpoint()

    def _ollama_runtime(self) -> OllamaRuntime:
        return cast(OllamaRuntime, self.registry.get("ollama"))

    # ---------------------------------------------------------------- checks

    def check_all(self) -> None:
        """Check every runtime (each on its own worker thread)."""
        for key in self.rows:
            self.check(key)

    def check(self, key: str) -> None:
        """Check one runtime now."""
        mark, _text, button = self.rows[key]
        button.setEnabled(False)
        mark.setText("◌")
        worker = StatusWorker(self.registry, key)

        def connect() -> None:
            worker.checked.connect(self._on_worker_checked)

        self._checks = [c for c in self._checks if c.running()]
        self._checks.append(start_worker(worker, connect, self))

    def wait_for_checks(self, msecs: int = 10_000) -> None:
        """Block until running checks and Ollama requests end (window close, tests)."""
        wait_all(self._checks, msecs)
        self.ollama_panel.wait_for_tasks(msecs)

    @Slot(object)
    def _on_worker_checked(self, entry: RuntimeEntry) -> None:
        if entry.key not in self.rows:
            return
        mark, text, button = self.rows[entry.key]
        symbol, colour = _MARKS[entry.status.state]
        mark.setText(symbol)
        mark.setStyleSheet(f"color: {colour}; font-size: 16px")
        status = entry.status
        head = f"<b>{html.escape(entry.label)}</b>"
        if status.version:
            head += f" {html.escape(status.version)}"
        head += f" · {_STATES[status.state]}"
        if status.endpoint:
            head += f" · <code>{html.escape(status.endpoint)}</code>"
        lines = [head, html.escape(status.detail)]
        lines += [f"<span style='color:#b3541e'>⚠ {html.escape(w)}</span>" for w in status.warnings]
        text.setText("<br>".join(lines))
        button.setEnabled(True)
        if entry.key == "ollama":
            self._show_ollama(entry)
        self.status_changed.emit(entry)

    def _show_ollama(self, entry: RuntimeEntry) -> None:
        self.ollama_panel.show()
        if entry.status.state == "available":
            self.ollama_panel.refresh()
        else:
            self.ollama_panel.set_unavailable(entry.status.detail)
