"""The main window's other top-level windows: Runtimes, Models, This Machine (opened on
demand, raised when already open, waited for and closed with the main window)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal, Slot

from app.compare import CompareService
from app.compare_plan import PaneNeed, pane_needs
from app.errors import UserFacingError, WorkbenchError
from app.eval_store import EvalStore
from app.fit_service import fit_file
from app.fit_types import FitRequest, FitVerdict, Recommendation
from app.hardware import HardwareProfile
from app.measurements import MeasurementStore
from app.model_session import LocalSessionOpener
from app.presets import PresetStore
from app.recommend import recommend
from app.runtimes import RuntimeEntry, RuntimeRegistry
from app.speed import Calibration
from runtimes.base import LoadOptions
from ui.compare_window import CompareServices, CompareWindow
from ui.machine_page import FitFn, MachinePage, RecommendFn
from ui.models_window import ModelsWindow
from ui.runtimes_page import RuntimesPage

if TYPE_CHECKING:
    from ui.main_window import Services

log = logging.getLogger(__name__)


class SecondaryWindows(QObject):
    """Opens and owns the Runtimes, Models and This Machine windows.

    Signals:
        registry_changed(object): the Runtimes page rebuilt the `RuntimeRegistry`.
        server_runtime_available(): a server runtime answered (its models can be listed).
        models_changed(): the Models window added or removed models.

    Args:
        services: the app services.
        registry: returns the registry in effect now.
        hardware: returns the probed hardware profile (None until probed).
    """

    registry_changed = Signal(object)
    server_runtime_available = Signal()
    models_changed = Signal()

    def __init__(
        self,
        services: Services,
        registry: Callable[[], RuntimeRegistry],
        hardware: Callable[[], HardwareProfile | None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._services = services
        self._registry = registry
        self._hardware = hardware
        self.runtimes_page: RuntimesPage | None = None
        self.machine_page: MachinePage | None = None
        self.models_window: ModelsWindow | None = None
        self.compare_window: CompareWindow | None = None
        self.choices: Callable[[], list[tuple[str, str]]] = list
        """The picker's models as (label, choice); the main window sets it."""
        self.presets: PresetStore | None = None

    def show_runtimes(self) -> RuntimesPage:
        """Open (or raise) the Runtimes page and check every runtime."""
        if self.runtimes_page is None:
            self.runtimes_page = RuntimesPage(self._registry(), self._services.settings)
            self.runtimes_page.resize(760, 640)
            self.runtimes_page.status_changed.connect(self._on_runtimes_page_status_changed)
            self.runtimes_page.registry_changed.connect(self.registry_changed)
        self.runtimes_page.show()
        self.runtimes_page.raise_()
        self.runtimes_page.check_all()
        return self.runtimes_page

    def show_models(self) -> ModelsWindow:
        """Open (or raise) the Models window: library, discover, downloads."""
        if self.models_window is None:
            services = self._services
            self.models_window = ModelsWindow(
                services.paths,
                services.library,
                services.settings,
                self._hardware,
                last_used=self.last_used,
            )
            self.models_window.resize(1100, 720)
            self.models_window.models_changed.connect(self.models_changed)
        self.models_window.show()
        self.models_window.raise_()
        return self.models_window

    def show_machine(self) -> MachinePage:
        """Open (or raise) the This Machine page; it shows "Probing hardware…" until the
        probe is done."""
        if self.machine_page is None:
            profile = self._hardware()
            fns = self.estimators(profile) if profile is not None else (None, None)
            self.machine_page = MachinePage(profile, *fns)
            self.machine_page.resize(1120, 820)
        self.machine_page.show()
        self.machine_page.raise_()
        return self.machine_page

    def show_compare(self) -> CompareWindow:
        """Open (or raise) the Compare window (side-by-side panes and the Eval tab)."""
        if self.compare_window is None:
            self.compare_window = CompareWindow(self.compare_services())
        else:
            self.compare_window.refresh_choices()
        self.compare_window.show()
        self.compare_window.raise_()
        return self.compare_window

    def compare_services(self) -> CompareServices:
        """What the Compare window needs, bound to this app's database, runtimes and models."""
        services = self._services
        database = services.database
        if database is None:
            raise UserFacingError("Comparisons need the history database, which is not open.")
        library = services.library
        hardware = self._hardware

        def needs(
            choices: Sequence[tuple[str, LoadOptions | None]],
        ) -> tuple[PaneNeed, ...]:
            return pane_needs(choices, hardware(), library)

        return CompareServices(
            compare=CompareService(database),
            opener=LocalSessionOpener(self._registry(), library, hardware()),
            choices=self.choices,
            hardware=hardware,
            pane_needs=needs,
            eval_store=EvalStore(database),
            presets=self.presets,
            database=database,
        )

    def hardware_probed(self, profile: HardwareProfile) -> None:
        """Give an open This Machine page the probed profile."""
        if self.machine_page is not None:
            self.machine_page.set_profile(profile, *self.estimators(profile))

    def estimators(self, profile: HardwareProfile) -> tuple[RecommendFn, FitFn]:
        """The estimators bound to `profile`, the local files and this machine's runs."""
        local = {m.path.name: str(m.path) for m in self._services.library.scan()}
        return bind_estimators(profile, local, self.calibration())

    def last_used(self) -> dict[str, datetime]:
        """When each model file was last loaded (from the load measurements)."""
        if self._services.database is None:
            return {}
        return MeasurementStore(self._services.database).last_used()

    def calibration(self) -> Calibration | None:
        """This machine's measured runs (for measured / calibrated speeds), if readable."""
        if self._services.database is None:
            return None
        try:
            return MeasurementStore(self._services.database).calibration()
        except WorkbenchError as exc:
            log.warning("measured runs not read: %s", exc)
            return None

    def close_all(self) -> None:
        """Wait for their workers, then close them (the main window is closing)."""
        if self.compare_window is not None:
            self.compare_window.close()
        if self.runtimes_page is not None:
            self.runtimes_page.wait_for_checks()
            self.runtimes_page.close()
        if self.machine_page is not None:
            self.machine_page.wait_for_workers()
            self.machine_page.close()
        if self.models_window is not None:
            self.models_window.wait_for_workers()
            self.models_window.close()

    @Slot(object)
    def _on_runtimes_page_status_changed(self, entry: RuntimeEntry) -> None:
        if entry.kind != "llamacpp" and entry.status.state == "available":
            self.server_runtime_available.emit()


def bind_estimators(
    profile: HardwareProfile, local_files: dict[str, str], calibration: Calibration | None
) -> tuple[RecommendFn, FitFn]:
    """The recommendation and file-fit estimators bound to one probed profile, the model
    files already here (file name -> path) and this machine's measured runs."""

    def recommend_here(request: FitRequest) -> tuple[Recommendation, ...]:
        return recommend(profile, request, local_files=local_files, calibration=calibration)

    def fit_here(path: str, request: FitRequest) -> FitVerdict:
        return fit_file(path, profile, request, calibration=calibration)

    return recommend_here, fit_here
