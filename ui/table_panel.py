"""A read-only table with a row of buttons and a status line under it (Library, Downloads)."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)


def read_only_table(parent: QWidget, columns: Sequence[str]) -> QTableWidget:
    """Rows selected whole, nothing editable, the first column stretched, no row numbers."""
    table = QTableWidget(0, len(columns), parent)
    table.setHorizontalHeaderLabels(list(columns))
    table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.verticalHeader().hide()
    return table


def lay_out_panel(
    owner: QWidget, table: QTableWidget, labels: Sequence[str]
) -> tuple[list[QPushButton], QLabel]:
    """Put `table`, a row of buttons named `labels` and a word-wrapped status line in
    `owner`; returns (the buttons in order, the status label)."""
    buttons = [QPushButton(label, owner) for label in labels]
    status = QLabel("", owner)
    status.setWordWrap(True)
    row = QHBoxLayout()
    for button in buttons:
        row.addWidget(button)
    row.addStretch(1)
    box = QVBoxLayout(owner)
    box.addWidget(table, 1)
    box.addLayout(row)
    box.addWidget(status)
    return buttons, status
