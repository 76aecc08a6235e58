"""The main window: toolbar with the model picker, conversations, chat, hardware status bar."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QPushButton,
    QSplitter,
    QToolBar,
)

from app.chat import ConversationService
from app.conversation_settings import ConversationSettings
from app.engine import DEFAULT_CONTEXT, ModelHost
from app.errors import LoadCancelled, UserFacingError, WorkbenchError
from app.fit_types import FitVerdict
from app.gguf import read_model_metadata
from app.hardware import HardwareProfile, summary_line
from app.history_search import search_history
from app.library import ModelLibrary
from app.model_options import ModelOptionsStore
from app.paths import AppPaths
from app.presets import PresetStore
from app.runtimes import RuntimeRegistry
from app.settings import Settings
from app.store import Database
from runtimes.base import ChatMessage, RemoteModel
from ui.about_dialog import AboutDialog, open_folder
from ui.chat_controller import ChatController
from ui.chat_settings_panel import ChatSettingsPanel, new_chat_settings
from ui.chat_view import ChatView
from ui.compare_window import CompareWindow
from ui.conversation_list import ConversationList
from ui.conversation_transfer import ConversationTransfer
from ui.history_actions import HistoryActions
from ui.machine_page import MachinePage
from ui.main_menus import build_menus
from ui.message_actions import MessageActions
from ui.model_controller import ModelController
from ui.model_picker import ModelPicker
from ui.models_window import ModelsWindow
from ui.preferences_dialog import PreferencesDialog
from ui.resource_strip import ResourceStrip
from ui.runtimes_page import RuntimesPage
from ui.secondary_windows import SecondaryWindows
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
    compare_action: QAction
    compare_chat_action: QAction
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
        self._build_central()
        self._build_status_bar()
        self.hardware: HardwareProfile | None = None
        self._hardware_probe: WorkerThread | None = None
        self.windows = SecondaryWindows(
            services, lambda: self.registry, lambda: self.hardware, self
        )
        self.windows.registry_changed.connect(self._on_windows_registry_changed)
        self.windows.server_runtime_available.connect(self.start_server_discovery)
        self.windows.models_changed.connect(self.refresh_models)
        self.windows.choices = self.picker.choices
        self.windows.presets = self.presets
        self._discovery: list[WorkerThread] = []
        self._fit_checks: list[WorkerThread] = []
        self._build_toolbar()
        self._build_menus()
        self._connect()
        self.refresh_models()
        self._restore_state()
        if self.chat.conversation_id is None:
            self.settings_panel.set_settings(self._new_chat_settings())
            self.chat_view.show_messages([])  # the empty state says what to do
            self.chat.update_meter()
        self.update_chat_actions()

    # ------------------------------------------------------------------ build

    def _build_central(self) -> None:
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(self.conversation_list)
        self.splitter.addWidget(self.chat_view)
        self.splitter.addWidget(self.settings_panel)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setCollapsible(1, False)
        self.splitter.setSizes([230, 640, 310])
        self.setCentralWidget(self.splitter)

    def _build_status_bar(self) -> None:
        self.hardware_label = QLabel("Probing hardware…", self)
        self.speed_label = QLabel("", self)
        self.resources = ResourceStrip(self._model_pids, parent=self)
        self.statusBar().addWidget(self.hardware_label, 1)
        self.statusBar().addPermanentWidget(self.resources)
        self.statusBar().addPermanentWidget(self.speed_label)

    def _build_toolbar(self) -> None:
        toolbar = QToolBar("Model", self)
        toolbar.setObjectName("model_toolbar")
        toolbar.setMovable(False)
        toolbar.addWidget(self.picker)
        self.compare_button = QPushButton("Compare", self)
        self.compare_button.setObjectName("compare_button")
        self.compare_button.setToolTip(
            "Compare models and quantizations side by side, and run eval sets (Ctrl+Shift+C)"
        )
        self.compare_button.clicked.connect(self._on_compare_action_triggered)
        toolbar.addWidget(self.compare_button)
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
        self.windows.hardware_probed(profile)
        self.start_fit_check()

    @Slot()
    def _on_runtimes_action_triggered(self) -> None:
        self.show_runtimes()

    def show_runtimes(self) -> RuntimesPage:
        """Open (or raise) the Runtimes page and check every runtime."""
        return self.windows.show_runtimes()

    @Slot()
    def _on_models_action_triggered(self) -> None:
        self.show_models()

    def show_models(self) -> ModelsWindow:
        """Open (or raise) the Models window: library, discover, downloads."""
        return self.windows.show_models()

    @Slot()
    def _on_machine_action_triggered(self) -> None:
        self.show_machine()

    def show_machine(self) -> MachinePage:
        """Open (or raise) the This Machine page."""
        return self.windows.show_machine()

    @Slot()
    def _on_compare_action_triggered(self) -> None:
        self.show_compare()

    def show_compare(self) -> CompareWindow | None:
        """Open (or raise) the Compare window."""
        try:
            return self.windows.show_compare()
        except WorkbenchError as exc:
            self.chat_view.banner.show_error(exc)
            return None

    @Slot()
    def _on_compare_chat_action_triggered(self) -> None:
        self.compare_conversation()

    def compare_conversation(self) -> CompareWindow | None:
        """Chat ▸ Compare This Chat With…: the Compare window set up from the open chat (its
        messages so far, its model in the first pane)."""
        window = self.show_compare()
        conversation_id = self.chat.conversation_id
        if window is None or conversation_id is None:
            return window
        try:
            title = self.services.conversations.get(conversation_id).title
            messages: list[object] = list(self.services.conversations.messages(conversation_id))
        except WorkbenchError as exc:
            self.chat_view.banner.show_error(exc)
            return window
        system = self.settings_panel.settings().system_prompt
        if system:
            messages.insert(0, ChatMessage("system", system))
        window.start_from_conversation(title, messages, self.picker.selected_path())
        return window

    @property
    def machine_page(self) -> MachinePage | None:
        """The This Machine page, once opened."""
        return self.windows.machine_page

    @Slot(object)
    def _on_windows_registry_changed(self, registry: RuntimeRegistry) -> None:
        # Services is frozen: the window's current registry lives here from now on.
        self.registry = registry
        self.models.set_registry(registry)
        # Endpoints may be gone or renamed: forget their models, then ask again.
        self.picker.clear_server_models()
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
        self.compare_chat_action.setEnabled(idle and actions.last("user") is not None)

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
            self.windows.close_all()
        super().closeEvent(event)
