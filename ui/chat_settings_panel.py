"""The right-hand panel: this conversation's system prompt, sampling preset and parameters,
context length, and the context meter (tokens used against the model's context)."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.conversation_settings import ConversationSettings
from app.errors import WorkbenchError
from app.presets import BUILTIN_PRESETS, PresetStore
from runtimes.base import GenerationParams

CUSTOM = "Custom"
"""What the preset box shows when the parameters match no preset."""
CONTEXT_CHOICES = (2048, 4096, 8192, 16384, 32768, 65536, 131072)
DEBOUNCE_MS = 300
TIGHT_FRACTION = 0.9
"""The meter turns to a warning colour past this share of the context."""


def short_tokens(count: int) -> str:
    """1234 → "1.2k", 131072 → "131k", 900 → "900"."""
    if count < 1000:
        return str(count)
    if count < 100_000:
        return f"{count / 1000:.1f}k".replace(".0k", "k")
    return f"{count // 1000}k"


class ChatSettingsPanel(QWidget):
    """Per-conversation settings. Edits are reported (debounced) as whole settings values.

    Signals:
        settings_changed(object): the user changed something; the new `ConversationSettings`.
    """

    settings_changed = Signal(object)

    def __init__(self, presets: PresetStore | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chat_settings")
        self._presets = presets
        self._loading = False
        self._settings = ConversationSettings()
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._on_debounce_timeout)
        self._build_fields()
        self._build_layout()
        self._connect_fields()
        self.reload_presets()
        self.set_settings(ConversationSettings())

    # ------------------------------------------------------------------ build

    def _build_fields(self) -> None:
        self.system_prompt = QPlainTextEdit(self)
        self.system_prompt.setObjectName("system_prompt")
        self.system_prompt.setPlaceholderText("You are a helpful assistant.")
        self.system_prompt.setFixedHeight(96)
        self.preset = QComboBox(self)
        _compact(self.preset)
        self.preset.setObjectName("preset")
        self.save_preset_button = QPushButton("Save As…", self)
        self.save_preset_button.setToolTip("Save these parameters as a named preset")
        self.delete_preset_button = QPushButton("Delete", self)
        self.delete_preset_button.setToolTip("Delete this preset (built-in ones stay)")
        self.temperature = _double(self, 0.0, 2.0, 0.05, 2)
        self.top_p = _double(self, 0.0, 1.0, 0.01, 2)
        self.top_k = _int(self, 0, 1000)
        self.min_p = _double(self, 0.0, 1.0, 0.01, 2)
        self.repeat_penalty = _double(self, 0.5, 2.0, 0.01, 2)
        self.max_tokens = _int(self, 1, 131_072)
        self.seed = _int(self, -1, 2_147_483_647)
        self.seed.setSpecialValueText("random")
        self.seed.setToolTip("A fixed seed repeats the same reply; 'random' varies it")
        self.stop = QPlainTextEdit(self)
        self.stop.setObjectName("stop_strings")
        self.stop.setPlaceholderText("one stop string per line")
        self.stop.setFixedHeight(48)
        self.context = QComboBox(self)
        _compact(self.context)
        self.context.setObjectName("context_length")
        self.context.addItem("model default", None)
        for n_ctx in CONTEXT_CHOICES:
            self.context.addItem(f"{n_ctx:,}", n_ctx)
        self.context.setToolTip(
            "The context this conversation loads its model with (llama.cpp). Larger needs "
            "more memory for the KV cache; the model reloads when it changes."
        )
        self.meter = QProgressBar(self)
        self.meter.setObjectName("context_meter")
        self.meter.setTextVisible(False)
        self.meter.setFixedHeight(8)
        self.meter_label = QLabel("", self)
        self.meter_label.setObjectName("context_meter_label")
        self.meter_label.setWordWrap(True)

    def _build_layout(self) -> None:
        preset_buttons = QHBoxLayout()
        preset_buttons.addWidget(self.save_preset_button)
        preset_buttons.addWidget(self.delete_preset_button)
        preset_buttons.addStretch(1)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Preset", self.preset)
        form.addRow("", preset_buttons)
        form.addRow("Temperature", self.temperature)
        form.addRow("Top P", self.top_p)
        form.addRow("Top K", self.top_k)
        form.addRow("Min P", self.min_p)
        form.addRow("Repeat penalty", self.repeat_penalty)
        form.addRow("Max tokens", self.max_tokens)
        form.addRow("Seed", self.seed)
        form.addRow("Stop", self.stop)
        form.addRow("Context", self.context)
        line = QFrame(self)
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        # The fields scroll, so the panel never forces a tall or wide window.
        inner = QWidget(self)
        scroll = QScrollArea(self)
        scroll.setObjectName("chat_settings_scroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(inner)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        layout = QVBoxLayout(inner)
        layout.setContentsMargins(8, 4, 8, 8)
        layout.addWidget(QLabel("<b>System prompt</b>", self))
        layout.addWidget(self.system_prompt)
        layout.addLayout(form)
        layout.addWidget(line)
        layout.addWidget(QLabel("<b>Context used</b>", self))
        layout.addWidget(self.meter)
        layout.addWidget(self.meter_label)
        layout.addStretch(1)
        # Never narrower than the fields (they would be cut off); taller content scrolls.
        bar = scroll.verticalScrollBar().sizeHint().width()
        self.setMinimumWidth(inner.minimumSizeHint().width() + bar)

    def _connect_fields(self) -> None:
        self.system_prompt.textChanged.connect(self._on_field_changed)
        self.stop.textChanged.connect(self._on_field_changed)
        for box in (self.temperature, self.top_p, self.min_p, self.repeat_penalty):
            box.valueChanged.connect(self._on_param_changed)
        for spin in (self.top_k, self.max_tokens, self.seed):
            spin.valueChanged.connect(self._on_param_changed)
        self.context.currentIndexChanged.connect(self._on_field_changed)
        self.preset.activated.connect(self._on_preset_activated)
        self.save_preset_button.clicked.connect(self._on_save_preset_button_clicked)
        self.delete_preset_button.clicked.connect(self._on_delete_preset_button_clicked)

    # ----------------------------------------------------------------- public

    def reload_presets(self) -> None:
        """Refill the preset box from the store (built-ins first), keeping the choice."""
        current = self.preset.currentText()
        names = self._preset_names()
        self.preset.blockSignals(True)
        try:
            self.preset.clear()
            self.preset.addItems(names)
            self.preset.addItem(CUSTOM)
            index = self.preset.findText(current)
            self.preset.setCurrentIndex(index if index >= 0 else self.preset.count() - 1)
        finally:
            self.preset.blockSignals(False)
        self._update_delete_button()

    def set_settings(self, settings: ConversationSettings) -> None:
        """Show a conversation's settings (emits nothing)."""
        self._debounce.stop()
        self._loading = True
        try:
            self._settings = settings
            self.system_prompt.setPlainText(settings.system_prompt)
            self._show_params(settings.params)
            self.context.setCurrentIndex(max(self.context.findData(settings.n_ctx), 0))
            if settings.n_ctx is not None and self.context.findData(settings.n_ctx) < 0:
                self.context.addItem(f"{settings.n_ctx:,}", settings.n_ctx)
                self.context.setCurrentIndex(self.context.count() - 1)
            self._show_preset_name(settings.params, settings.preset)
        finally:
            self._loading = False

    def settings(self) -> ConversationSettings:
        """The settings as the panel shows them now."""
        preset = self.preset.currentText()
        return ConversationSettings(
            system_prompt=self.system_prompt.toPlainText().strip(),
            preset=preset,
            params=self.params(),
            n_ctx=self.context.currentData(),
        )

    def params(self) -> GenerationParams:
        """The sampling parameters shown now."""
        stops = tuple(s for s in self.stop.toPlainText().splitlines() if s.strip())
        seed = self.seed.value()
        return GenerationParams(
            temperature=round(self.temperature.value(), 3),
            top_p=round(self.top_p.value(), 3),
            top_k=self.top_k.value(),
            min_p=round(self.min_p.value(), 3),
            repeat_penalty=round(self.repeat_penalty.value(), 3),
            max_tokens=self.max_tokens.value(),
            seed=None if seed < 0 else seed,
            stop=stops,
        )

    def flush(self) -> None:
        """Report a pending (debounced) edit now, e.g. right before a message is sent."""
        if self._debounce.isActive():
            self._debounce.stop()
            self._on_debounce_timeout()

    def set_context_usage(self, used: int, limit: int, exact: bool) -> None:
        """Show tokens used against the context; `exact` False marks an estimate (≈)."""
        if limit <= 0:
            self.meter.setRange(0, 1)
            self.meter.setValue(0)
            self.meter_label.setText("No model chosen")
            return
        self.meter.setRange(0, limit)
        self.meter.setValue(min(used, limit))
        mark = "" if exact else "≈ "
        share = used / limit
        text = f"{mark}{short_tokens(used)} / {short_tokens(limit)} tokens ({share:.0%})"
        if share > 1:
            text += " — over the context: the oldest turns will not fit"
        elif share >= TIGHT_FRACTION:
            text += " — nearly full"
        self.meter_label.setText(text)
        self.meter.setProperty("tight", share >= TIGHT_FRACTION)
        self.meter.setToolTip(
            "Tokens of the system prompt and history" + ("" if exact else " (estimated)")
        )

    # ------------------------------------------------------------------ slots

    @Slot()
    def _on_field_changed(self) -> None:
        if not self._loading:
            self._debounce.start()

    @Slot()
    def _on_param_changed(self) -> None:
        if self._loading:
            return
        self._show_preset_name(self.params(), self.preset.currentText())
        self._debounce.start()

    @Slot()
    def _on_debounce_timeout(self) -> None:
        self._settings = self.settings()
        self.settings_changed.emit(self._settings)

    @Slot(int)
    def _on_preset_activated(self, index: int) -> None:
        name = self.preset.itemText(index)
        if name == CUSTOM:
            return
        params = self._preset_params(name)
        if params is None:
            return
        # Max tokens, seed and stop strings are the conversation's own: a preset sets sampling.
        current = self.params()
        params = replace(
            params, max_tokens=current.max_tokens, seed=current.seed, stop=current.stop
        )
        self._loading = True
        try:
            self._show_params(params)
        finally:
            self._loading = False
        self._update_delete_button()
        self._debounce.start()

    @Slot()
    def _on_save_preset_button_clicked(self) -> None:
        if self._presets is None:
            return
        suggested = "" if self.preset.currentText() == CUSTOM else self.preset.currentText()
        if self._presets.is_builtin(suggested):
            suggested = ""
        name, ok = QInputDialog.getText(self, "Save Preset", "Preset name:", text=suggested)
        if ok:
            self.save_preset(name)

    def save_preset(self, name: str) -> bool:
        """Save the shown parameters under `name`; a bad name is said under the meter."""
        if self._presets is None:
            return False
        try:
            self._presets.save(name.strip(), self.params())
        except WorkbenchError as exc:
            self.meter_label.setText(exc.message)
            return False
        self.reload_presets()
        self.preset.setCurrentIndex(self.preset.findText(name.strip()))
        self._update_delete_button()
        self._debounce.start()
        return True

    @Slot()
    def _on_delete_preset_button_clicked(self) -> None:
        name = self.preset.currentText()
        if self._presets is None or name == CUSTOM or self._presets.is_builtin(name):
            return
        try:
            self._presets.delete(name)
        except WorkbenchError as exc:
            self.meter_label.setText(exc.message)
            return
        self.reload_presets()
        self._show_preset_name(self.params(), "")
        self._debounce.start()

    # ---------------------------------------------------------------- helpers

    def _preset_names(self) -> list[str]:
        return self._presets.names() if self._presets is not None else list(BUILTIN_PRESETS)

    def _preset_params(self, name: str) -> GenerationParams | None:
        if self._presets is not None:
            try:
                return self._presets.get(name)
            except WorkbenchError:
                return None
        return BUILTIN_PRESETS.get(name)

    def _show_params(self, params: GenerationParams) -> None:
        self.temperature.setValue(params.temperature)
        self.top_p.setValue(params.top_p)
        self.top_k.setValue(params.top_k)
        self.min_p.setValue(params.min_p)
        self.repeat_penalty.setValue(params.repeat_penalty)
        self.max_tokens.setValue(params.max_tokens)
        self.seed.setValue(-1 if params.seed is None else params.seed)
        self.stop.setPlainText("\n".join(params.stop))

    def _show_preset_name(self, params: GenerationParams, preferred: str) -> None:
        """Select the preset whose values these are (the preferred one on a tie), else Custom."""
        name: str | None = None
        preferred_params = self._preset_params(preferred) if preferred else None
        if preferred_params is not None and _same_sampling(preferred_params, params):
            name = preferred
        else:
            name = next(
                (
                    candidate
                    for candidate in self._preset_names()
                    if (found := self._preset_params(candidate)) is not None
                    and _same_sampling(found, params)
                ),
                None,
            )
        index = self.preset.findText(name or CUSTOM)
        self.preset.blockSignals(True)
        self.preset.setCurrentIndex(index if index >= 0 else self.preset.count() - 1)
        self.preset.blockSignals(False)
        self._update_delete_button()

    def _update_delete_button(self) -> None:
        name = self.preset.currentText()
        builtin = self._presets is None or self._presets.is_builtin(name)
        self.delete_preset_button.setEnabled(name != CUSTOM and not builtin)


def _same_sampling(a: GenerationParams, b: GenerationParams) -> bool:
    """Whether two parameter sets sample alike (max tokens, seed and stops are not sampling)."""
    fields = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty")
    return all(abs(float(getattr(a, f)) - float(getattr(b, f))) < 1e-6 for f in fields)


def _double(parent: QWidget, low: float, high: float, step: float, decimals: int) -> QDoubleSpinBox:
    box = QDoubleSpinBox(parent)
    box.setMinimumWidth(64)
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setDecimals(decimals)
    box.setAlignment(Qt.AlignmentFlag.AlignRight)
    return box


def _compact(combo: QComboBox) -> None:
    """A combo box that can be narrower than its longest item (the panel is narrow)."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(6)


def _int(parent: QWidget, low: int, high: int) -> QSpinBox:
    box = QSpinBox(parent)
    box.setMinimumWidth(64)
    box.setRange(low, high)
    box.setAlignment(Qt.AlignmentFlag.AlignRight)
    return box


def new_chat_settings(
    presets: PresetStore | None, preset: str, system_prompt: str
) -> ConversationSettings:
    """The settings a new conversation starts with: the default preset's sampling and the
    default system prompt (an unknown preset leaves the defaults)."""
    params = GenerationParams()
    found: GenerationParams | None = BUILTIN_PRESETS.get(preset)
    if presets is not None:
        try:
            found = presets.get(preset)
        except WorkbenchError:
            found = None
    if found is not None:
        fields = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty")
        params = replace(params, **{name: getattr(found, name) for name in fields})
    return ConversationSettings(
        system_prompt=system_prompt, preset=preset if found else "Custom", params=params
    )
