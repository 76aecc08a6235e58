"""The Recommended table: model × quant rows grouped by size class, with badges and bars."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
    Slot,
)
from PySide6.QtGui import QFont, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSlider,
    QTableView,
    QWidget,
)

from app.fit_types import SIZE_CLASS_LABELS, FitRequest, Recommendation
from ui.fit_badge import VERDICT_ROLE, FitBadgeDelegate, badge_tooltip, speed_text
from ui.memory_bar import BreakdownDelegate, breakdown_tooltip, size_text

RECOMMENDATION_ROLE = Qt.ItemDataRole.UserRole + 2
"""Item data role holding a row's `Recommendation` (None on a size-class heading)."""

COLUMNS = ("Model", "Quant", "Size", "Fit", "Memory", "Speed", "Quality")
FIT_COLUMN = COLUMNS.index("Fit")
MEMORY_COLUMN = COLUMNS.index("Memory")

Row = str | Recommendation
"""A heading row is its size class (a key of `SIZE_CLASS_LABELS`), else a recommendation."""

_Index = QModelIndex | QPersistentModelIndex

CONTEXT_STEPS = (
    512, 1024, 2048, 4096, 8192, 12288, 16384, 24576, 32768, 49152, 65536, 98304, 131072,
)  # fmt: skip
DEFAULT_CONTEXT = 8192
KV_TYPES = ("f16", "q8_0", "q4_0")


def context_label(n_ctx: int) -> str:
    """Context length as people say it: 512, 8k, 128k."""
    return f"{n_ctx // 1024}k" if n_ctx >= 1024 and n_ctx % 1024 == 0 else str(n_ctx)


def _key(row: Row) -> tuple[str, str]:
    return ("", row) if isinstance(row, str) else (row.model_id, row.quant)


def grouped_rows(recommendations: Sequence[Recommendation]) -> list[Row]:
    """Size-class headings in `SIZE_CLASS_LABELS` order, each followed by its rows in the
    order given (the ranking); empty classes get no heading."""
    rows: list[Row] = []
    for size_class in SIZE_CLASS_LABELS:
        members = [r for r in recommendations if r.size_class == size_class]
        if members:
            rows.append(size_class)
            rows.extend(members)
    return rows


class RecommendModel(QAbstractTableModel):
    """Rows of `grouped_rows`. New figures for the same rows update in place (no reset), so
    the view keeps its scroll position and selection while the context slider moves."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.rows: list[Row] = []

    def set_recommendations(self, recommendations: Sequence[Recommendation]) -> bool:
        """Show these recommendations; True when the rows changed shape (a reset)."""
        rows = grouped_rows(recommendations)
        if [_key(r) for r in rows] == [_key(r) for r in self.rows]:
            self.rows = rows
            if rows:
                last = self.index(len(rows) - 1, len(COLUMNS) - 1)
                self.dataChanged.emit(self.index(0, 0), last)
            return False
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()
        return True

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        """Rows, headings included."""
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        """The fixed columns."""
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        """Column titles."""
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        """Headings are not selectable."""
        if isinstance(self.rows[index.row()], str):
            return Qt.ItemFlag.ItemIsEnabled
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        """Text, tooltips, fonts and the verdict for the delegates."""
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        if isinstance(row, str):
            return self._heading_data(row, index.column(), role)
        if role == RECOMMENDATION_ROLE:
            return row
        if role == VERDICT_ROLE and index.column() in (FIT_COLUMN, MEMORY_COLUMN):
            return row.verdict
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(row, index.column())
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, index.column())
        if role == Qt.ItemDataRole.FontRole and row.best:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() in (2, 5):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    @staticmethod
    def _heading_data(size_class: str, column: int, role: int) -> object:
        if role == Qt.ItemDataRole.DisplayRole and column == 0:
            return SIZE_CLASS_LABELS[size_class]
        if role == Qt.ItemDataRole.FontRole:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.BackgroundRole:
            return QGuiApplication.palette().alternateBase()
        return None

    @staticmethod
    def _text(row: Recommendation, column: int) -> str:
        if column == 0:
            return f"{row.model_name} · {row.parameters_label}"
        if column == 1:
            return f"★ {row.quant}" if row.best else row.quant
        if column == 2:
            local = " ✓" if row.local_path else ""
            return size_text(row.file_size_bytes) + local
        if column == 5:
            return speed_text(row.verdict) or "—"
        if column == 6:
            return row.quality_note
        return ""

    @staticmethod
    def _tooltip(row: Recommendation, column: int) -> str:
        if column == FIT_COLUMN:
            return badge_tooltip(row.verdict)
        if column == MEMORY_COLUMN:
            return breakdown_tooltip(row.verdict)
        if column == 1 and row.best:
            return "The best-quality quantization of this model that fits with headroom"
        if column == 6:
            return row.quality_note
        if column == 5 and row.verdict.speed is not None:
            return row.verdict.speed.detail
        if column in (0, 2):
            if row.local_path:
                return f"On this machine: {row.local_path}"
            return f"{row.repo} / {row.file_name}"
        return row.verdict.explanation


class RecommendTable(QTableView):
    """The table view: headings span the row, badge and bar delegates, filter by hiding rows.

    Signals:
        activated_recommendation(object): a row was double-clicked (its `Recommendation`).
    """

    activated_recommendation = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table_model = RecommendModel(self)
        self.setModel(self.table_model)
        self.setItemDelegateForColumn(FIT_COLUMN, FitBadgeDelegate(self))
        self.setItemDelegateForColumn(MEMORY_COLUMN, BreakdownDelegate(self))
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 9)
        header = self.horizontalHeader()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for column, width in enumerate((270, 85, 72, 110, 130, 120)):
            self.setColumnWidth(column, width)
        self.filter_text = ""
        self.fits_only = False
        self.doubleClicked.connect(self._on_self_double_clicked)

    def set_recommendations(self, recommendations: Sequence[Recommendation]) -> None:
        """Show new figures, keeping the rows when only the figures changed."""
        if self.table_model.set_recommendations(recommendations):
            self.clearSpans()
            for row, item in enumerate(self.table_model.rows):
                if isinstance(item, str):
                    self.setSpan(row, 0, 1, len(COLUMNS))
        self.apply_filter()

    def set_filter(self, text: str, fits_only: bool) -> None:
        """Show only rows whose model, quant or repo contains `text`; with `fits_only`, hide
        the ones that will not fit."""
        self.filter_text = text.strip().lower()
        self.fits_only = fits_only
        self.apply_filter()

    def apply_filter(self) -> None:
        """Hide filtered rows, and headings with nothing visible under them."""
        heading: int | None = None
        heading_shown = False
        for row, item in enumerate(self.table_model.rows):
            if isinstance(item, str):
                if heading is not None:
                    self.setRowHidden(heading, not heading_shown)
                heading, heading_shown = row, False
                continue
            shown = self._matches(item)
            self.setRowHidden(row, not shown)
            heading_shown = heading_shown or shown
        if heading is not None:
            self.setRowHidden(heading, not heading_shown)

    def _matches(self, item: Recommendation) -> bool:
        if self.fits_only and item.verdict.verdict in ("wont_fit", "unknown"):
            return False
        haystack = f"{item.model_name} {item.model_id} {item.quant} {item.repo}".lower()
        return self.filter_text in haystack

    def visible_recommendations(self) -> list[Recommendation]:
        """The rows not hidden by the filter, in order (headings left out)."""
        return [
            item
            for row, item in enumerate(self.table_model.rows)
            if not isinstance(item, str) and not self.isRowHidden(row)
        ]

    def current_recommendation(self) -> Recommendation | None:
        """The selected row's recommendation, if a model row is selected."""
        rows = self.selectionModel().selectedRows()
        if not rows:
            return None
        item = rows[0].data(RECOMMENDATION_ROLE)
        return item if isinstance(item, Recommendation) else None

    @Slot(QModelIndex)
    def _on_self_double_clicked(self, index: QModelIndex) -> None:
        item = index.data(RECOMMENDATION_ROLE)
        if isinstance(item, Recommendation):
            self.activated_recommendation.emit(item)


class RecommendControls(QWidget):
    """Context slider (512 … 128k), KV cache type and flash attention: what to estimate for.

    Signals:
        request_changed(): any control moved; `current_request()` has the new request.
    """

    request_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.context_slider.setRange(0, len(CONTEXT_STEPS) - 1)
        self.context_slider.setPageStep(1)
        self.context_slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.context_slider.setValue(CONTEXT_STEPS.index(DEFAULT_CONTEXT))
        self.context_slider.setToolTip("Context length the figures are for")
        self.context_label = QLabel(context_label(DEFAULT_CONTEXT), self)
        self.context_label.setMinimumWidth(40)
        self.kv_combo = QComboBox(self)
        self.kv_combo.addItems(list(KV_TYPES))
        self.kv_combo.setToolTip("KV cache type; q8_0 and q4_0 need flash attention")
        self.flash_check = QCheckBox("Flash attention", self)
        self.context_slider.valueChanged.connect(self._on_context_slider_value_changed)
        self.kv_combo.currentIndexChanged.connect(self._on_kv_combo_current_index_changed)
        self.flash_check.toggled.connect(self._on_flash_check_toggled)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Context", self))
        row.addWidget(self.context_slider, 1)
        row.addWidget(self.context_label)
        row.addSpacing(12)
        row.addWidget(QLabel("KV cache", self))
        row.addWidget(self.kv_combo)
        row.addWidget(self.flash_check)

    def current_request(self) -> FitRequest:
        """The request the controls describe (a quantized KV cache implies flash attention)."""
        kv = self.kv_combo.currentText()
        return FitRequest(
            n_ctx=CONTEXT_STEPS[self.context_slider.value()],
            kv_cache_type=kv,
            flash_attn=self.flash_check.isChecked() or kv != "f16",
        )

    def set_context(self, n_ctx: int) -> None:
        """Move the slider to the step nearest `n_ctx`."""
        nearest = min(range(len(CONTEXT_STEPS)), key=lambda i: abs(CONTEXT_STEPS[i] - n_ctx))
        self.context_slider.setValue(nearest)

    @Slot(int)
    def _on_context_slider_value_changed(self, value: int) -> None:
        self.context_label.setText(context_label(CONTEXT_STEPS[value]))
        self.request_changed.emit()

    @Slot(int)
    def _on_kv_combo_current_index_changed(self, _index: int) -> None:
        quantized = self.kv_combo.currentText() != "f16"
        # llama.cpp needs flash attention for a quantized V cache: show it as implied.
        self.flash_check.blockSignals(True)
        if quantized:
            self.flash_check.setChecked(True)
        self.flash_check.setEnabled(not quantized)
        self.flash_check.blockSignals(False)
        self.request_changed.emit()

    @Slot(bool)
    def _on_flash_check_toggled(self, _checked: bool) -> None:
        self.request_changed.emit()
