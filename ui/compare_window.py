"""The Compare window: the Compare tab (`ui.compare_page`) and the Eval tab (`ui.eval_view`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QMainWindow, QTabWidget, QWidget

from app.compare import CompareService
from app.compare_plan import PaneNeed
from app.eval_store import EvalStore
from app.hardware import HardwareProfile
from app.model_session import SessionOpener
from app.presets import PresetStore
from app.store.database import Database
from runtimes.base import LoadOptions
from ui.compare_page import ComparePage
from ui.eval_view import EvalView, make_eval_tab


@dataclass(frozen=True)
class CompareServices:
    """What the Compare window needs from the composition root."""

    compare: CompareService
    opener: SessionOpener
    choices: Callable[[], list[tuple[str, str]]]
    hardware: Callable[[], HardwareProfile | None]
    pane_needs: Callable[[Sequence[tuple[str, LoadOptions | None]]], tuple[PaneNeed, ...]]
    eval_store: EvalStore | None = None
    presets: PresetStore | None = None
    database: Database | None = None


class CompareWindow(QMainWindow):
    """The Compare window: tabs "Compare" (panes) and "Eval" (eval sets across models).

    Open it from the toolbar, View ▸ Compare… (Ctrl+Shift+C), or "Compare with…" on a
    conversation (`start_from_conversation`).
    """

    def __init__(self, services: CompareServices, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Compare — LLM Workbench")
        self.services = services
        self.tabs = QTabWidget(self)
        self.compare = ComparePage(services, self.tabs)
        self.eval = make_eval_tab(services, self.tabs)
        self.tabs.addTab(self.compare, "Compare")
        self.tabs.addTab(self.eval, "Eval")
        self.setCentralWidget(self.tabs)
        self.resize(1280, 860)

    def start_from_conversation(self, title: str, messages: Sequence[object], choice: str) -> None:
        """Show the Compare tab, set up from a conversation (see `ComparePage`)."""
        self.tabs.setCurrentWidget(self.compare)
        self.compare.start_from_conversation(title, messages, choice)

    def refresh_choices(self) -> None:
        """Reload every pane's model list (models were added or removed)."""
        choices = self.services.choices()
        for pane in self.compare.panes:
            pane.set_choices(choices)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop a running turn and unload kept models before closing."""
        self.compare.shutdown()
        if isinstance(self.eval, EvalView):
            self.eval.cancel_run()
        super().closeEvent(event)
