"""The main window: toolbar with the model picker, conversations, chat, hardware status bar."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QSplitter,
    QToolBar,
)

from app.chat import ConversationService
from app.conversation_settings import ConversationSettings
from app.engine import DEFAULT_CONTEXT, ModelHost
from app.errors import LoadCancelled, UserFacingError, WorkbenchError
from app.fit_service import fit_file
from app.fit_types import FitRequest, FitVerdict, Recommendation
from app.gguf import read_model_metadata
from app.hardware import HardwareProfile, summary_line
from app.history_search import search_history
from app.library import ModelLibrary
from app.measurements import MeasurementStore
from app.model_options import ModelOptionsStore
from app.paths import AppPaths
from app.presets import PresetStore
from app.recommend import recommend
from app.runtimes import RuntimeEntry, RuntimeRegistry
from app.settings import Settings
from app.speed import Calibration
from app.store import Database
from runtimes.base import RemoteModel
from ui.about_dialog import AboutDialog, open_folder
from ui.chat_controller import ChatController
from ui.chat_settings_panel import ChatSettingsPanel, new_chat_settings
from ui.chat_view import ChatView
from ui.conversation_list import ConversationList
from ui.conversation_transfer import ConversationTransfer
from ui.history_actions import HistoryActions
from ui.machine_page import FitFn, MachinePage, RecommendFn
from ui.main_menus import build_menus
from ui.message_actions import MessageActions
from ui.model_controller import ModelController
from ui.model_picker import ModelPicker
from ui.models_window import ModelsWindow
from ui.preferences_dialog import PreferencesDialog
from ui.resource_strip import ResourceStrip
from ui.runtimes_page import RuntimesPage
from ui.workers import (
    FitWorker,
    HardwareWorker,
    ServerModelsWorker,
    WorkerThread,
    start_worker,
    wait_all,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Services:
    """What the window needs from the app floor, built by the composition root."""

    paths: AppPaths
    conversations: ConversationService
    settings: Settings
    library: ModelLibrary
    host: ModelHost
    log_file: Path
    registry: RuntimeRegistry
    database: Database | None = None


class MainWindow(QMainWindow):
    """Conversations on the left, the chat in the middle, the machine in the status bar."""

    # Menu actions, made by `ui.main_menus.build_menus`.
    new_action: QAction
    open_action: QAction
    export_action: QAction
    import_action: QAction
    preferences_action: QAction
    stop_action: QAction
    regenerate_action: QAction
    continue_action: QAction
    edit_last_action: QAction
    copy_reply_action: QAction
    load_options_action: QAction
    settings_panel_action: QAction
    runtimes_action: QAction
    machine_action: QAction
    models_action: QAction
    about_action: QAction
    open_logs_action: QAction

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.registry: RuntimeRegistry = services.registry
        self.setWindowTitle("LLM Workbench")
        self.setAcceptDrops(True)  # drop .gguf files to open them
        self.resize(1180, 760)
        self.picker = ModelPicker(self)
        self.conversation_list = ConversationList(self)
        if services.database is not None:
            self.conversation_list.set_search(partial(search_history, services.database))
        self.chat_view = ChatView(self)
        options = ModelOptionsStore(services.database) if services.database is not None else None
        self.models = ModelController(
            services.host, self.picker, services.library, self, services.registry, options
        )
        presets = PresetStore(services.database) if services.database is not None else None
        self.presets = presets
        self.settings_panel = ChatSettingsPanel(presets, self)
        self.chat = ChatController(
            services.conversations,
            self.chat_view,
            self.models,
            str(services.log_file),
            self,
            panel=self.settings_panel,
        )
        self.chat.new_chat_settings = self._new_chat_settings
        self.message_actions = MessageActions(self.chat, self)
        self.history = HistoryActions(
            services.conversations, self.conversation_list, self.chat, self.refresh_conversations
        )
        self.models.reply_running = lambda: self.chat.busy
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(self.conversation_list)
        self.splitter.addWidget(self.chat_view)
        self.splitter.addWidget(self.settings_panel)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setCollapsible(1, False)
        self.splitter.setSizes([230, 640, 310])
        self.setCentralWidget(self.splitter)
        self.hardware_label = QLabel("Probing hardware…", self)
        self.speed_label = QLabel("", self)
        self.resources = ResourceStrip(self._model_pids, parent=self)
        self.statusBar().addWidget(self.hardware_label, 1)
        self.statusBar().addPermanentWidget(self.resources)
        self.statusBar().addPermanentWidget(self.speed_label)
        self.hardware: HardwareProfile | None = None
        self._hardware_probe: WorkerThread | None = None
        self.runtimes_page: RuntimesPage | None = None
        self.machine_page: MachinePage | None = None
        self.models_window: ModelsWindow | None = None
        self._discovery: list[WorkerThread] = []
        self._fit_checks: list[WorkerThread] = []
        self._build_toolbar()
        self._build_menus()
        self._connect()
        self.refresh_models()
        self._restore_state()
        if self.chat.conversation_id is None:
            self.settings_panel.set_settings(self._new_chat_settings())
        self.update_chat_actions()

    # ------------------------------------------------------------------ build

    def _build_toolbar(self) -> None:
        toolbar = QToolBar("Model", self)
        toolbar.setObjectName("model_toolbar")
        toolbar.setMovable(False)
        toolbar.addWidget(self.picker)
        self.addToolBar(toolbar)

    def _build_menus(self) -> None:
        self.transfer = ConversationTransfer(self)
        build_menus(self)

    def _connect(self) -> None:
        cl = self.conversation_list
        cl.new_requested.connect(self._on_new_action_triggered)
        cl.conversation_selected.connect(self._on_conversation_list_conversation_selected)
        self.picker.model_chosen.connect(self._on_picker_model_chosen)
        self.picker.open_file_requested.connect(self._on_open_action_triggered)
        self.picker.load_requested.connect(self._on_picker_load_requested)
        self.picker.unload_requested.connect(self.models.unload)
        self.models.load_failed.connect(self._on_models_load_failed)
        self.chat.conversations_changed.connect(self.refresh_conversations)
        self.chat.conversations_changed.connect(self.update_chat_actions)
        self.chat.reply_finished.connect(self.update_chat_actions)
        self.chat.speed_measured.connect(self.speed_label.setText)

    # ---------------------------------------------------------------- public

    def start_hardware_probe(self) -> None:
        """Probe the hardware on a worker thread; the status bar fills in when done."""
        worker = HardwareWorker(self.services.paths.models_dir)

        def connect() -> None:
            worker.probed.connect(self._on_hardware_probed)

        self._hardware_probe = start_worker(worker, connect, self)

    def start_server_discovery(self) -> None:
        """Ask Ollama and the saved endpoints for their models, each on a worker thread."""
        for key in self.registry.runtime_keys():
            if key == "llamacpp":
                continue
            worker = ServerModelsWorker(self.registry, key)

            def connect(w: ServerModelsWorker = worker) -> None:
                w.listed.connect(self._on_server_models_listed)
                w.unavailable.connect(self._on_server_models_unavailable)

            self._discovery = [d for d in self._discovery if d.running()]
            self._discovery.append(start_worker(worker, connect, self))

    @Slot(str, str, object)
    def _on_server_models_listed(self, key: str, label: str, models: list[RemoteModel]) -> None:
        self.picker.set_server_models(key, label, models)

    @Slot(str, str)
    def _on_server_models_unavailable(self, key: str, reason: str) -> None:
        log.info("no models from %s: %s", key, reason)
        self.picker.set_server_models(key, key, [])

    def _model_pids(self) -> list[int]:
        """Worker processes of the models loaded here (their memory shows in the strip)."""
        pids = []
        for host in self.models.hosts.values():
            for entry in host.loaded():
                pid = getattr(entry.model, "pid", None)
                if isinstance(pid, int):
                    pids.append(pid)
        return pids

    def start_fit_check(self) -> None:
        """Judge the local models for this machine on a worker thread (llama.cpp dry runs);
        the picker shows each one's fit badge when done. Needs the hardware probe."""
        if self.hardware is None:
            return
        paths = [str(m.path) for m in self.services.library.scan() if not m.problem]
        worker = FitWorker(paths, self.hardware, DEFAULT_CONTEXT)

        def connect() -> None:
            worker.fitted.connect(self._on_fit_worker_fitted)

        self._fit_checks = [t for t in self._fit_checks if t.running()]
        self._fit_checks.append(start_worker(worker, connect, self))

    @Slot(object)
    def _on_fit_worker_fitted(self, verdicts: dict[str, FitVerdict]) -> None:
        self.picker.set_fits(verdicts)

    def refresh_models(self) -> None:
        """Rescan the local models and refill the picker."""
        models = self.services.library.scan()
        self.models.set_models(models)
        self.picker.set_models(models, self.services.settings.selected_model_path)
        if not models:
            self.chat_view.banner.show_message(
                "No local models yet. Run ./workbench.sh to install the demo model, "
                "or open a .gguf file (File ▸ Open GGUF File…)."
            )
        self.start_fit_check()

    @Slot()
    def refresh_conversations(self) -> None:
        """Reload the conversation list, keeping the open one selected."""
        convs = self.services.conversations.list_conversations()
        self.conversation_list.set_conversations(convs, self.chat.conversation_id)
        self._update_export_action()

    def _update_export_action(self) -> None:
        self.transfer.update_actions()

    @Slot()
    def _on_file_menu_about_to_show(self) -> None:
        self._update_export_action()

    def open_model_file(self, path: Path) -> None:
        """Add a .gguf file to the library (after a header check) and select it."""
        try:
            read_model_metadata(path)
        except UserFacingError as exc:
            self.chat_view.banner.show_error(exc)
            return
        opened = self.services.settings.opened_model_files
        if str(path) not in opened:
            self.services.settings.opened_model_files = [*opened, str(path)]
        self.services.library.add_file(path)
        self.services.settings.selected_model_path = str(path)
        self._save_settings()
        self.refresh_models()

    @staticmethod
    def dropped_models(event: QDragEnterEvent | QDropEvent) -> list[Path]:
        """The local .gguf files a drag carries (other files and URLs are not models)."""
        mime = event.mimeData()
        if not mime.hasUrls():
            return []
        return [
            Path(url.toLocalFile())
            for url in mime.urls()
            if url.isLocalFile() and url.toLocalFile().lower().endswith(".gguf")
        ]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        """Accept a drag that carries .gguf files."""
        if self.dropped_models(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        """Open each dropped .gguf file (checked like File ▸ Open; the last one is chosen)."""
        paths = self.dropped_models(event)
        for path in paths:
            self.open_model_file(path)
        if paths:
            event.acceptProposedAction()

    def _save_settings(self) -> None:
        try:
            self.services.settings.save()
        except WorkbenchError as exc:
            self.chat_view.banner.show_error(exc)

    # ----------------------------------------------------------------- slots

    @Slot()
    def _on_new_action_triggered(self) -> None:
        if self.chat.busy:
            return
        path = self.picker.selected_path()
        name = self.picker.model_name() if path else ""
        try:
            self.chat.new_conversation(path, name)
        except WorkbenchError as exc:  # database locked, disk full
            self.chat_view.banner.show_error(exc)
            return
        self.chat_view.input.setFocus()

    @Slot()
    def _on_open_action_triggered(self) -> None:
        start = str(self.services.paths.models_dir)
        filename, _ = QFileDialog.getOpenFileName(
            self, "Open a GGUF model", start, "GGUF models (*.gguf);;All files (*)"
        )
        if filename:
            self.open_model_file(Path(filename))
        else:
            self.picker.select_path(self.services.settings.selected_model_path)

    @Slot(int)
    def _on_conversation_list_conversation_selected(self, conversation_id: int) -> None:
        if self.chat.busy:
            self.refresh_conversations()
            return
        self.chat.open_conversation(conversation_id)
        self._update_export_action()
        self.update_chat_actions()
        conv = self.services.conversations.get(conversation_id)
        if conv.model_path:
            self.picker.select_path(conv.model_path)

    @Slot(str)
    def _on_picker_model_chosen(self, path: str) -> None:
        self.services.settings.selected_model_path = path
        self._save_settings()

    @Slot()
    def _on_picker_load_requested(self) -> None:
        path = self.picker.selected_path()
        if path:
            self.models.load(path)

    @Slot(object)
    def _on_models_load_failed(self, error: BaseException) -> None:
        if not self.chat.busy and not isinstance(error, LoadCancelled):
            self.chat_view.banner.show_error(error, str(self.services.log_file))

    @Slot(object)
    def _on_hardware_probed(self, profile: HardwareProfile) -> None:
        self.hardware = profile
        self.models.hardware = profile
        self.hardware_label.setText(summary_line(profile))
        self.resources.apple = profile.apple is not None
        if self.machine_page is not None:
            self.machine_page.set_profile(profile, *self._estimators(profile))
        self.start_fit_check()

    @Slot()
    def _on_runtimes_action_triggered(self) -> None:
        self.show_runtimes()

    def show_runtimes(self) -> RuntimesPage:
        """Open (or raise) the Runtimes page and check every runtime."""
        if self.runtimes_page is None:
            self.runtimes_page = RuntimesPage(self.registry, self.services.settings)
            self.runtimes_page.resize(760, 640)
            self.runtimes_page.status_changed.connect(self._on_runtimes_page_status_changed)
            self.runtimes_page.registry_changed.connect(self._on_runtimes_page_registry_changed)
        self.runtimes_page.show()
        self.runtimes_page.raise_()
        self.runtimes_page.check_all()
        return self.runtimes_page

    @Slot()
    def _on_models_action_triggered(self) -> None:
        self.show_models()

    def show_models(self) -> ModelsWindow:
        """Open (or raise) the Models window: library, discover, downloads."""
        if self.models_window is None:
            self.models_window = ModelsWindow(
                self.services.paths,
                self.services.library,
                self.services.settings,
                lambda: self.hardware,
                last_used=self._last_used,
            )
            self.models_window.resize(1100, 720)
            self.models_window.models_changed.connect(self.refresh_models)
        self.models_window.show()
        self.models_window.raise_()
        return self.models_window

    @Slot()
    def _on_machine_action_triggered(self) -> None:
        self.show_machine()

    def show_machine(self) -> MachinePage:
        """Open (or raise) the This Machine page; it shows "Probing hardware…" until the
        probe is done."""
        if self.machine_page is None:
            fns = self._estimators(self.hardware) if self.hardware is not None else (None, None)
            self.machine_page = MachinePage(self.hardware, *fns)
            self.machine_page.resize(1120, 820)
        self.machine_page.show()
        self.machine_page.raise_()
        return self.machine_page

    def _estimators(self, profile: HardwareProfile) -> tuple[RecommendFn, FitFn]:
        local = {m.path.name: str(m.path) for m in self.services.library.scan()}
        return _estimators(profile, local, self._calibration())

    def _last_used(self) -> dict[str, datetime]:
        """When each model file was last loaded (from the load measurements)."""
        if self.services.database is None:
            return {}
        return MeasurementStore(self.services.database).last_used()

    def _calibration(self) -> Calibration | None:
        """This machine's measured runs (for measured / calibrated speeds), if readable."""
        if self.services.database is None:
            return None
        try:
            return MeasurementStore(self.services.database).calibration()
        except WorkbenchError as exc:
            log.warning("measured runs not read: %s", exc)
            return None

    @Slot(object)
    def _on_runtimes_page_registry_changed(self, registry: RuntimeRegistry) -> None:
        # Services is frozen: the window's current registry lives here from now on.
        self.registry = registry
        self.models.set_registry(registry)
        # Endpoints may be gone or renamed: forget their models, then ask again.
        self.picker.clear_server_models()
        self.start_server_discovery()

    @Slot(object)
    def _on_runtimes_page_status_changed(self, entry: RuntimeEntry) -> None:
        if entry.kind != "llamacpp" and entry.status.state == "available":
            self.start_server_discovery()

    @Slot()
    def _on_about_triggered(self) -> None:
        self.show_about()

    def show_about(self) -> AboutDialog:
        """Open the About dialog (versions and paths)."""
        dialog = AboutDialog(self.services.paths, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    @Slot()
    def _on_open_logs_action_triggered(self) -> None:
        open_folder(self.services.paths.log_dir)

    @Slot()
    def _on_preferences_action_triggered(self) -> None:
        self.show_preferences()

    def show_preferences(self) -> PreferencesDialog:
        """Open Preferences (window-modal; OK saves and applies)."""
        dialog = PreferencesDialog(self.services.settings, self.presets, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.show()
        return dialog

    def _new_chat_settings(self) -> ConversationSettings:
        settings = self.services.settings
        return new_chat_settings(
            self.presets, settings.default_preset, settings.default_system_prompt
        )

    @Slot()
    def update_chat_actions(self) -> None:
        """Enable the Chat menu's actions that apply now (also their shortcuts)."""
        actions = self.message_actions
        idle = not self.chat.busy and self.chat.conversation_id is not None
        has_reply = actions.last("assistant") is not None
        self.regenerate_action.setEnabled(idle and has_reply)
        self.continue_action.setEnabled(idle and actions.can_continue())
        self.edit_last_action.setEnabled(idle and actions.last("user") is not None)
        self.copy_reply_action.setEnabled(has_reply)

    @Slot(bool)
    def _on_settings_panel_action_toggled(self, shown: bool) -> None:
        self.settings_panel.setVisible(shown)

    # ------------------------------------------------------- state and close

    def _restore_state(self) -> None:
        settings = self.services.settings
        if settings.window_geometry:
            self.restoreGeometry(QByteArray(settings.window_geometry))
        if settings.splitter_state:
            self.splitter.restoreState(QByteArray(settings.splitter_state))
        self.settings_panel_action.setChecked(settings.chat_settings_visible)
        self.settings_panel.setVisible(settings.chat_settings_visible)
        last = settings.last_conversation_id
        ids = [c.id for c in self.services.conversations.list_conversations()]
        if last in ids:
            assert last is not None
            self.chat.conversation_id = last
            self.chat.open_conversation(last)
            conv = self.services.conversations.get(last)
            if conv.model_path:
                self.picker.select_path(conv.model_path)
        self.refresh_conversations()

    def save_state(self) -> None:
        """Store geometry, splitter and the open conversation in the settings file."""
        settings = self.services.settings
        settings.window_geometry = bytes(self.saveGeometry().data())
        settings.splitter_state = bytes(self.splitter.saveState().data())
        settings.last_conversation_id = self.chat.conversation_id
        settings.chat_settings_visible = self.settings_panel.isVisibleTo(self)
        settings.selected_model_path = self.picker.selected_path()
        settings.save()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Save state, stop the reply, end the model's worker process: all of it, always."""
        try:
            self.save_state()
        except WorkbenchError as exc:
            log.warning("window state not saved: %s", exc)
        finally:
            self.chat.shutdown()
            self.conversation_list.expire_undo()  # a pending Undo ends with the window
            self.history.purge_deleted()
            self.models.shutdown()
            # With the worker process gone, a generation still waiting on it ends at once.
            if not self.chat.wait_for_generation(10_000):
                log.error("the generation thread did not end after its worker was stopped")
            if self._hardware_probe is not None and not self._hardware_probe.wait(8000):
                log.error("the hardware probe did not end in time")
            wait_all(self._discovery, 5000)
            wait_all(self._fit_checks, 10_000)
            if self.runtimes_page is not None:
                self.runtimes_page.wait_for_checks()
                self.runtimes_page.close()
            if self.machine_page is not None:
                self.machine_page.wait_for_workers()
                self.machine_page.close()
            if self.models_window is not None:
                self.models_window.wait_for_workers()
                self.models_window.close()
        super().closeEvent(event)


def _estimators(
    profile: HardwareProfile, local_files: dict[str, str], calibration: Calibration | None
) -> tuple[RecommendFn, FitFn]:
    """The recommendation and file-fit estimators bound to one probed profile, the model
    files already here (file name -> path) and this machine's measured runs."""

    def recommend_here(request: FitRequest) -> tuple[Recommendation, ...]:
        return recommend(profile, request, local_files=local_files, calibration=calibration)

    def fit_here(path: str, request: FitRequest) -> FitVerdict:
        return fit_file(path, profile, request, calibration=calibration)

    return recommend_here, fit_here
