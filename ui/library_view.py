"""The Library tab: every local model (workbench, Hugging Face cache, Ollama, LM Studio, folders).

Models are read in place, never copied. Each row: name, source, repository or Ollama name,
size, architecture, quantization, context, and the fit badge for this machine (judged on a
worker thread). Delete frees disk only for files the workbench owns; for the others it says
where they live and which tool removes them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QFileDialog,
    QMessageBox,
    QTableWidgetItem,
    QWidget,
)

from app.errors import WorkbenchError
from app.fit_types import FitVerdict
from app.library import LocalModel
from ui.fit_badge import VERDICT_ROLE, FitBadgeDelegate, badge_tooltip
from ui.table_panel import lay_out_panel, read_only_table

log = logging.getLogger(__name__)

SOURCE_LABELS = {
    "demo": "Demo",
    "models-folder": "Workbench",
    "opened": "Opened",
    "huggingface": "Hugging Face cache",
    "ollama": "Ollama",
    "lmstudio": "LM Studio",
    "folder": "Your folder",
}
COLUMNS = ("Model", "Source", "Repository", "Size", "Arch", "Quant", "Context", "Last used", "Fit")


def _when(moment: datetime | None) -> str:
    """A last-use time as a local date and time ("never" when not loaded here)."""
    if moment is None:
        return "never"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.0f} MB"


class LibraryView(QWidget):
    """The local models and what to do with them.

    Signals:
        rescan_requested(): the user asked to rescan (the window rescans and calls
            `set_models`).
        folder_added(str): the user added a folder to search for models.
        delete_requested(object): the `LocalModel` the user confirmed deleting.
    """

    rescan_requested = Signal()
    folder_added = Signal(str)
    delete_requested = Signal(object)

    def __init__(
        self,
        confirm: Callable[[str], bool] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._confirm = confirm or self._ask
        self._models: list[LocalModel] = []
        self._fits: dict[str, FitVerdict] = {}
        self._last_used: dict[str, datetime] = {}
        self.table = read_only_table(self, COLUMNS)
        self.table.setItemDelegateForColumn(COLUMNS.index("Fit"), FitBadgeDelegate(self.table))
        (self.rescan_button, self.add_folder_button, self.delete_button), self.status = (
            lay_out_panel(self, self.table, ("Rescan", "Add Folder…", "Delete…"))
        )
        self.rescan_button.clicked.connect(self.rescan_requested)
        self.add_folder_button.clicked.connect(self._on_add_folder_button_clicked)
        self.delete_button.clicked.connect(self._on_delete_button_clicked)

    def set_models(
        self, models: Sequence[LocalModel], last_used: dict[str, datetime] | None = None
    ) -> None:
        """Show these models (keeps known fit badges); `last_used`: path -> last load."""
        self._models = list(models)
        self._last_used = last_used or {}
        self.table.setRowCount(0)
        for model in self._models:
            self._add_row(model)
        sources = {SOURCE_LABELS.get(m.source, m.source) for m in self._models}
        where = ", ".join(sorted(sources)) if sources else "nowhere yet"
        self.status.setText(f"{len(self._models)} models · from {where}")

    def set_fits(self, fits: dict[str, FitVerdict]) -> None:
        """Show fit badges (path -> verdict)."""
        self._fits.update(fits)
        column = COLUMNS.index("Fit")
        for row, model in enumerate(self._models):
            verdict = self._fits.get(str(model.path))
            item = self.table.item(row, column)
            if verdict is not None and item is not None:
                item.setText(verdict.badge)
                item.setData(VERDICT_ROLE, verdict)
                item.setToolTip(badge_tooltip(verdict))

    def selected_model(self) -> LocalModel | None:
        """The model of the selected row, if any."""
        rows = self.table.selectionModel().selectedRows()
        return self._models[rows[0].row()] if rows else None

    def _add_row(self, model: LocalModel) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        context = f"{model.context_length:,}" if model.context_length else ""
        values = (
            model.name,
            SOURCE_LABELS.get(model.source, model.source),
            model.repo,
            _size(model.size_bytes),
            model.architecture,
            model.quant,
            context,
            _when(self._last_used.get(str(model.path))),
            "",
        )
        for column, text in enumerate(values):
            item = QTableWidgetItem(text)
            item.setToolTip(model.problem or str(model.path))
            if model.problem and column == 0:
                item.setForeground(Qt.GlobalColor.darkRed)
            self.table.setItem(row, column, item)
        verdict = self._fits.get(str(model.path))
        if verdict is not None:
            self.set_fits({str(model.path): verdict})

    @Slot()
    def _on_add_folder_button_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of GGUF models")
        if folder:
            self.folder_added.emit(folder)

    @Slot()
    def _on_delete_button_clicked(self) -> None:
        model = self.selected_model()
        if model is None:
            self.status.setText("Choose a model to delete.")
            return
        if not model.owned:  # the library refuses and says which tool owns it
            self.delete_requested.emit(model)
            return
        if self._confirm(f"Delete {model.name} ({_size(model.size_bytes)}) from disk?"):
            self.delete_requested.emit(model)

    def _ask(self, question: str) -> bool:
        answer = QMessageBox.question(self, "Delete model", question)
        return answer == QMessageBox.StandardButton.Yes

    def show_result(self, text: str) -> None:
        """Say what happened (deleted, or why not)."""
        self.status.setText(text)


def delete_and_describe(delete: Callable[[LocalModel], int], model: LocalModel) -> str:
    """Delete `model` through the library and say what happened, in one sentence."""
    try:
        freed = delete(model)
    except WorkbenchError as exc:
        return exc.message
    return f"Deleted {model.name}: {_size(freed)} freed."
