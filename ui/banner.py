"""An in-window banner for errors and warnings: one sentence, details behind a button."""

from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.errors import WorkbenchError


class Banner(QFrame):
    """Shows what happened and what to do, without a modal dialog; hidden when empty."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        self.details = QLabel(self)
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(self.details.textInteractionFlags())
        self.details.hide()
        self.details_button = QPushButton("Show details", self)
        self.details_button.clicked.connect(self._on_details_button_clicked)
        self.close_button = QPushButton("Dismiss", self)
        self.close_button.clicked.connect(self.clear)
        row = QHBoxLayout()
        row.addWidget(self.message, 1)
        row.addWidget(self.details_button)
        row.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addLayout(row)
        layout.addWidget(self.details)
        self.hide()

    def show_error(self, error: BaseException, log_path: str = "") -> None:
        """Show an error: a workbench error as written, anything else as a bug with the log."""
        if isinstance(error, WorkbenchError):
            text, details = error.message, error.details
        else:
            text = "Something went wrong inside the workbench (a bug)."
            if log_path:
                text += f" The log has the details: {log_path}"
            details = f"{type(error).__name__}: {error}"
        self.show_message(text, details, warning=True)

    def show_message(self, text: str, details: str = "", warning: bool = False) -> None:
        """Show `text`; `details` go behind "Show details"."""
        self.message.setText(text)
        self.details.setText(details)
        self.details.hide()
        self.details_button.setVisible(bool(details))
        self.details_button.setText("Show details")
        colour = "#f6d7c3" if warning else "#d6e6f5"
        self.setStyleSheet(
            f"#banner {{ background: {colour}; border-radius: 4px; }}"
            "#banner QLabel { color: #222; }"
        )
        self.show()

    @Slot()
    def clear(self) -> None:
        """Hide the banner."""
        self.message.clear()
        self.details.clear()
        self.hide()

    @Slot()
    def _on_details_button_clicked(self) -> None:
        shown = not self.details.isVisible()
        self.details.setVisible(shown)
        self.details_button.setText("Hide details" if shown else "Show details")
