"""One pane of the Compare window: a model, its options, and its streaming transcript.

The pane's reply text arrives in bursts from the worker; it is gathered and drawn at most
every 40 ms (`COALESCE_MS`), so four panes streaming at once keep the window responsive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import cast

from PySide6.QtCore import QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.choices import runtime_label, split_choice
from app.compare_plan import RequestedMode
from app.errors import WorkbenchError
from app.presets import BUILTIN_PRESETS, DEFAULT_PRESET, PresetStore
from runtimes.base import GenerationParams, LoadOptions
from ui.chat_view import MessageInput
from ui.transcript import Transcript

COALESCE_MS = 40
MODES = (("Auto", "auto"), ("Parallel", "parallel"), ("Sequential", "sequential"))
DEFAULT_SEED = 42
"""One seed for every pane by default, so differences come from the models, not the dice."""
STATE_TEXTS = {
    "idle": "",
    "waiting": "waiting for its turn",
    "loading": "loading…",
    "loaded": "loaded",
    "generating": "generating…",
    "done": "done",
    "failed": "failed",
    "stopped": "stopped",
    "unloaded": "done · unloaded",
}


@dataclass(frozen=True, slots=True)
class PaneOverrides:
    """What one pane changes from the shared settings (None: use the shared value)."""

    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    system_prompt: str | None = None
    n_ctx: int | None = None

    def apply(self, params: GenerationParams) -> GenerationParams:
        """The shared `params` with this pane's overrides."""
        changes: dict[str, object] = {}
        if self.temperature is not None:
            changes["temperature"] = self.temperature
        if self.max_tokens is not None:
            changes["max_tokens"] = self.max_tokens
        if self.seed is not None:
            changes["seed"] = self.seed
        return replace(params, **changes)  # type: ignore[arg-type]

    def load(self) -> LoadOptions | None:
        """Load options for a context override; None lets the opener choose."""
        return None if self.n_ctx is None else LoadOptions(n_ctx=self.n_ctx)

    def summary(self) -> str:
        """A short text of what is overridden ("" when nothing)."""
        parts = []
        if self.temperature is not None:
            parts.append(f"temp {self.temperature:g}")
        if self.max_tokens is not None:
            parts.append(f"max {self.max_tokens}")
        if self.seed is not None:
            parts.append(f"seed {self.seed}")
        if self.n_ctx is not None:
            parts.append(f"ctx {self.n_ctx}")
        if self.system_prompt is not None:
            parts.append("own system prompt")
        return ", ".join(parts)


class PaneOptionsDialog(QDialog):
    """Per-pane overrides; a field at its "Shared" value uses the window's setting."""

    def __init__(self, overrides: PaneOverrides, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Pane options")
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(-0.1, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setSpecialValueText("Shared")
        self.temperature.setValue(-0.1 if overrides.temperature is None else overrides.temperature)
        self.max_tokens = _spin(0, 32768, "Shared", overrides.max_tokens, 0)
        self.seed = _spin(-1, 2**31 - 1, "Shared", overrides.seed, -1)
        self.n_ctx = _spin(0, 1_048_576, "Default", overrides.n_ctx, 0)
        self.n_ctx.setSingleStep(1024)
        self.system_prompt = QPlainTextEdit(overrides.system_prompt or "")
        self.system_prompt.setPlaceholderText("Empty: the shared system prompt")
        form = QFormLayout()
        form.addRow("Temperature", self.temperature)
        form.addRow("Max tokens", self.max_tokens)
        form.addRow("Seed", self.seed)
        form.addRow("Context", self.n_ctx)
        form.addRow("System prompt", self.system_prompt)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def overrides(self) -> PaneOverrides:
        """What the dialog's fields say."""
        temperature = self.temperature.value()
        system = self.system_prompt.toPlainText().strip()
        return PaneOverrides(
            temperature=None if temperature < 0 else round(temperature, 2),
            max_tokens=self.max_tokens.value() or None,
            seed=None if self.seed.value() < 0 else self.seed.value(),
            system_prompt=system or None,
            n_ctx=self.n_ctx.value() or None,
        )


def _spin(low: int, high: int, special: str, value: int | None, unset: int) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setSpecialValueText(special)
    spin.setValue(unset if value is None else value)
    return spin


def _note_for(_message: object) -> tuple[str, bool]:
    return "", False  # stored replies are shown as text with their own note


class ComparePane(QWidget):
    """A model picker, a state line and a streaming transcript.

    Signals:
        remove_requested(): the pane's × was clicked.
        choice_changed(): another model was picked.
    """

    remove_requested = Signal()
    choice_changed = Signal()

    def __init__(
        self, index: int, choices: Sequence[tuple[str, str]], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.index = index
        self.overrides = PaneOverrides()
        self.state = "idle"
        self.title = QLabel()
        self.combo = QComboBox()
        self.combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.combo.setMinimumContentsLength(12)
        self.combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.combo.currentIndexChanged.connect(self._on_combo_current_index_changed)
        self.options = QPushButton("Options…")
        self.options.clicked.connect(self._on_options_clicked)
        self.remove = QToolButton()
        self.remove.setText("×")
        self.remove.setToolTip("Remove this pane")
        self.remove.clicked.connect(self.remove_requested)
        self.runtime = QLabel()
        self.fit = QLabel()
        self.fit.setWordWrap(True)
        self.status = QLabel()
        for label in (self.runtime, self.fit, self.status):
            label.setStyleSheet("color: palette(placeholder-text)")
        self.transcript = Transcript(_note_for, self)
        self._buffer: list[str] = []
        self._timer = QTimer(self)
        self._timer.setInterval(COALESCE_MS)
        self._timer.timeout.connect(self._on_timer_timeout)
        self._build_layout()
        self.set_index(index)
        self.set_choices(choices)
        self.transcript.show_messages([])

    def _build_layout(self) -> None:
        top = QHBoxLayout()
        top.addWidget(self.title)
        top.addWidget(self.combo, 1)
        top.addWidget(self.options)
        top.addWidget(self.remove)
        info = QHBoxLayout()
        info.addWidget(self.runtime)
        info.addStretch(1)
        info.addWidget(self.status)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(top)
        layout.addLayout(info)
        layout.addWidget(self.fit)
        layout.addWidget(self.transcript, 1)

    # ------------------------------------------------------------------ model

    def set_index(self, index: int) -> None:
        """This pane's position (its title "1", "2", …)."""
        self.index = index
        self.title.setText(f"<b>{index + 1}</b>")

    def set_choices(self, choices: Sequence[tuple[str, str]]) -> None:
        """Fill the model list (label, choice), keeping the current model when it remains."""
        current = self.choice()
        self.combo.blockSignals(True)
        self.combo.clear()
        for label, choice in choices:
            self.combo.addItem(label, choice)
        self.combo.blockSignals(False)
        if current:
            self.set_choice(current)
        self._show_runtime()

    def set_choice(self, choice: str, label: str = "") -> None:
        """Pick `choice` (added to the list when missing, e.g. a past run's model)."""
        found = self.combo.findData(choice)
        if found < 0:
            self.combo.addItem(label or choice, choice)
            found = self.combo.count() - 1
        self.combo.setCurrentIndex(found)
        self._show_runtime()

    def choice(self) -> str:
        """The chosen model ("" when the list is empty)."""
        data = self.combo.currentData()
        return str(data) if data else ""

    def model_name(self) -> str:
        """The chosen model's label."""
        return self.combo.currentText()

    def set_need(self, text: str) -> None:
        """The memory line under the header (from the memory plan)."""
        self.fit.setText(text)

    def set_locked(self, locked: bool) -> None:
        """While a turn runs, the model and its options cannot change."""
        for widget in (self.combo, self.options, self.remove):
            widget.setEnabled(not locked)

    def _show_runtime(self) -> None:
        choice = self.choice()
        text = runtime_label(split_choice(choice)[0]) if choice else "no model"
        extra = self.overrides.summary()
        self.runtime.setText(f"{text} · {extra}" if extra else text)

    @Slot(int)
    def _on_combo_current_index_changed(self, _index: int) -> None:
        self._show_runtime()
        self.choice_changed.emit()

    @Slot()
    def _on_options_clicked(self) -> None:
        dialog = PaneOptionsDialog(self.overrides, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.overrides = dialog.overrides()
            self._show_runtime()
            self.choice_changed.emit()

    # ------------------------------------------------------------------ turns

    def set_state(self, state: str, detail: str = "") -> None:
        """Show what the pane is doing: waiting, loading, generating, done, failed…"""
        self.state = state
        text = STATE_TEXTS.get(state, state)
        self.status.setText(f"{text}: {detail}" if detail else text)
        self.status.setToolTip(detail)

    def begin_turn(self, prompt: str) -> None:
        """Show the prompt and open an empty reply."""
        self._buffer.clear()
        self.transcript.append_user_message(prompt)
        self.transcript.begin_reply()

    def queue_text(self, text: str) -> None:
        """Gather streamed text; it is drawn on the next tick of the 40 ms timer."""
        self._buffer.append(text)
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Draw the gathered text now."""
        if self._buffer:
            text = "".join(self._buffer)
            self._buffer.clear()
            self.transcript.append_reply_text(text)

    def end_turn(self, note: str, warning: bool = False) -> None:
        """Close the reply with its quiet note (figures, or what went wrong)."""
        self._timer.stop()
        self.flush()
        self.transcript.end_reply(note, warning)

    def show_history(self, turns: Sequence[tuple[str, str, str, bool]]) -> None:
        """Show past turns: (prompt, reply, note, note is a warning) each."""
        self._timer.stop()
        self._buffer.clear()
        self.transcript.show_messages([])
        for prompt, reply, note, warning in turns:
            self.transcript.append_user_message(prompt)
            self.transcript.begin_reply()
            if reply:
                self.transcript.append_reply_text(reply)
            self.transcript.end_reply(note, warning)
        self.set_state("idle")

    def reply_text(self) -> str:
        """Everything the transcript shows, as text (for tests and copying)."""
        return self.transcript.toPlainText() + "".join(self._buffer)

    @Slot()
    def _on_timer_timeout(self) -> None:
        if self._buffer:
            self.flush()
        else:
            self._timer.stop()  # idle: stop ticking until the next piece arrives


def scroll_fraction(value: int, maximum: int) -> float:
    """Where a scroll bar is, from 0 (top) to 1 (bottom)."""
    return value / maximum if maximum > 0 else 1.0


class PromptBar(QWidget):
    """Under the panes: the shared system prompt, preset, seed and mode; the prompt box with
    Send (Enter) and Stop (Esc, wired by the page)."""

    def __init__(self, presets: PresetStore | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._presets = presets
        self.system_prompt = QLineEdit()
        self.system_prompt.setPlaceholderText("Shared system prompt (optional)")
        self.preset = QComboBox()
        self.preset.addItems(presets.names() if presets is not None else list(BUILTIN_PRESETS))
        self.preset.setCurrentText(DEFAULT_PRESET)
        self.seed = QSpinBox()
        self.seed.setRange(-1, 2**31 - 1)
        self.seed.setSpecialValueText("Random")
        self.seed.setValue(DEFAULT_SEED)
        self.seed.setToolTip("The same seed for every pane makes the comparison fair")
        self.mode = QComboBox()
        for label, value in MODES:
            self.mode.addItem(label, value)
        self.mode.setToolTip("Auto: in parallel when the models fit in memory together")
        self.input = MessageInput()
        self.input.setPlaceholderText(
            "A prompt for every pane… (Enter sends, Shift+Enter: new line)"
        )
        self.input.setFixedHeight(64)
        self.send_button = QPushButton("Send")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        settings = QHBoxLayout()
        settings.addWidget(self.system_prompt, 3)
        for label, widget in (("Preset", self.preset), ("Seed", self.seed), ("Mode", self.mode)):
            settings.addWidget(QLabel(label))
            settings.addWidget(widget)
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        prompt = QHBoxLayout()
        prompt.addWidget(self.input, 1)
        prompt.addLayout(buttons)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(settings)
        layout.addLayout(prompt)

    def requested_mode(self) -> RequestedMode:
        """ "auto", "parallel" or "sequential"."""
        return cast(RequestedMode, str(self.mode.currentData()))

    def shared_params(self) -> GenerationParams:
        """The preset's sampling parameters with the shared seed (-1: random)."""
        name = self.preset.currentText()
        params = BUILTIN_PRESETS.get(name, GenerationParams())
        if self._presets is not None:
            try:
                params = self._presets.get(name)
            except WorkbenchError:
                params = GenerationParams()
        seed = self.seed.value()
        return replace(params, seed=None if seed < 0 else seed)
