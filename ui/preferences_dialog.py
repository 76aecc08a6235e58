"""Preferences (Cmd+, / Ctrl+,): appearance, what a new chat starts with, the Hugging Face token."""

from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.errors import WorkbenchError
from app.presets import BUILTIN_PRESETS, PresetStore
from app.secrets import store_hf_token
from app.settings import Settings
from ui.theme import set_theme_choice

_THEME_LABELS = (("system", "Follow the system"), ("light", "Light"), ("dark", "Dark"))


class PreferencesDialog(QDialog):
    """Edits the app-wide settings; OK saves them (and applies the theme at once)."""

    def __init__(
        self, settings: Settings, presets: PresetStore | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.setObjectName("preferences_dialog")
        self._settings = settings
        self.theme = QComboBox(self)
        for key, label in _THEME_LABELS:
            self.theme.addItem(label, key)
        self.theme.setCurrentIndex(max(self.theme.findData(settings.theme), 0))
        self.preset = QComboBox(self)
        self.preset.addItems(presets.names() if presets is not None else list(BUILTIN_PRESETS))
        self.preset.setCurrentIndex(max(self.preset.findText(settings.default_preset), 0))
        self.system_prompt = QPlainTextEdit(settings.default_system_prompt, self)
        self.system_prompt.setPlaceholderText("none")
        self.system_prompt.setFixedHeight(80)
        self.hf_token = QLineEdit(self)
        self.hf_token.setEchoMode(QLineEdit.EchoMode.Password)
        self.hf_token.setPlaceholderText("unchanged (a token typed here goes to the keyring)")
        self.message = QLabel("", self)
        self.message.setWordWrap(True)
        self.message.setObjectName("preferences_message")
        self._build_layout()

    def _build_layout(self) -> None:
        look = QGroupBox("Appearance", self)
        look_form = QFormLayout(look)
        look_form.addRow("Theme", self.theme)
        chats = QGroupBox("New chats", self)
        chats_form = QFormLayout(chats)
        chats_form.addRow("Sampling preset", self.preset)
        chats_form.addRow("System prompt", self.system_prompt)
        hub = QGroupBox("Hugging Face", self)
        hub_form = QFormLayout(hub)
        hub_form.addRow("Access token", self.hf_token)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self._on_buttons_accepted)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for box in (look, chats, hub):
            layout.addWidget(box)
        layout.addWidget(self.message)
        layout.addWidget(buttons)

    def apply(self) -> bool:
        """Store and save what the dialog shows; False (with the reason shown) on failure."""
        settings = self._settings
        settings.theme = str(self.theme.currentData())
        settings.default_preset = self.preset.currentText()
        settings.default_system_prompt = self.system_prompt.toPlainText()
        try:
            token = self.hf_token.text().strip()
            if token:
                store_hf_token(token)
            settings.save()
        except WorkbenchError as exc:
            self.message.setText(exc.message)
            return False
        app = QApplication.instance()
        if isinstance(app, QApplication):
            set_theme_choice(app, settings.theme)
        return True

    @Slot()
    def _on_buttons_accepted(self) -> None:
        if self.apply():
            self.accept()
