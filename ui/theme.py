"""Light and dark, following the operating system (or `LLM_WORKBENCH_THEME=light|dark`).

On macOS Qt's native style already follows the system appearance. Elsewhere the app uses
Fusion, whose default palette is light whatever the desktop says; so when the OS (Qt's
`QStyleHints.colorScheme()`, GNOME/KDE/Windows settings) asks for dark, a dark Fusion palette
is applied, and it switches again when the user changes the system setting while the app runs.
"""

from __future__ import annotations

import os
import sys

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

THEME_ENV = "LLM_WORKBENCH_THEME"
_FOLLOWING = "workbenchFollowsColorScheme"
_CHOICE = "workbenchThemeChoice"

_DARK: dict[QPalette.ColorRole, str] = {
    QPalette.ColorRole.Window: "#2b2b2d",
    QPalette.ColorRole.WindowText: "#e6e6e6",
    QPalette.ColorRole.Base: "#1f1f21",
    QPalette.ColorRole.AlternateBase: "#29292c",
    QPalette.ColorRole.ToolTipBase: "#3a3a3d",
    QPalette.ColorRole.ToolTipText: "#f0f0f0",
    QPalette.ColorRole.PlaceholderText: "#8d8d92",
    QPalette.ColorRole.Text: "#e6e6e6",
    QPalette.ColorRole.Button: "#333336",
    QPalette.ColorRole.ButtonText: "#e6e6e6",
    QPalette.ColorRole.BrightText: "#ff6b6b",
    QPalette.ColorRole.Link: "#6cb4ff",
    QPalette.ColorRole.Highlight: "#2f6fb3",
    QPalette.ColorRole.HighlightedText: "#ffffff",
}


def wants_dark(app: QGuiApplication) -> bool:
    """Whether to show the dark theme: the env override, else the user's choice in
    Preferences, else the system's color scheme."""
    forced = os.environ.get(THEME_ENV, "").strip().lower()
    if forced in ("dark", "light"):
        return forced == "dark"
    chosen = str(app.property(_CHOICE) or "system")
    if chosen in ("dark", "light"):
        return chosen == "dark"
    return bool(app.styleHints().colorScheme() == Qt.ColorScheme.Dark)


def set_theme_choice(app: QApplication, choice: str) -> bool:
    """Use "light", "dark" or "system" from now on (Preferences); returns whether dark."""
    app.setProperty(_CHOICE, choice)
    return apply_theme(app)


def dark_palette() -> QPalette:
    """The dark Fusion palette (disabled text dimmed)."""
    palette = QPalette()
    for role, colour in _DARK.items():
        palette.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText,
                 QPalette.ColorRole.WindowText):  # fmt: skip
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7a7a7f"))
    return palette


def apply_theme(app: QApplication) -> bool:
    """Apply light or dark now, and follow the system from here on; returns whether dark."""
    dark = _apply(app)
    if sys.platform != "darwin" and not app.property(_FOLLOWING):
        app.setProperty(_FOLLOWING, True)  # connect once, however often the app is set up
        app.styleHints().colorSchemeChanged.connect(lambda _scheme: _apply(app))
    return dark


def _apply(app: QApplication) -> bool:
    if sys.platform == "darwin":
        # The native style follows the appearance Qt is told: the system's, or the user's
        # choice (Qt 6.8+ can override the scheme per application).
        chosen = str(app.property(_CHOICE) or "system")
        scheme = {"dark": Qt.ColorScheme.Dark, "light": Qt.ColorScheme.Light}
        app.styleHints().setColorScheme(scheme.get(chosen, Qt.ColorScheme.Unknown))
        return wants_dark(app)
    dark = wants_dark(app)
    app.setPalette(dark_palette() if dark else app.style().standardPalette())
    return dark
