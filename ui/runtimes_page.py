"""The Runtimes page: each runtime's state, where it is, what to do, and a Test button."""

from __future__ import annotations

import html

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import (
    QGridLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.runtimes import RuntimeEntry, RuntimeRegistry
from ui.workers import WorkerThread, start_worker

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
            self.checked.emit(self._registry.status(self._key))
        finally:
            self.finished.emit()


class RuntimesPage(QWidget):
    """One row per runtime: state, name and version, endpoint, detail and warnings, Test.

    Signals:
        status_changed(object): a row got a fresh `RuntimeEntry`.
    """

    status_changed = Signal(object)

    def __init__(self, registry: RuntimeRegistry, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Runtimes — LLM Workbench")
        self.registry = registry
        self.grid = QGridLayout()
        self.grid.setColumnStretch(1, 1)
        title = QLabel("<b>Runtimes</b> — where your models can run", self)
        hint = QLabel(
            "llama.cpp runs models inside the workbench. Ollama and OpenAI-compatible servers "
            "(vLLM, llama-server, LM Studio) run them elsewhere, on this machine or a bigger one.",
            self,
        )
        hint.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(hint)
        layout.addLayout(self.grid)
        layout.addStretch(1)
        self.rows: dict[str, tuple[QLabel, QLabel, QPushButton]] = {}
        self._checks: list[WorkerThread] = []
        self.rebuild()

    def rebuild(self) -> None:
        """One row per runtime key, each starting as "checking…"."""
        for i in reversed(range(self.grid.count())):
            item = self.grid.itemAt(i)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        self.rows.clear()
        for row, key in enumerate(self.registry.runtime_keys()):
            mark = QLabel("◌", self)
            text = QLabel(f"{html.escape(key)} — checking…", self)
            text.setWordWrap(True)
            button = QPushButton("Test", self)
            button.clicked.connect(lambda _=False, k=key: self.check(k))
            self.grid.addWidget(mark, row, 0)
            self.grid.addWidget(text, row, 1)
            self.grid.addWidget(button, row, 2)
            self.rows[key] = (mark, text, button)

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
        """Block until running checks end (window close, tests)."""
        for check in self._checks:
            check.wait(msecs)

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
        self.status_changed.emit(entry)
