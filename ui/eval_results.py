"""The Eval tab's results: cases × models grid, score rows, the reply on click, the scatter."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt, Signal, Slot
from PySide6.QtGui import QColor, QFont, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.eval_report import ModelSummary, summarize
from app.eval_store import ResultView
from app.fit_types import MIB
from app.memory import format_size
from ui.charts import ScatterPlot, ScatterPoint

RESULT_ROLE = Qt.ItemDataRole.UserRole + 1
"""Item data role under which a grid cell holds its (case_id, model) key."""

# Saturated fills with white text (as the fit badges): readable on light and dark palettes.
CELL_STYLES: dict[str, tuple[str, str]] = {
    "pass": ("✓", "#2e7d32"),
    "fail": ("✗", "#c62828"),
    "manual": ("?", "#d08400"),
    "error": ("⚠", "#6d4c41"),
}
SUMMARY_ROWS = ("Score", "Mean tok/s", "Peak memory")


@dataclass(frozen=True, slots=True)
class GridCase:
    """A row of the grid."""

    case_id: int
    prompt: str
    expected: str
    scorer: str
    system_prompt: str = ""


@dataclass(frozen=True, slots=True)
class GridData:
    """One run as the grid shows it."""

    run_id: int
    cases: tuple[GridCase, ...]
    models: tuple[tuple[str, str], ...]  # (choice, display name)
    results: dict[tuple[int, str], ResultView] = field(default_factory=dict)
    changed: dict[tuple[int, str], str] = field(default_factory=dict)  # key -> "was ✗"


def cell_state(result: ResultView) -> str:
    """ "pass", "fail", "manual" (not judged yet) or "error"."""
    if result.error:
        return "error"
    if result.passed is None:
        return "manual"
    return "pass" if result.passed else "fail"


def model_score(data: GridData, model: str) -> ModelSummary:
    """Passed/total, score, mean decode speed and peak memory of one model over the run."""
    found = [r for (_case, m), r in data.results.items() if m == model]
    return summarize((model,), len(data.cases), found)[0]


def score_text(summary: ModelSummary) -> str:
    """ "7/10 · 70 %", with how many are still open (not run or not judged yet)."""
    percent = "—" if summary.score is None else f"{100 * summary.score:.0f} %"
    text = f"{summary.passed}/{summary.total} · {percent}"
    open_ = summary.total - summary.judged
    return f"{text} · {open_} open" if open_ > 0 else text


def _short(text: str, limit: int = 60) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class _CellDelegate(QStyledItemDelegate):
    """Paints a selected cell in its own pass/fail colour with a frame, not the highlight."""

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        plain = QStyleOptionViewItem(option)
        plain.state &= ~QStyle.StateFlag.State_Selected
        super().paint(painter, plain, index)
        if selected:
            painter.save()
            colour = option.palette.color(QPalette.ColorRole.Highlight)
            painter.setPen(QPen(colour, 3))
            painter.drawRect(option.rect.adjusted(1, 1, -2, -2))
            painter.restore()


class ResultsGrid(QTableWidget):
    """Cases down, models across, a coloured ✓ ✗ ? ⚠ per cell; score rows at the bottom."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, 0, parent)
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.setItemDelegate(_CellDelegate(self))
        self.data: GridData | None = None

    def show_data(self, data: GridData) -> None:
        """Fill the grid from `data` (keeps the selected cell where it still exists)."""
        current = (self.currentRow(), self.currentColumn())
        self.data = data
        self.clearContents()
        self.setRowCount(len(data.cases) + len(SUMMARY_ROWS))
        self.setColumnCount(len(data.models))
        self.setHorizontalHeaderLabels([name or choice for choice, name in data.models])
        labels = [f"{i + 1}. {_short(c.prompt, 40)}" for i, c in enumerate(data.cases)]
        self.setVerticalHeaderLabels(labels + list(SUMMARY_ROWS))
        for row, case in enumerate(data.cases):
            self.verticalHeaderItem(row).setToolTip(case.prompt)
            for column, (choice, _name) in enumerate(data.models):
                self.setItem(row, column, self._cell(data, case.case_id, choice))
        for column, (choice, _name) in enumerate(data.models):
            self._fill_summary(column, model_score(data, choice))
        if 0 <= current[0] < len(data.cases) and 0 <= current[1] < len(data.models):
            self.setCurrentCell(*current)

    def _cell(self, data: GridData, case_id: int, model: str) -> QTableWidgetItem:
        key = (case_id, model)
        result = data.results.get(key)
        item = QTableWidgetItem("·" if result is None else CELL_STYLES[cell_state(result)][0])
        item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
        item.setData(RESULT_ROLE, key)
        if result is not None:
            colour = CELL_STYLES[cell_state(result)][1]
            item.setBackground(QColor(colour))
            item.setForeground(QColor("#ffffff"))
            item.setToolTip(_short(result.error or result.reply, 200))
        if key in data.changed:
            item.setText(f"{item.text()}  ({data.changed[key]})")
            font = QFont(item.font())
            font.setBold(True)
            item.setFont(font)
        return item

    def _fill_summary(self, column: int, summary: ModelSummary) -> None:
        base = len(self.data.cases) if self.data else 0
        speed = summary.decode_tokens_per_second
        peak = summary.peak_memory_bytes
        texts = (
            score_text(summary),
            "—" if speed is None else f"{speed:.1f}",
            "—" if peak is None else format_size(peak),
        )
        for offset, text in enumerate(texts):
            item = QTableWidgetItem(text)
            item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            font = QFont(item.font())
            font.setBold(offset == 0)
            item.setFont(font)
            self.setItem(base + offset, column, item)

    def summary_texts(self, model_column: int) -> list[str]:
        """The summary cells of a model column: score, mean tok/s, peak memory."""
        base = len(self.data.cases) if self.data else 0
        return [
            item.text() if (item := self.item(base + offset, model_column)) else ""
            for offset in range(len(SUMMARY_ROWS))
        ]


class EvalResults(QWidget):
    """Run history, the grid, a detail pane for the clicked cell and the quality/speed plot.

    Signals:
        run_selected(int): the user picked a past run in the history combo.
        compare_selected(int): the user picked a run to compare with (0: none).
        judged(object, bool): Pass/Fail was pressed on a manual case (its `ResultView`, passed).
        export_requested(str): "csv" or "json".
    """

    run_selected = Signal(int)
    compare_selected = Signal(int)
    judged = Signal(object, bool)
    export_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = QComboBox(self)
        self.history.setMinimumContentsLength(24)
        self.compare_with = QComboBox(self)
        self.compare_with.setMinimumContentsLength(24)
        self.export_csv_button = QPushButton("Export CSV…", self)
        self.export_json_button = QPushButton("Export JSON…", self)
        self.changes_label = QLabel("", self)
        self.changes_label.setWordWrap(True)
        self.grid = ResultsGrid(self)
        self.detail = QTextBrowser(self)
        self.pass_button = QPushButton("Pass", self)
        self.fail_button = QPushButton("Fail", self)
        self.axis = QComboBox(self)
        self.axis.addItem("Score vs decode tok/s", "speed")
        self.axis.addItem("Score vs peak memory", "memory")
        self.scatter = ScatterPlot(self)
        self._lay_out()
        self._set_judge_visible(False)
        self.history.activated.connect(self._on_history_activated)
        self.compare_with.activated.connect(self._on_compare_with_activated)
        self.grid.currentCellChanged.connect(self._on_grid_current_cell_changed)
        self.pass_button.clicked.connect(self._on_pass_button_clicked)
        self.fail_button.clicked.connect(self._on_fail_button_clicked)
        self.axis.currentIndexChanged.connect(self._on_axis_current_index_changed)
        self.export_csv_button.clicked.connect(self._on_export_csv_button_clicked)
        self.export_json_button.clicked.connect(self._on_export_json_button_clicked)

    def _lay_out(self) -> None:
        top = QHBoxLayout()
        top.addWidget(QLabel("Run:", self))
        top.addWidget(self.history, 1)
        top.addWidget(QLabel("Compare with:", self))
        top.addWidget(self.compare_with, 1)
        top.addWidget(self.export_csv_button)
        top.addWidget(self.export_json_button)
        judge_row = QHBoxLayout()
        judge_row.addWidget(QLabel("Manual case:", self))
        judge_row.addWidget(self.pass_button)
        judge_row.addWidget(self.fail_button)
        judge_row.addStretch(1)
        detail_box = QWidget(self)
        detail_layout = QVBoxLayout(detail_box)
        detail_layout.setContentsMargins(0, 0, 0, 0)
        detail_layout.addWidget(self.detail, 1)
        detail_layout.addLayout(judge_row)
        plot_box = QWidget(self)
        plot_layout = QVBoxLayout(plot_box)
        plot_layout.setContentsMargins(0, 0, 0, 0)
        plot_layout.addWidget(self.axis)
        plot_layout.addWidget(self.scatter, 1)
        lower = QSplitter(Qt.Orientation.Horizontal, self)
        lower.addWidget(detail_box)
        lower.addWidget(plot_box)
        upper = QSplitter(Qt.Orientation.Vertical, self)
        upper.addWidget(self.grid)
        upper.addWidget(lower)
        upper.setStretchFactor(0, 3)
        upper.setStretchFactor(1, 2)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(top)
        box.addWidget(self.changes_label)
        box.addWidget(upper, 1)

    # -- filling ---------------------------------------------------------------------------

    def set_runs(self, runs: Sequence[tuple[int, str]], current: int | None) -> None:
        """Fill the history and compare-with combos with (run id, label), newest first."""
        for combo in (self.history, self.compare_with):
            combo.blockSignals(True)
            combo.clear()
        self.compare_with.addItem("—", 0)
        for run_id, label in runs:
            self.history.addItem(label, run_id)
            self.compare_with.addItem(label, run_id)
        if current is not None:
            self.history.setCurrentIndex(max(0, self.history.findData(current)))
        for combo in (self.history, self.compare_with):
            combo.blockSignals(False)
        self.export_csv_button.setEnabled(bool(runs))
        self.export_json_button.setEnabled(bool(runs))

    def show_data(self, data: GridData | None, changes: str = "") -> None:
        """Show a run (None: nothing to show) and the one-line comparison summary."""
        self.changes_label.setText(changes)
        self.changes_label.setVisible(bool(changes))
        if data is None:
            self.grid.setRowCount(0)
            self.grid.setColumnCount(0)
            self.grid.data = None
            self.detail.clear()
            self._set_judge_visible(False)
            self.scatter.set_points([], "", "")
            return
        self.grid.show_data(data)
        self._show_detail()
        self._plot()

    def scatter_points(self) -> list[ScatterPoint]:
        """One point per model with a score and the chosen x figure (speed or memory)."""
        data = self.grid.data
        if data is None:
            return []
        memory = self.axis.currentData() == "memory"
        points = []
        for choice, name in data.models:
            summary = model_score(data, choice)
            peak = summary.peak_memory_bytes
            if memory:
                x = None if peak is None else peak / MIB
            else:
                x = summary.decode_tokens_per_second
            if x is not None and summary.score is not None:
                points.append(ScatterPoint(label=name or choice, x=x, y=100 * summary.score))
        return points

    def _plot(self) -> None:
        memory = self.axis.currentData() == "memory"
        x_label = "Peak memory (MiB)" if memory else "Decode tok/s"
        self.scatter.set_points(self.scatter_points(), x_label, "Score %")

    def _selected(self) -> tuple[GridCase, str, ResultView | None] | None:
        data = self.grid.data
        row, column = self.grid.currentRow(), self.grid.currentColumn()
        if data is None or not (0 <= row < len(data.cases)) or not (0 <= column < len(data.models)):
            return None
        case = data.cases[row]
        model = data.models[column][0]
        return case, model, data.results.get((case.case_id, model))

    def _show_detail(self) -> None:
        selected = self._selected()
        if selected is None:
            self.detail.clear()
            self._set_judge_visible(False)
            return
        case, _model, result = selected
        parts = [f"<b>Prompt</b><pre>{html.escape(case.prompt)}</pre>"]
        if case.system_prompt:
            parts.append(f"<b>System</b><pre>{html.escape(case.system_prompt)}</pre>")
        parts.append(f"<b>Expected</b> ({html.escape(case.scorer)})")
        parts.append(f"<pre>{html.escape(case.expected)}</pre>")
        if result is None:
            parts.append("<i>Not run yet.</i>")
        else:
            parts.append(f"<b>Reply</b><pre>{html.escape(result.reply)}</pre>")
            if result.error:
                parts.append(f"<b>Error</b><p>{html.escape(result.error)}</p>")
            parts.append(f"<b>Scorer</b><p>{html.escape(result.detail)}</p>")
        self.detail.setHtml("".join(parts))
        manual = case.scorer == "manual" and result is not None and not result.error
        self._set_judge_visible(manual)

    def _set_judge_visible(self, visible: bool) -> None:
        self.pass_button.setEnabled(visible)
        self.fail_button.setEnabled(visible)

    # -- slots -----------------------------------------------------------------------------

    @Slot(int, int, int, int)
    def _on_grid_current_cell_changed(self, row: int, column: int, _r: int, _c: int) -> None:
        self._show_detail()

    @Slot(int)
    def _on_history_activated(self, index: int) -> None:
        run_id = self.history.itemData(index)
        if isinstance(run_id, int):
            self.run_selected.emit(run_id)

    @Slot(int)
    def _on_compare_with_activated(self, index: int) -> None:
        run_id = self.compare_with.itemData(index)
        self.compare_selected.emit(run_id if isinstance(run_id, int) else 0)

    def _judge(self, passed: bool) -> None:
        selected = self._selected()
        if selected is not None and selected[2] is not None:
            self.judged.emit(selected[2], passed)

    @Slot()
    def _on_pass_button_clicked(self) -> None:
        self._judge(True)

    @Slot()
    def _on_fail_button_clicked(self) -> None:
        self._judge(False)

    @Slot(int)
    def _on_axis_current_index_changed(self, _index: int) -> None:
        self._plot()

    @Slot()
    def _on_export_csv_button_clicked(self) -> None:
        self.export_requested.emit("csv")

    @Slot()
    def _on_export_json_button_clicked(self) -> None:
        self.export_requested.emit("json")
