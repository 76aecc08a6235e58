"""The Load options dialog: how one model is loaded (context, GPU layers, KV cache, ...)."""

from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.engine import LoadPlan
from runtimes.base import KVCacheType, LoadOptions

KV_TYPES: tuple[KVCacheType, ...] = ("f16", "q8_0", "q4_0")
_GPU_ALL, _GPU_N, _GPU_NONE = 0, 1, 2
_KEEP_NEVER, _KEEP_MINUTES = 0, 1


class LoadOptionsDialog(QDialog):
    """Edits the load options of one model, starting from what was saved or planned.

    The planner's defaults are shown in words at the top; "Reset to defaults" puts them back
    in the fields. Accepting leaves the result in `options()`; the caller saves it (or forgets
    the saved options when they equal the defaults).

    Args:
        model_name: the model's display name, for the title.
        defaults: the plan the planner chose without saved options.
        current: the options to start from (saved ones, else the defaults' options).
        parent: the window it belongs to.
    """

    def __init__(
        self,
        model_name: str,
        defaults: LoadPlan,
        current: LoadOptions | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Load options — {model_name}")
        self.defaults = defaults
        explanation = QLabel(f"Defaults for this machine: {defaults.explanation}", self)
        explanation.setObjectName("defaults_explanation")
        explanation.setWordWrap(True)
        self.context = QSpinBox(self)
        self.context.setRange(0, 1_048_576)
        self.context.setSingleStep(512)
        self.context.setSpecialValueText("model's trained length")
        self.gpu_mode = QComboBox(self)
        self.gpu_mode.addItems(["All layers", "N layers", "None (CPU only)"])
        self.gpu_layers = QSpinBox(self)
        self.gpu_layers.setRange(1, 1000)
        self.flash_attn = QCheckBox("Flash attention", self)
        self.kv_type = QComboBox(self)
        self.kv_type.addItems(list(KV_TYPES))
        self.threads = QSpinBox(self)
        self.threads.setRange(0, 512)
        self.threads.setSpecialValueText("auto (physical cores)")
        self.batch = QSpinBox(self)
        self.batch.setRange(1, 65_536)
        self.mmap = QCheckBox("Map the file (mmap)", self)
        self.mlock = QCheckBox("Lock in RAM (mlock)", self)
        self.keep_mode = QComboBox(self)
        self.keep_mode.addItems(["Never unload", "Unload after N minutes idle"])
        self.keep_minutes = QSpinBox(self)
        self.keep_minutes.setRange(1, 24 * 60)
        self.keep_minutes.setSuffix(" min")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.RestoreDefaults,
            self,
        )
        self.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).setText(
            "Reset to defaults"
        )
        self._lay_out(explanation)
        self.gpu_mode.currentIndexChanged.connect(self._on_gpu_mode_current_index_changed)
        self.keep_mode.currentIndexChanged.connect(self._on_keep_mode_current_index_changed)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.buttons.clicked.connect(self._on_buttons_clicked)
        self.set_options(current or defaults.options)

    def _lay_out(self, explanation: QLabel) -> None:
        form = QFormLayout()
        form.addRow("Context length", self.context)
        gpu = QHBoxLayout()
        gpu.addWidget(self.gpu_mode)
        gpu.addWidget(self.gpu_layers)
        form.addRow("GPU layers", gpu)
        form.addRow("", self.flash_attn)
        form.addRow("KV cache type", self.kv_type)
        form.addRow("Threads", self.threads)
        form.addRow("Batch size", self.batch)
        form.addRow("", self.mmap)
        form.addRow("", self.mlock)
        keep = QHBoxLayout()
        keep.addWidget(self.keep_mode)
        keep.addWidget(self.keep_minutes)
        form.addRow("Keep alive", keep)
        layout = QVBoxLayout(self)
        layout.addWidget(explanation)
        layout.addLayout(form)
        layout.addWidget(self.buttons)

    def set_options(self, options: LoadOptions) -> None:
        """Show `options` in the fields."""
        self.context.setValue(options.n_ctx)
        if options.n_gpu_layers < 0:
            self.gpu_mode.setCurrentIndex(_GPU_ALL)
        elif options.n_gpu_layers == 0:
            self.gpu_mode.setCurrentIndex(_GPU_NONE)
        else:
            self.gpu_mode.setCurrentIndex(_GPU_N)
            self.gpu_layers.setValue(options.n_gpu_layers)
        self.flash_attn.setChecked(options.flash_attn)
        self.kv_type.setCurrentIndex(KV_TYPES.index(options.kv_cache_type))
        self.threads.setValue(options.n_threads or 0)
        self.batch.setValue(options.n_batch)
        self.mmap.setChecked(options.use_mmap)
        self.mlock.setChecked(options.use_mlock)
        if options.keep_alive_s is None:
            self.keep_mode.setCurrentIndex(_KEEP_NEVER)
        else:
            self.keep_mode.setCurrentIndex(_KEEP_MINUTES)
            self.keep_minutes.setValue(max(1, round(options.keep_alive_s / 60)))
        self._sync_enabled()

    def options(self) -> LoadOptions:
        """The options the fields describe."""
        mode = self.gpu_mode.currentIndex()
        layers = -1 if mode == _GPU_ALL else 0 if mode == _GPU_NONE else self.gpu_layers.value()
        keep = (
            None
            if self.keep_mode.currentIndex() == _KEEP_NEVER
            else float(self.keep_minutes.value() * 60)
        )
        return LoadOptions(
            n_ctx=self.context.value(),
            n_gpu_layers=layers,
            n_threads=self.threads.value() or None,
            n_batch=self.batch.value(),
            flash_attn=self.flash_attn.isChecked(),
            kv_cache_type=KV_TYPES[self.kv_type.currentIndex()],
            use_mmap=self.mmap.isChecked(),
            use_mlock=self.mlock.isChecked(),
            keep_alive_s=keep,
        )

    def is_default(self) -> bool:
        """Whether the fields hold exactly the planner's defaults (nothing worth saving)."""
        return self.options() == self.defaults.options

    def _sync_enabled(self) -> None:
        self.gpu_layers.setEnabled(self.gpu_mode.currentIndex() == _GPU_N)
        self.keep_minutes.setEnabled(self.keep_mode.currentIndex() == _KEEP_MINUTES)

    @Slot(int)
    def _on_gpu_mode_current_index_changed(self, _index: int) -> None:
        self._sync_enabled()

    @Slot(int)
    def _on_keep_mode_current_index_changed(self, _index: int) -> None:
        self._sync_enabled()

    @Slot(object)
    def _on_buttons_clicked(self, button: object) -> None:
        reset = self.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults)
        if button is reset:
            self.set_options(self.defaults.options)
