"""The Eval tab's set picker and case editor: import, new, rename, delete, export; edit cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QPersistentModelIndex, Qt, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.errors import UserFacingError, WorkbenchError
from app.eval_store import EvalStore, source_path_of
from app.evals import CaseSpec, load_cases, make_case, save_cases
from app.scorers import SCORERS

COLUMNS = ("Prompt", "System", "Expected", "Scorer", "Options (JSON)")
PROMPT, SYSTEM, EXPECTED, SCORER, OPTIONS = range(len(COLUMNS))
CASE_ID_ROLE = Qt.ItemDataRole.UserRole + 1
"""Item data role under which a row's prompt cell holds its stored case id (None: unsaved)."""
_BAD = QColor("#c62828")


def case_from_cells(cells: list[str]) -> CaseSpec:
    """A checked case from a row's texts (the options cell is a JSON object or empty).

    Raises:
        UserFacingError: bad JSON options, an empty prompt, an invalid regex, and so on.
    """
    raw = cells[OPTIONS].strip()
    options: Any = {}
    if raw:
        try:
            options = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise UserFacingError(f"Options are not valid JSON ({exc.msg}).") from exc
        if not isinstance(options, dict):
            raise UserFacingError('Options must be a JSON object like {"flags": "i"}.')
    return make_case(cells[PROMPT], cells[EXPECTED], cells[SCORER], cells[SYSTEM], options)


class ScorerDelegate(QStyledItemDelegate):
    """Edits the scorer column with a combo of the known scorers."""

    def createEditor(
        self,
        parent: QWidget,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> QWidget:
        combo = QComboBox(parent)
        combo.addItems(list(SCORERS))
        return combo

    def setEditorData(self, editor: QWidget, index: QModelIndex | QPersistentModelIndex) -> None:
        assert isinstance(editor, QComboBox)
        editor.setCurrentText(str(index.data() or ""))

    def setModelData(
        self,
        editor: QWidget,
        model: QAbstractItemModel,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        assert isinstance(editor, QComboBox)
        model.setData(index, editor.currentText())


class EvalEditor(QWidget):
    """Eval sets on the left, the chosen set's cases in an editable table on the right.

    Every edit is checked at once: a valid row is saved through the store, a bad one is
    marked in red with the reason under the table and is not saved (its text stays).

    Signals:
        set_selected(int): the chosen set changed (0: none).
        cases_changed(int): the set's cases were saved (its id).
    """

    set_selected = Signal(int)
    cases_changed = Signal(int)

    def __init__(self, store: EvalStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.sets = QListWidget(self)
        self.import_button = QPushButton("Import…", self)
        self.new_button = QPushButton("New Set", self)
        self.rename_button = QPushButton("Rename…", self)
        self.delete_button = QPushButton("Delete", self)
        self.export_button = QPushButton("Export Set…", self)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.horizontalHeader().setSectionResizeMode(PROMPT, QHeaderView.ResizeMode.Stretch)
        self.table.setItemDelegateForColumn(SCORER, ScorerDelegate(self.table))
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.add_button = QPushButton("Add Case", self)
        self.remove_button = QPushButton("Remove", self)
        self.up_button = QPushButton("Move Up", self)
        self.down_button = QPushButton("Move Down", self)
        self.message = QLabel("", self)
        self.message.setWordWrap(True)
        self._filling = False
        self._lay_out()
        self._connect()
        self.refresh_sets()

    def _lay_out(self) -> None:
        left = QVBoxLayout()
        left.addWidget(QLabel("Eval sets", self))
        left.addWidget(self.sets, 1)
        for row_buttons in (
            (self.import_button, self.new_button),
            (self.rename_button, self.delete_button),
            (self.export_button,),
        ):
            row = QHBoxLayout()
            for button in row_buttons:
                row.addWidget(button)
            left.addLayout(row)
        case_buttons = QHBoxLayout()
        for button in (self.add_button, self.remove_button, self.up_button, self.down_button):
            case_buttons.addWidget(button)
        case_buttons.addStretch(1)
        right = QVBoxLayout()
        right.addWidget(self.table, 1)
        right.addLayout(case_buttons)
        right.addWidget(self.message)
        box = QHBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(left, 1)
        box.addLayout(right, 3)

    def _connect(self) -> None:
        self.sets.currentItemChanged.connect(self._on_sets_current_item_changed)
        self.import_button.clicked.connect(self._on_import_button_clicked)
        self.new_button.clicked.connect(self._on_new_button_clicked)
        self.rename_button.clicked.connect(self._on_rename_button_clicked)
        self.delete_button.clicked.connect(self._on_delete_button_clicked)
        self.export_button.clicked.connect(self._on_export_button_clicked)
        self.table.itemChanged.connect(self._on_table_item_changed)
        self.add_button.clicked.connect(self._on_add_button_clicked)
        self.remove_button.clicked.connect(self._on_remove_button_clicked)
        self.up_button.clicked.connect(self._on_up_button_clicked)
        self.down_button.clicked.connect(self._on_down_button_clicked)

    # -- dialogs (tests replace these) -----------------------------------------------------

    def ask_import_path(self) -> Path | None:
        """Ask for a JSONL or CSV eval set to import (None: cancelled)."""
        filters = "Eval sets (*.jsonl *.json *.csv);;All files (*)"
        filename, _ = QFileDialog.getOpenFileName(
            self, "Import eval set", str(Path.home()), filters
        )
        return Path(filename) if filename else None

    def ask_export_path(self, name: str) -> Path | None:
        """Ask where to export the set (None: cancelled); CSV when the name ends in .csv."""
        start = str(Path.home() / f"{name}.jsonl")
        filters = "JSON Lines (*.jsonl);;CSV (*.csv)"
        filename, chosen = QFileDialog.getSaveFileName(self, "Export eval set", start, filters)
        if not filename:
            return None
        path = Path(filename)
        if path.suffix.lower() not in (".jsonl", ".csv"):
            path = path.with_name(path.name + (".csv" if "csv" in chosen.lower() else ".jsonl"))
        return path

    def ask_name(self, title: str, current: str) -> str | None:
        """Ask for a set name (None: cancelled)."""
        name, ok = QInputDialog.getText(self, title, "Name:", text=current)
        return name.strip() if ok and name.strip() else None

    def confirm_delete(self, name: str) -> bool:
        """Ask before deleting a set and its runs."""
        answer = QMessageBox.question(
            self, "Delete eval set", f"Delete '{name}', its cases and all its runs?"
        )
        return answer == QMessageBox.StandardButton.Yes

    # -- sets ------------------------------------------------------------------------------

    @property
    def current_set_id(self) -> int | None:
        """The chosen set's id (None: none)."""
        item = self.sets.currentItem()
        value = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        return value if isinstance(value, int) else None

    def refresh_sets(self, select: int | None = None) -> None:
        """Reload the list of sets, keeping (or moving to) `select`."""
        keep = select if select is not None else self.current_set_id
        self.sets.blockSignals(True)
        self.sets.clear()
        for view in self.store.sets():
            item = QListWidgetItem(f"{view.name}  ({view.case_count})", self.sets)
            item.setData(Qt.ItemDataRole.UserRole, view.id)
            if view.id == keep:
                self.sets.setCurrentItem(item)
        if self.sets.currentItem() is None and self.sets.count():
            self.sets.setCurrentRow(0)
        self.sets.blockSignals(False)
        self._load_cases()
        self.set_selected.emit(self.current_set_id or 0)

    def _set_name(self) -> str:
        set_id = self.current_set_id
        return "" if set_id is None else str(self.store.get_set(set_id).name)

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet(f"color: {_BAD.name()}" if error else "")

    # -- cases -----------------------------------------------------------------------------

    def _load_cases(self) -> None:
        self._filling = True
        self.table.setRowCount(0)
        set_id = self.current_set_id
        cases = self.store.get_set(set_id).cases if set_id is not None else ()
        for view in cases:
            self._append_row(view.id, view.spec)
        self._filling = False
        has_set = set_id is not None
        for widget in (
            self.rename_button,
            self.delete_button,
            self.export_button,
            self.add_button,
            self.remove_button,
            self.up_button,
            self.down_button,
            self.table,
        ):
            widget.setEnabled(has_set)
        self._say("" if has_set else "Import an eval set (JSONL or CSV) or make a new one.")

    def _append_row(self, case_id: int | None, spec: CaseSpec) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        options = json.dumps(spec.options, ensure_ascii=False) if spec.options else ""
        texts = (spec.prompt, spec.system_prompt, spec.expected, spec.scorer, options)
        for column, text in enumerate(texts):
            item = QTableWidgetItem(text)
            if column == PROMPT:
                item.setData(CASE_ID_ROLE, case_id)
            self.table.setItem(row, column, item)

    def _cells(self, row: int) -> list[str]:
        return [
            (item.text() if (item := self.table.item(row, c)) is not None else "")
            for c in range(len(COLUMNS))
        ]

    def _case_id(self, row: int) -> int | None:
        item = self.table.item(row, PROMPT)
        value = item.data(CASE_ID_ROLE) if item is not None else None
        return value if isinstance(value, int) else None

    def _mark_row(self, row: int, problem: str) -> None:
        self._filling = True
        for column in range(len(COLUMNS)):
            item = self.table.item(row, column)
            if item is None:
                continue
            if problem:
                item.setForeground(_BAD)
                item.setToolTip(problem)
            else:
                item.setData(Qt.ItemDataRole.ForegroundRole, None)
                item.setToolTip("")
        self._filling = False

    def save_row(self, row: int) -> bool:
        """Check a row and save it (add or update); a bad row is marked, not saved."""
        set_id = self.current_set_id
        if set_id is None:
            return False
        try:
            spec = case_from_cells(self._cells(row))
        except UserFacingError as exc:
            self._mark_row(row, exc.message)
            self._say(f"Case {row + 1} not saved: {exc.message}", error=True)
            return False
        case_id = self._case_id(row)
        try:
            if case_id is None:
                view = self.store.add_case(set_id, spec, position=self._stored_above(row))
                prompt_item = self.table.item(row, PROMPT)
                if prompt_item is not None:
                    self._filling = True
                    prompt_item.setData(CASE_ID_ROLE, view.id)
                    self._filling = False
            else:
                self.store.update_case(case_id, spec)
        except WorkbenchError as exc:
            self._say(f"Case {row + 1} not saved: {exc.message}", error=True)
            return False
        self._mark_row(row, "")
        self._say(f"Case {row + 1} saved.")
        self.cases_changed.emit(set_id)
        return True

    def _stored_above(self, row: int) -> int:
        """The store position of `row`: how many saved cases are above it."""
        return sum(1 for above in range(row) if self._case_id(above) is not None)

    def _save_position(self, row: int) -> None:
        set_id, case_id = self.current_set_id, self._case_id(row)
        if set_id is not None and case_id is not None:
            self.store.move_case(case_id, self._stored_above(row))
            self.cases_changed.emit(set_id)

    def _move(self, step: int) -> None:
        row = self.table.currentRow()
        target = row + step
        if row < 0 or not (0 <= target < self.table.rowCount()):
            return
        self._filling = True
        items = [self.table.takeItem(row, c) for c in range(len(COLUMNS))]
        others = [self.table.takeItem(target, c) for c in range(len(COLUMNS))]
        for column in range(len(COLUMNS)):
            self.table.setItem(target, column, items[column])
            self.table.setItem(row, column, others[column])
        self._filling = False
        self.table.setCurrentCell(target, self.table.currentColumn())
        self._save_position(target)

    # -- slots -----------------------------------------------------------------------------

    @Slot(QListWidgetItem, QListWidgetItem)
    def _on_sets_current_item_changed(self, *_items: object) -> None:
        self._load_cases()
        self.set_selected.emit(self.current_set_id or 0)

    @Slot()
    def _on_import_button_clicked(self) -> None:
        path = self.ask_import_path()
        if path is None:
            return
        try:
            cases = load_cases(path)
            view = self.store.import_set(path.stem, cases, source_path_of(path))
        except WorkbenchError as exc:
            self._say(exc.message, error=True)
            return
        self.refresh_sets(select=view.id)
        self._say(f"Imported {len(cases)} cases from {path.name} as '{view.name}'.")

    @Slot()
    def _on_new_button_clicked(self) -> None:
        name = self.ask_name("New eval set", "My eval set")
        if name is None:
            return
        try:
            view = self.store.create_set(name, [])
        except WorkbenchError as exc:
            self._say(exc.message, error=True)
            return
        self.refresh_sets(select=view.id)
        self._say(f"Made '{view.name}'. Add cases with Add Case.")

    @Slot()
    def _on_rename_button_clicked(self) -> None:
        set_id = self.current_set_id
        if set_id is None:
            return
        name = self.ask_name("Rename eval set", self._set_name())
        if name is None:
            return
        try:
            self.store.rename_set(set_id, name)
        except WorkbenchError as exc:
            self._say(exc.message, error=True)
            return
        self.refresh_sets(select=set_id)

    @Slot()
    def _on_delete_button_clicked(self) -> None:
        set_id = self.current_set_id
        if set_id is None or not self.confirm_delete(self._set_name()):
            return
        self.store.delete_set(set_id)
        self.refresh_sets()

    @Slot()
    def _on_export_button_clicked(self) -> None:
        set_id = self.current_set_id
        if set_id is None:
            return
        path = self.ask_export_path(self._set_name())
        if path is None:
            return
        try:
            save_cases(path, [view.spec for view in self.store.get_set(set_id).cases])
        except WorkbenchError as exc:
            self._say(exc.message, error=True)
            return
        self._say(f"Exported the set to {path}.")

    @Slot(QTableWidgetItem)
    def _on_table_item_changed(self, item: QTableWidgetItem) -> None:
        if not self._filling:
            self.save_row(item.row())

    @Slot()
    def _on_add_button_clicked(self) -> None:
        self._filling = True
        self._append_row(None, CaseSpec(prompt=""))
        self._filling = False
        row = self.table.rowCount() - 1
        self.table.setCurrentCell(row, PROMPT)
        self._say("Write the new case's prompt; it is saved once it is complete.")

    @Slot()
    def _on_remove_button_clicked(self) -> None:
        row = self.table.currentRow()
        if row < 0:
            return
        case_id = self._case_id(row)
        if case_id is not None:
            self.store.delete_case(case_id)
        self.table.removeRow(row)
        if self.current_set_id is not None:
            self.cases_changed.emit(self.current_set_id)

    @Slot()
    def _on_up_button_clicked(self) -> None:
        self._move(-1)

    @Slot()
    def _on_down_button_clicked(self) -> None:
        self._move(1)
