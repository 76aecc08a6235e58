"""The chat view: the transcript of one conversation, the message box, Send and Stop.

The transcript (`ui.transcript.Transcript`) renders Markdown and streams a reply at constant
cost per token; this widget composes it with the message box, the buttons and edit mode.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.chat import MessageView
from app.choices import runtime_label
from runtimes.base import GenerationStats
from ui.banner import Banner
from ui.transcript import Transcript

_STATUS_NOTES = {"interrupted": "interrupted", "error": "failed", "partial": "interrupted"}


def metrics_line(stats: GenerationStats, model_name: str = "", runtime: str = "") -> str:
    """One quiet line of figures under a reply."""
    parts = [p for p in (model_name, runtime_label(runtime)) if p]
    parts += [
        f"{stats.decode_tps:.1f} tok/s",
        f"TTFT {stats.ttft_s * 1000:.0f} ms",
        f"{stats.prompt_tokens} → {stats.completion_tokens} tokens",
    ]
    if stats.load_time_s > 0:
        parts.append(f"load {stats.load_time_s:.1f} s")
    if stats.stop_reason == "cancelled":
        parts.append("stopped")
    elif stats.stop_reason == "length":
        parts.append("hit max tokens")
    return " · ".join(parts)


def message_note(message: MessageView) -> tuple[str, bool]:
    """The quiet line under a stored reply: what went wrong, or its figures; and "is warning"."""
    if message.role != "assistant":
        return "", False
    if message.status in _STATUS_NOTES:
        note = _STATUS_NOTES[message.status]
        return (f"{note}: {message.error}" if message.error else note), True
    if message.stats is not None:
        line = metrics_line(message.stats, message.model_name, message.runtime)
        retry_note = str(message.params.get("note", ""))
        return (f"{line} · {retry_note}" if retry_note else line), False
    return "", False


class MessageInput(QPlainTextEdit):
    """The message box: Enter sends, Shift+Enter inserts a new line.

    Signals:
        send_requested(): Enter was pressed.
    """

    send_requested = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Enter (without Shift) sends; everything else edits."""
        is_enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if is_enter and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.send_requested.emit()
            return
        super().keyPressEvent(event)


class FallbackCombo(QComboBox):
    """ "If the model fails, retry on": fills itself from the picker just before it opens.

    Signals:
        about_to_open(): the popup is about to show (refresh the items now).
    """

    about_to_open = Signal()

    def showPopup(self) -> None:
        """Ask for fresh items, then open."""
        self.about_to_open.emit()
        super().showPopup()


class ChatView(QWidget):
    """Transcript, message box and buttons of the open conversation.

    Signals:
        send_requested(str): the user sent this text.
        stop_requested(): the user pressed Stop or Esc.
        action_requested(str, int): a message control was clicked ("edit", "delete",
            "regenerate", "continue", "prev", "next") for this message id.
        edit_submitted(int, str): in edit mode, Send was pressed: the message id and new text.
    """

    send_requested = Signal(str)
    stop_requested = Signal()
    action_requested = Signal(str, int)
    edit_submitted = Signal(int, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.transcript = Transcript(message_note, self)
        self.banner = Banner(self)
        self.notice = QLabel(self)
        self.notice.setObjectName("notice")
        self.notice.setWordWrap(True)
        self.notice.hide()
        self.edit_bar = QLabel(self)
        self.edit_bar.setObjectName("edit_bar")
        self.edit_bar.setText(
            "Editing a message — Send forks a new branch · <a href='cancel'>Cancel</a>"
        )
        self.edit_bar.hide()
        self.input = MessageInput(self)
        self.input.setPlaceholderText("Message…  (Enter sends, Shift+Enter new line)")
        self.input.setFixedHeight(84)
        self.send_button = QPushButton("Send", self)
        self.send_button.setDefault(True)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setToolTip("Stop the reply (Esc)")
        self.stop_button.setEnabled(False)
        self.fallback_label = QLabel("If the model fails, retry on:", self)
        self.fallback = FallbackCombo(self)
        self.fallback.setObjectName("fallback")
        self.fallback.setToolTip(
            "When this conversation's model fails to load or its worker crashes, the reply is "
            "retried on this model, and the message says so."
        )
        self.fallback.addItem("no fallback", "")
        self._build_layout()
        self.editing_message_id: int | None = None
        """The message being edited (Send forks a branch from it), or None."""
        self._draft_before_edit = ""
        self.input.send_requested.connect(self._on_input_send_requested)
        self.send_button.clicked.connect(self._on_input_send_requested)
        self.stop_button.clicked.connect(self.stop_requested)
        self.edit_bar.linkActivated.connect(self._on_edit_bar_link_activated)
        self.transcript.action_requested.connect(self.action_requested)

    def _build_layout(self) -> None:
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.input, 1)
        bottom.addLayout(buttons)
        options = QHBoxLayout()
        options.addStretch(1)
        options.addWidget(self.fallback_label)
        options.addWidget(self.fallback)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.banner)
        layout.addWidget(self.notice)
        layout.addWidget(self.transcript, 1)
        layout.addWidget(self.edit_bar)
        layout.addLayout(bottom)
        layout.addLayout(options)

    # ----------------------------------------------------------------- input

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Esc stops a running reply, or else leaves edit mode."""
        if event.key() == Qt.Key.Key_Escape and self.stop_button.isEnabled():
            self.stop_requested.emit()
            return
        if event.key() == Qt.Key.Key_Escape and self.editing_message_id is not None:
            self.cancel_edit()
            return
        super().keyPressEvent(event)

    @Slot()
    def _on_input_send_requested(self) -> None:
        text = self.input.toPlainText().strip()
        if not text or not self.send_button.isEnabled():
            return
        # The box is cleared by `accept_sent()` once the message is stored: a send that fails
        # (no model, database locked) keeps what the user typed.
        if self.editing_message_id is not None:
            self.edit_submitted.emit(self.editing_message_id, text)
        else:
            self.send_requested.emit(text)

    @Slot(str)
    def _on_edit_bar_link_activated(self, _link: str) -> None:
        self.cancel_edit()

    def start_edit(self, message_id: int, text: str) -> None:
        """Put a message's text in the box; Send then emits `edit_submitted` for it."""
        if self.editing_message_id is None:
            self._draft_before_edit = self.input.toPlainText()
        self.editing_message_id = message_id
        self.input.setPlainText(text)
        self.input.moveCursor(self.input.textCursor().MoveOperation.End)
        self.edit_bar.show()
        self.input.setFocus()

    def cancel_edit(self) -> None:
        """Leave edit mode and restore what was in the box before it."""
        if self.editing_message_id is None:
            return
        self.editing_message_id = None
        self.input.setPlainText(self._draft_before_edit)
        self._draft_before_edit = ""
        self.edit_bar.hide()

    def accept_sent(self) -> None:
        """The sent (or edited) message is stored: clear the box and leave edit mode."""
        self.input.clear()
        if self.editing_message_id is not None:
            self.editing_message_id = None
            self.input.setPlainText(self._draft_before_edit)
            self._draft_before_edit = ""
            self.edit_bar.hide()

    def set_busy(self, busy: bool) -> None:
        """While a reply streams: Send disabled, Stop enabled."""
        self.send_button.setEnabled(not busy)
        self.stop_button.setEnabled(busy)

    def show_notice(self, text: str) -> None:
        """A quiet line above the transcript (e.g. a chat-template fallback); "" hides it."""
        self.notice.setText(text)
        self.notice.setVisible(bool(text))

    # ----------------------------------------------------------- transcript

    def show_messages(self, messages: Sequence[MessageView]) -> None:
        """Render a whole conversation (on open), each message with its controls."""
        self.transcript.show_messages(messages)

    def append_user_message(self, message: MessageView | str) -> None:
        """Show the user's message at the end (pass the stored message so Edit/Delete work)."""
        self.transcript.append_user_message(message)

    def begin_reply(self) -> None:
        """Open an empty assistant message that `append_reply_text` grows."""
        self.transcript.begin_reply()

    def append_reply_text(self, text: str) -> None:
        """Append streamed text to the open reply: constant cost per call."""
        self.transcript.append_reply_text(text)

    def end_reply(
        self, footer: str, warning: bool = False, message: MessageView | None = None
    ) -> None:
        """Close the open reply with its metrics (or what went wrong), and its controls when
        the stored `message` is given."""
        self.transcript.end_reply(footer, warning, message)

    def reply_text(self) -> str:
        """The transcript as text: each message's role, raw text and note (for tests, copy)."""
        return self.transcript.source_text()
