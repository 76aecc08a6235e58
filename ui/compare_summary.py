"""Under the compare panes: the last turn's figures (table and bar charts), votes, win rates.

Signals are documented on each widget. Nothing here touches the database: the window passes
values in and stores votes itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.compare_plan import PaneNeed
from app.compare_views import ReplyView
from app.memory import format_size
from app.model_session import RunFigures
from runtimes.base import GenerationParams, LoadOptions
from ui.charts import BarChart
from ui.compare_pane import PaneOverrides

COLUMNS = (
    "Model",
    "Load s",
    "TTFT ms",
    "Decode tok/s",
    "Prompt tok/s",
    "Tokens out",
    "Total s",
    "Peak memory",
)
FAIR_NOTE = "Ran one model at a time: the figures are fair (nothing else was generating)."
SHARED_NOTE = (
    "Ran in parallel: the models shared the machine, so each is slower than it would be alone."
)
_GB = 1024**3


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One pane's result for the last turn."""

    name: str
    figures: RunFigures | None
    status: str = "complete"
    error: str = ""


def format_memory(n_bytes: int | None) -> str:
    """Bytes as "1.2 GiB" or "310 MiB"; "—" when unknown (a server model)."""
    return "—" if n_bytes is None else format_size(n_bytes)


def summary_marks(rows: Sequence[SummaryRow]) -> list[list[str]]:
    """Per row, its marks: "fastest" (highest decode tok/s), "smallest" (least peak memory).

    A mark needs at least two rows with that figure: one model alone is not "fastest".
    """
    marks: list[list[str]] = [[] for _ in rows]
    speeds = [
        (r.figures.decode_tps, i)
        for i, r in enumerate(rows)
        if r.figures is not None and r.figures.completion_tokens > 0
    ]
    if len(speeds) >= 2:
        marks[max(speeds)[1]].append("fastest")
    sizes = [
        (r.figures.peak_memory_bytes, i)
        for i, r in enumerate(rows)
        if r.figures is not None and r.figures.peak_memory_bytes is not None
    ]
    if len(sizes) >= 2:
        marks[min(sizes)[1]].append("smallest")
    return marks


def row_cells(row: SummaryRow) -> list[str]:
    """The table's texts for one row (after the model name)."""
    fig = row.figures
    if fig is None:
        return ["—"] * (len(COLUMNS) - 2) + [row.status if not row.error else "failed"]
    return [
        "—" if fig.load_seconds is None else f"{fig.load_seconds:.2f}",
        f"{fig.ttft_ms:.0f}",
        f"{fig.decode_tps:.1f}",
        "—" if fig.prompt_tps is None else f"{fig.prompt_tps:.0f}",
        str(fig.completion_tokens),
        f"{fig.total_seconds:.2f}",
        format_memory(fig.peak_memory_bytes),
    ]


class CompareSummary(QWidget):
    """The last turn's figures: a note on fairness, a table with marks, two bar charts."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.note = QLabel("Send a prompt to see each model's speed and memory here.")
        self.note.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.speed_chart = BarChart()
        self.memory_chart = BarChart()
        for chart in (self.speed_chart, self.memory_chart):
            chart.setMinimumHeight(120)
        self.memory_chart.empty_text = "No memory figures yet (server models report none)"
        charts = QHBoxLayout()
        charts.addWidget(self.speed_chart)
        charts.addWidget(self.memory_chart)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.note)
        layout.addWidget(self.table)
        layout.addLayout(charts, 1)
        self._fit_table()
        self.rows: list[SummaryRow] = []

    def set_rows(self, rows: Sequence[SummaryRow], mode: str) -> None:
        """Show `rows` (one per pane) of a turn that ran in `mode` (parallel/sequential)."""
        self.rows = list(rows)
        self.note.setText(SHARED_NOTE if mode == "parallel" else FAIR_NOTE)
        marks = summary_marks(rows)
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            name = row.name + "".join(f"  ✓ {mark}" for mark in marks[r])
            cells = [name, *row_cells(row)]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c:
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                if row.error:
                    item.setToolTip(row.error)
                self.table.setItem(r, c, item)
        self._fit_table()
        names = [row.name for row in rows]
        speeds: list[float | None] = [r.figures.decode_tps if r.figures else None for r in rows]
        memory: list[float | None] = [
            r.figures.peak_memory_bytes / _GB
            if r.figures is not None and r.figures.peak_memory_bytes is not None
            else None
            for r in rows
        ]
        self.speed_chart.set_data(names, [("Decode speed", speeds)], "tok/s")
        self.memory_chart.set_data(names, [("Peak memory", memory)], "GiB")

    def _fit_table(self) -> None:
        """As tall as its rows (2–4 panes), so the charts and panes keep the room."""
        rows = max(self.table.rowCount(), 2)
        height = self.table.horizontalHeader().sizeHint().height()
        height += rows * self.table.verticalHeader().defaultSectionSize()
        self.table.setFixedHeight(height + 2 * self.table.frameWidth() + 2)

    def clear(self) -> None:
        """Forget the figures (a new comparison)."""
        self.rows = []
        self.table.setRowCount(0)
        self._fit_table()
        self.note.setText("Send a prompt to see each model's speed and memory here.")
        self.speed_chart.set_data([], [])
        self.memory_chart.set_data([], [])


class VoteBar(QWidget):
    """ "Which reply is better?": a button per pane, "Tie", and "Win rates…".

    Signals:
        voted(object): the winning pane's index, or None for a tie.
        win_rates_requested(): the user asked for the win-rate table.
    """

    voted = Signal(object)
    win_rates_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel("Which reply is better?")
        self.tie = QPushButton("Tie")
        self.tie.setCheckable(True)
        self.tie.clicked.connect(self._on_tie_clicked)
        self.rates = QPushButton("Win rates…")
        self.rates.clicked.connect(self.win_rates_requested)
        self.buttons: list[QPushButton] = []
        self._row = QHBoxLayout(self)
        self._row.setContentsMargins(0, 0, 0, 0)
        self._row.addWidget(self.label)
        self._row.addStretch(1)
        self._row.addWidget(self.tie)
        self._row.addStretch(1)
        self._row.addWidget(self.rates)
        self.set_panes([])

    def set_panes(self, names: Sequence[str]) -> None:
        """One "Pane N better" button per pane (the model's name in the tooltip)."""
        for button in self.buttons:
            self._row.removeWidget(button)
            button.deleteLater()
        self.buttons = []
        for i, name in enumerate(names):
            left = i < (len(names) + 1) // 2
            arrow, tail = ("◀ ", "") if left else ("", " ▶")
            button = QPushButton(f"{arrow}Pane {i + 1} better{tail}")
            button.setToolTip(name)
            button.setCheckable(True)
            button.clicked.connect(self._on_pane_clicked)
            self.buttons.append(button)
        self._order_buttons()
        self.set_active(False)

    def _order_buttons(self) -> None:
        """Lay out: label, stretch, left half, Tie, right half, stretch, Win rates."""
        for widget in (*self.buttons, self.tie):
            self._row.removeWidget(widget)
        half = (len(self.buttons) + 1) // 2
        ordered = [*self.buttons[:half], self.tie, *self.buttons[half:]]
        for offset, widget in enumerate(ordered):
            self._row.insertWidget(2 + offset, widget)

    def set_active(self, active: bool) -> None:
        """Enable the buttons (a finished turn to judge) or not."""
        for button in (*self.buttons, self.tie):
            button.setEnabled(active)

    def show_vote(self, winner: int | None, voted: bool) -> None:
        """Check the button of the stored vote (`voted` False: no vote yet)."""
        for i, button in enumerate(self.buttons):
            button.setChecked(voted and winner == i)
        self.tie.setChecked(voted and winner is None)

    @Slot()
    def _on_pane_clicked(self) -> None:
        sender = self.sender()
        index = next(i for i, b in enumerate(self.buttons) if b is sender)
        self.show_vote(index, True)
        self.voted.emit(index)

    @Slot()
    def _on_tie_clicked(self) -> None:
        self.show_vote(None, True)
        self.voted.emit(None)


class WinRatesDialog(QDialog):
    """Per model, across every saved comparison: wins, losses, ties and the win rate."""

    HEADERS = ("Model", "Wins", "Losses", "Ties", "Turns", "Win rate")

    def __init__(self, rates: Sequence[object], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Win rates")
        self.table = QTableWidget(len(rates), len(self.HEADERS))
        self.table.setHorizontalHeaderLabels(list(self.HEADERS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for r, rate in enumerate(rates):
            for c, text in enumerate(win_rate_cells(rate)):
                self.table.setItem(r, c, QTableWidgetItem(text))
        empty = QLabel("No votes yet: pick the better reply under a comparison's panes.")
        empty.setVisible(not rates)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(empty)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(560, 320)


def win_rate_cells(rate: object) -> list[str]:
    """A `WinRate`'s row texts; read by name so any frozen view with these fields works."""
    value = getattr(rate, "rate", None)
    return [
        str(getattr(rate, "model", getattr(rate, "name", ""))),
        str(getattr(rate, "wins", 0)),
        str(getattr(rate, "losses", 0)),
        str(getattr(rate, "ties", 0)),
        str(getattr(rate, "turns", 0)),
        "—" if value is None else f"{float(value):.0%}",
    ]


def need_text(need: PaneNeed) -> str:
    """The memory line of a pane's header."""
    if need.is_server:
        return "Server model: uses no memory on this machine"
    if need.bytes_needed is None:
        return "Memory need unknown (the file could not be read)"
    gpu = f", {format_size(need.gpu_bytes)} on the GPU" if need.gpu_bytes else ""
    return f"Needs ~{format_size(need.bytes_needed)}{gpu}"


def figures_note(figures: RunFigures | None) -> str:
    """The quiet line under a reply: speed, first token, tokens, load, memory."""
    if figures is None:
        return ""
    parts = [
        f"{figures.decode_tps:.1f} tok/s",
        f"TTFT {figures.ttft_ms:.0f} ms",
        f"{figures.completion_tokens} tokens",
    ]
    if figures.load_seconds is not None:
        parts.append(f"load {figures.load_seconds:.1f} s")
    if figures.peak_memory_bytes is not None:
        parts.append(f"peak {format_size(figures.peak_memory_bytes)}")
    return " · ".join(parts)


def reply_note(reply: ReplyView | None) -> tuple[str, bool]:
    """A stored reply's note and whether it is a warning."""
    if reply is None:
        return "No reply", True
    if reply.status == "error":
        return f"Failed: {reply.error}", True
    if reply.status in ("interrupted", "partial"):
        extra = figures_note(reply.figures)
        return ("Stopped · " + extra if extra else "Stopped"), True
    return figures_note(reply.figures), False


def overrides_of(
    params: GenerationParams | None, load: LoadOptions | None, shared: GenerationParams
) -> PaneOverrides:
    """A saved pane's overrides: the fields where its params differ from the run's."""
    n_ctx = load.n_ctx if load is not None else None
    if params is None:
        return PaneOverrides(n_ctx=n_ctx)
    return PaneOverrides(
        temperature=params.temperature if params.temperature != shared.temperature else None,
        max_tokens=params.max_tokens if params.max_tokens != shared.max_tokens else None,
        seed=params.seed if params.seed != shared.seed else None,
        n_ctx=n_ctx,
    )
