"""Light and dark: the system's color scheme or LLM_WORKBENCH_THEME picks the palette."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

from ui.theme import THEME_ENV, apply_theme, wants_dark


@pytest.fixture()
def app(qapp: QApplication, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    yield qapp
    monkeypatch.setenv(THEME_ENV, "light")
    apply_theme(qapp)  # leave the light palette for the other tests


def test_dark_applies_a_dark_palette(app: QApplication, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(THEME_ENV, "dark")
    assert wants_dark(app)
    assert apply_theme(app) is True
    window = app.palette().color(QPalette.ColorRole.Window)
    text = app.palette().color(QPalette.ColorRole.WindowText)
    assert window.name() == "#2b2b2d"
    assert window.lightness() < 60 < 200 < text.lightness()


def test_light_uses_the_styles_own_palette(
    app: QApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(THEME_ENV, "light")
    assert apply_theme(app) is False
    assert app.palette().color(QPalette.ColorRole.Window).lightness() > 200
    assert app.palette().color(QPalette.ColorRole.Window) == (
        app.style().standardPalette().color(QPalette.ColorRole.Window)
    )


def test_without_the_override_the_system_scheme_decides(
    app: QApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(THEME_ENV, raising=False)
    from PySide6.QtCore import Qt

    assert wants_dark(app) is (app.styleHints().colorScheme() == Qt.ColorScheme.Dark)
