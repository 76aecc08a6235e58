"""The editor of one saved OpenAI-compatible endpoint: name, base URL, API key."""

from __future__ import annotations

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from app.endpoints import EndpointStore, SavedEndpoint
from app.errors import WorkbenchError
from app.secrets import KeyringUnavailable

KEYRING_NOTICE = "API keys cannot be stored on this system; the key is used for this session only."


class EndpointEditor(QDialog):
    """Adds an endpoint (`endpoint` None) or changes one, through the `EndpointStore`.

    The store's validation errors (empty or taken name, a URL that is not http(s), a settings
    file that cannot be written) show inline and keep the dialog open with what was typed.

    Signals:
        saved(object): the `SavedEndpoint` as saved.
        key_not_stored(str): the endpoint was saved, but its key is kept for this session only
            (no usable keyring); carries the store's explanation.
    """

    saved = Signal(object)
    key_not_stored = Signal(str)

    def __init__(
        self,
        store: EndpointStore,
        endpoint: SavedEndpoint | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._store = store
        self._endpoint = endpoint
        self.setWindowTitle("Edit endpoint" if endpoint else "Add endpoint")
        self.name_edit = QLineEdit(endpoint.name if endpoint else "", self)
        self.name_edit.setPlaceholderText("my vLLM box")
        self.url_edit = QLineEdit(endpoint.base_url if endpoint else "", self)
        self.url_edit.setPlaceholderText("http://gpu-box:8000/v1")
        self.key_edit = QLineEdit(self)
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_edit.setPlaceholderText(
            "unchanged" if endpoint and endpoint.has_key else "none (optional)"
        )
        self.remove_key = QCheckBox("Remove the saved key", self)
        self.remove_key.setVisible(bool(endpoint and endpoint.has_key))
        self.error_label = QLabel("", self)
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #b3541e")
        self.error_label.hide()
        form = QFormLayout()
        form.addRow("Name", self.name_edit)
        form.addRow("Base URL", self.url_edit)
        form.addRow("API key", self.key_edit)
        form.addRow("", self.remove_key)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.buttons.accepted.connect(self._on_buttons_accepted)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)

    def show_error(self, message: str) -> None:
        """Show `message` under the fields."""
        self.error_label.setText(message)
        self.error_label.show()

    @Slot()
    def _on_buttons_accepted(self) -> None:
        try:
            endpoint = self._save()
        except KeyringUnavailable as exc:
            # The endpoint itself is saved; only its key lives in memory for this session.
            name = self.name_edit.text().strip()
            self.key_not_stored.emit(exc.message)
            self.saved.emit(self._store.get(name))
            self.accept()
        except WorkbenchError as exc:
            self.show_error(exc.message)
        else:
            self.saved.emit(endpoint)
            self.accept()

    def _save(self) -> SavedEndpoint:
        name = self.name_edit.text()
        url = self.url_edit.text()
        key = self.key_edit.text()
        if self._endpoint is None:
            return self._store.add(name, url, key)
        api_key: str | None = key or None
        if self.remove_key.isChecked() and not key:
            api_key = ""
        new_name = name if name.strip() != self._endpoint.name else None
        return self._store.update(
            self._endpoint.name, new_name=new_name, base_url=url, api_key=api_key
        )
