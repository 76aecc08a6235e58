"""The main window's menu bar, with the platform's shortcuts (Ctrl reads as Cmd on macOS).

File: New Chat (⌘N), Open GGUF File… (⌘O), Export…, Import…, Quit (⌘Q). Edit: Preferences…
(⌘, — moved to the application menu on macOS). Chat: Search Chats (⌘K), Stop Reply (Esc),
Regenerate (⌘R), Continue, Edit Last Message, Copy Last Reply. Model: Load Options…, Keep
Warm. View: Chat Settings (⌘⇧S), Compare… (⌘⇧C), Models… (⌘⇧L), This Machine… (⌘⇧M),
Runtimes…. Chat also has Compare This Chat With…. Help: About,
Open Logs Folder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence

if TYPE_CHECKING:
    from ui.main_window import MainWindow


def _action(window: MainWindow, text: str, shortcut: QKeySequence | str | None = None) -> QAction:
    action = QAction(text, window)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut) if isinstance(shortcut, str) else shortcut)
    return action


def build_menus(window: MainWindow) -> None:
    """Create the menus and their actions as attributes of `window`, connected to its slots."""
    _file_menu(window)
    _edit_menu(window)
    _chat_menu(window)
    _model_menu(window)
    _view_menu(window)
    _help_menu(window)


def _file_menu(window: MainWindow) -> None:
    menu = window.menuBar().addMenu("&File")
    window.new_action = _action(window, "&New Chat", QKeySequence(QKeySequence.StandardKey.New))
    window.open_action = _action(
        window, "&Open GGUF File…", QKeySequence(QKeySequence.StandardKey.Open)
    )
    quit_action = _action(window, "&Quit", QKeySequence(QKeySequence.StandardKey.Quit))
    quit_action.setMenuRole(QAction.MenuRole.QuitRole)
    window.export_action = window.transfer.export_action
    window.import_action = window.transfer.import_action
    menu.addActions([window.new_action, window.open_action])
    menu.addSeparator()
    menu.addActions([window.export_action, window.import_action])
    menu.addSeparator()
    menu.addAction(quit_action)
    menu.aboutToShow.connect(window._on_file_menu_about_to_show)
    window.new_action.triggered.connect(window._on_new_action_triggered)
    window.open_action.triggered.connect(window._on_open_action_triggered)
    quit_action.triggered.connect(window.close)


def _edit_menu(window: MainWindow) -> None:
    menu = window.menuBar().addMenu("&Edit")
    window.preferences_action = _action(window, "&Preferences…", "Ctrl+,")
    window.preferences_action.setMenuRole(QAction.MenuRole.PreferencesRole)
    window.preferences_action.triggered.connect(window._on_preferences_action_triggered)
    menu.addAction(window.preferences_action)


def _chat_menu(window: MainWindow) -> None:
    menu = window.menuBar().addMenu("&Chat")
    chat = window.chat
    window.stop_action = _action(window, "&Stop Reply", QKeySequence(Qt.Key.Key_Escape))
    window.stop_action.triggered.connect(chat.stop)
    window.regenerate_action = _action(window, "&Regenerate Reply", "Ctrl+R")
    window.regenerate_action.triggered.connect(window.message_actions.regenerate_last)
    window.continue_action = _action(window, "&Continue Reply", "Ctrl+Shift+Return")
    window.continue_action.triggered.connect(window.message_actions.continue_last)
    window.edit_last_action = _action(window, "&Edit Last Message", "Ctrl+Shift+E")
    window.edit_last_action.triggered.connect(window.message_actions.edit_last)
    window.copy_reply_action = _action(window, "C&opy Last Reply")
    window.copy_reply_action.triggered.connect(window.message_actions.copy_last_reply)
    window.compare_chat_action = _action(window, "Compare This Chat &With…")
    window.compare_chat_action.triggered.connect(window._on_compare_chat_action_triggered)
    menu.addAction(window.conversation_list.search_action)
    menu.addSeparator()
    menu.addActions([window.stop_action, window.regenerate_action, window.continue_action])
    menu.addActions([window.edit_last_action, window.copy_reply_action])
    menu.addSeparator()
    menu.addAction(window.compare_chat_action)
    menu.aboutToShow.connect(window.update_chat_actions)


def _model_menu(window: MainWindow) -> None:
    menu = window.menuBar().addMenu("&Model")
    window.load_options_action = _action(window, "Load &Options…")
    window.load_options_action.triggered.connect(window.models.edit_load_options)
    menu.addActions([window.load_options_action, window.models.keep_warm_action])


def _view_menu(window: MainWindow) -> None:
    menu = window.menuBar().addMenu("&View")
    window.settings_panel_action = _action(window, "Chat &Settings", "Ctrl+Shift+S")
    window.settings_panel_action.setCheckable(True)
    window.settings_panel_action.setChecked(True)
    window.settings_panel_action.toggled.connect(window._on_settings_panel_action_toggled)
    window.runtimes_action = _action(window, "&Runtimes…")
    window.runtimes_action.triggered.connect(window._on_runtimes_action_triggered)
    window.machine_action = _action(window, "This &Machine…", "Ctrl+Shift+M")
    window.machine_action.triggered.connect(window._on_machine_action_triggered)
    window.models_action = _action(window, "&Models…", "Ctrl+Shift+L")
    window.models_action.triggered.connect(window._on_models_action_triggered)
    window.compare_action = _action(window, "&Compare…", "Ctrl+Shift+C")
    window.compare_action.triggered.connect(window._on_compare_action_triggered)
    menu.addAction(window.settings_panel_action)
    menu.addSeparator()
    menu.addActions([window.compare_action, window.models_action, window.machine_action])
    menu.addAction(window.runtimes_action)


def _help_menu(window: MainWindow) -> None:
    menu = window.menuBar().addMenu("&Help")
    about = _action(window, "&About LLM Workbench")
    about.setMenuRole(QAction.MenuRole.AboutRole)
    about.triggered.connect(window._on_about_triggered)
    window.about_action = about
    window.open_logs_action = _action(window, "Open &Logs Folder")
    window.open_logs_action.triggered.connect(window._on_open_logs_action_triggered)
    menu.addActions([window.open_logs_action])
    menu.addSeparator()
    menu.addAction(about)
