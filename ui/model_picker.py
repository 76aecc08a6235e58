"""The toolbar's model picker: local models, "Open GGUF file…", load state and progress."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from app.choices import SEPARATOR, split_choice
from app.fit_types import FitVerdict
from app.library import LocalModel
from runtimes.base import RemoteModel

_OPEN_FILE = "__open_file__"

__all__ = ["ModelPicker", "server_choice", "split_choice"]


def server_choice(runtime_key: str, model: str) -> str:
    """The picker's data for a model served by a runtime: "ollama::llama3.2:3b"."""
    return f"{runtime_key}{SEPARATOR}{model}"


def _format_size(size_bytes: int) -> str:
    if size_bytes >= 1e9:
        return f"{size_bytes / 1e9:.1f} GB"
    return f"{size_bytes / 1e6:.0f} MB"


def fit_summary(verdict: FitVerdict) -> str:
    """The verdict's numbers in plain text: the explanation and the speed."""
    lines = [f"{verdict.badge}: {verdict.explanation}"]
    speed = verdict.speed
    if verdict.verdict != "wont_fit" and speed is not None and speed.decode_tokens_per_second:
        lines.append(f"~{speed.decode_tokens_per_second:.0f} tok/s ({speed.basis}; {speed.detail})")
    return "\n".join(lines)


class ModelPicker(QWidget):
    """Chooses the model of the open conversation and shows whether it is loaded.

    Signals:
        model_chosen(str): the path of the model the user picked.
        open_file_requested(): the user picked "Open GGUF file…".
        load_requested(): the user pressed Load.
        unload_requested(): the user pressed Unload.
        cancel_requested(): the user pressed Cancel while a model was loading.
        selection_changed(str): the chosen model changed (by the user or by code); "" when
            none is chosen.
    """

    model_chosen = Signal(str)
    open_file_requested = Signal()
    load_requested = Signal()
    unload_requested = Signal()
    cancel_requested = Signal()
    selection_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.combo = QComboBox(self)
        self.combo.setObjectName("model_combo")
        self.combo.setMinimumWidth(320)
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.load_button = QPushButton("Load", self)
        self.state = QLabel("○ not loaded", self)
        self.state.setObjectName("load_state")
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.progress.setMaximumWidth(160)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.loaded_count = QLabel("", self)
        self.loaded_count.setObjectName("loaded_count")
        self.loaded_count.hide()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo)
        layout.addWidget(self.load_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.state)
        layout.addWidget(self.loaded_count)
        self.combo.activated.connect(self._on_combo_activated)
        self.combo.currentIndexChanged.connect(self._on_combo_current_index_changed)
        self.load_button.clicked.connect(self._on_load_button_clicked)
        self._loaded = False
        self._loading = False
        self._local: list[LocalModel] = []
        self._servers: dict[str, tuple[str, list[RemoteModel]]] = {}
        self._fits: dict[str, FitVerdict] = {}

    def set_models(self, models: Sequence[LocalModel], selected_path: str) -> None:
        """Fill the local part of the list; keeps `selected_path` selected when it is there."""
        self._local = list(models)
        self._rebuild(selected_path)

    def set_server_models(
        self, runtime_key: str, label: str, models: Sequence[RemoteModel]
    ) -> None:
        """Add (or replace) the models a server offers, under the server's name."""
        if models:
            self._servers[runtime_key] = (label, list(models))
        else:
            self._servers.pop(runtime_key, None)
        self._rebuild(self.selected_path())

    def set_fits(self, fits: Mapping[str, FitVerdict]) -> None:
        """Show each local model's fit badge (path -> verdict), with its numbers on hover."""
        self._fits.update(fits)
        self._rebuild(self.selected_path())

    def fit_of(self, path: str) -> FitVerdict | None:
        """The fit verdict shown for a local model, if any."""
        return self._fits.get(path)

    def clear_server_models(self) -> None:
        """Forget every server's models (their runtimes changed); local models stay."""
        self._servers.clear()
        self._rebuild(self.selected_path())

    def _rebuild(self, selected: str) -> None:
        self.combo.blockSignals(True)
        try:
            self.combo.clear()
            for model in self._local:
                label = f"{model.name}  ·  {_format_size(model.size_bytes)}"
                tip = model.problem or f"{model.path}\n{model.source}"
                verdict = self._fits.get(str(model.path))
                if verdict is not None:
                    label += f"  ·  {verdict.badge}"
                    tip += f"\n\n{fit_summary(verdict)}"
                self.combo.addItem(label, str(model.path))
                self.combo.setItemData(self.combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
            for key, (server_label, remote) in sorted(self._servers.items()):
                self.combo.insertSeparator(self.combo.count())
                for served in remote:
                    size = f"  ·  {_format_size(served.size_bytes)}" if served.size_bytes else ""
                    self.combo.addItem(
                        f"{served.name}  ·  {server_label}{size}", server_choice(key, served.name)
                    )
            self.combo.insertSeparator(self.combo.count())
            self.combo.addItem("Open GGUF file…", _OPEN_FILE)
            self.select_path(selected)
        finally:
            self.combo.blockSignals(False)
        self.selection_changed.emit(self.selected_path())

    def choices(self) -> list[tuple[str, str]]:
        """Every model offered, as (display name, choice), local ones first."""
        return [
            (self.combo.itemText(i).split("  ·  ")[0], str(self.combo.itemData(i)))
            for i in range(self.combo.count())
            if self.combo.itemData(i) not in (None, _OPEN_FILE)
        ]

    def model_name(self) -> str:
        """The chosen model's display name (without size or runtime)."""
        return self.combo.currentText().split("  ·  ")[0]

    def select_path(self, path: str) -> None:
        """Show `path` as the chosen model (first model when absent)."""
        index = self.combo.findData(path) if path else -1
        self.combo.setCurrentIndex(index if index >= 0 else 0)

    def selected_path(self) -> str:
        """The chosen model's path ("" when none)."""
        data = self.combo.currentData()
        return "" if data in (None, _OPEN_FILE) else str(data)

    def set_loading(self, fraction: float, stage: str) -> None:
        """Show load progress."""
        self.progress.show()
        self.progress.setValue(round(fraction * 100))
        self.progress.setFormat(f"{stage} %p%")
        self.state.setText("◌ loading…")
        self.state.setStyleSheet("")
        self._loading = True
        self.load_button.setText("Cancel")
        self.load_button.setEnabled(True)
        self.combo.setEnabled(False)

    def set_loaded(self, summary: str) -> None:
        """Show the model as loaded, with a short summary (backend, threads, context)."""
        self._loaded = True
        self._loading = False
        self.progress.hide()
        self.state.setText(f"● loaded · {summary}")
        self.state.setStyleSheet("color: #43a047")  # readable on light and dark
        self.load_button.setText("Unload")
        self.load_button.setEnabled(True)
        self.combo.setEnabled(True)

    def set_unloaded(self, reason: str = "not loaded") -> None:
        """Show the model as not loaded (and why: "not loaded", "crashed", "failed")."""
        self._loaded = False
        self._loading = False
        self.progress.hide()
        self.state.setText(f"○ {reason}")
        quiet = reason in ("not loaded", "load cancelled")
        self.state.setStyleSheet("" if quiet else "color: #b3541e")
        self.load_button.setText("Load")
        self.load_button.setEnabled(True)
        self.combo.setEnabled(True)

    def set_loaded_models(self, names: Sequence[str]) -> None:
        """Show how many models are loaded ("2 loaded"), naming them in the tooltip."""
        self.loaded_count.setVisible(bool(names))
        self.loaded_count.setText(f"{len(names)} loaded")
        self.loaded_count.setToolTip("Loaded now:\n" + "\n".join(names) if names else "")

    @Slot(int)
    def _on_combo_current_index_changed(self, _index: int) -> None:
        self.selection_changed.emit(self.selected_path())

    @Slot(int)
    def _on_combo_activated(self, index: int) -> None:
        data = self.combo.itemData(index)
        if data == _OPEN_FILE:
            self.open_file_requested.emit()
        elif data:
            self.model_chosen.emit(str(data))

    @Slot()
    def _on_load_button_clicked(self) -> None:
        if self._loading:
            self.cancel_requested.emit()
        elif self._loaded:
            self.unload_requested.emit()
        else:
            self.load_requested.emit()
