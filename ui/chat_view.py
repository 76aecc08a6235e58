"""The chat view: the transcript of one conversation, the message box, Send and Stop.

Streaming text is appended at the end of the document with a cursor, so the cost of a token
does not grow with the length of the reply; earlier blocks are never re-rendered.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QKeyEvent, QTextBlockFormat, QTextCharFormat, QTextCursor, QTextDocument
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.chat import MessageView
from runtimes.base import GenerationStats
from ui.banner import Banner

_ROLE_TITLES = {"user": "You", "assistant": "Assistant", "system": "System"}
_PLAIN = QTextCharFormat()
_BOLD = QTextCharFormat()
_BOLD.setFontWeight(700)
_STATUS_NOTES = {
    "interrupted": "interrupted",
    "error": "failed",
    "partial": "interrupted",
}


def runtime_label(runtime: str) -> str:
    """How a runtime key reads under a reply: "llama.cpp", "Ollama", or a saved endpoint's
    name ("openai:vllm-box" → "vllm-box")."""
    if runtime == "llamacpp":
        return "llama.cpp"
    if runtime == "ollama":
        return "Ollama"
    return runtime.split(":", 1)[1] if runtime.startswith("openai:") else runtime


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
    """

    send_requested = Signal(str)
    stop_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.transcript = QTextBrowser(self)
        self.transcript.setObjectName("transcript")
        self.transcript.setOpenExternalLinks(True)
        self.transcript.document().setDocumentMargin(14)
        self.banner = Banner(self)
        self.notice = QLabel(self)
        self.notice.setObjectName("notice")
        self.notice.setWordWrap(True)
        self.notice.hide()
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
        self.input.send_requested.connect(self._on_input_send_requested)
        self.send_button.clicked.connect(self._on_input_send_requested)
        self.stop_button.clicked.connect(self.stop_requested)
        self._tail_open = False

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
        layout.addLayout(bottom)
        layout.addLayout(options)

    # ----------------------------------------------------------------- input

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Esc stops a running reply."""
        if event.key() == Qt.Key.Key_Escape and self.stop_button.isEnabled():
            self.stop_requested.emit()
            return
        super().keyPressEvent(event)

    @Slot()
    def _on_input_send_requested(self) -> None:
        text = self.input.toPlainText().strip()
        if not text or not self.send_button.isEnabled():
            return
        # The box is cleared by `accept_sent()` once the message is stored: a send that fails
        # (no model, database locked) keeps what the user typed.
        self.send_requested.emit(text)

    def accept_sent(self) -> None:
        """The sent message is stored: clear the message box."""
        self.input.clear()

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
        """Render a whole conversation (on open); streaming then appends at the end."""
        self.transcript.clear()
        self._tail_open = False
        for message in messages:
            self._append_header(message.role)
            self._append_body(message.content)
            self._append_footer(message)
        if not messages:
            self.transcript.setHtml(
                "<p style='color:gray'>Say hello: type a message below and press Enter.</p>"
            )
        self._scroll_to_end()

    def append_user_message(self, text: str) -> None:
        """Show the user's message at the end."""
        self._clear_empty_hint()
        self._append_header("user")
        self._append_body(text)

    def begin_reply(self) -> None:
        """Open an empty assistant block that `append_reply_text` grows."""
        self._clear_empty_hint()
        self._append_header("assistant")
        self._cursor_at_end().insertBlock(QTextBlockFormat(), _PLAIN)
        self._tail_open = True

    def append_reply_text(self, text: str) -> None:
        """Append streamed text to the open reply: constant cost per call."""
        if not self._tail_open:
            self.begin_reply()
        at_bottom = self._at_bottom()
        self._cursor_at_end().insertText(text, _PLAIN)
        if at_bottom:
            self._scroll_to_end()

    def end_reply(self, footer: str, warning: bool = False) -> None:
        """Close the open reply with its metrics (or what went wrong)."""
        self._tail_open = False
        self._append_note(footer, warning)
        self._scroll_to_end()

    def reply_text(self) -> str:
        """The plain text of the transcript (for tests and copy)."""
        return str(self.transcript.toPlainText())

    # -------------------------------------------------------------- helpers

    def _cursor_at_end(self) -> QTextCursor:
        cursor = QTextCursor(self.transcript.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        return cursor

    def _document(self) -> QTextDocument:
        return self.transcript.document()

    def _clear_empty_hint(self) -> None:
        if self._document().blockCount() <= 1 and "Say hello" in self.reply_text():
            self.transcript.clear()

    def _append_header(self, role: str) -> None:
        title = _ROLE_TITLES.get(role, role)
        cursor = self._cursor_at_end()
        block = QTextBlockFormat()
        block.setTopMargin(14 if not self._document().isEmpty() else 0)
        if self._document().isEmpty():
            cursor.setBlockFormat(block)
        else:
            cursor.insertBlock(block, _PLAIN)
        cursor.insertText(title, _BOLD)

    def _append_body(self, text: str) -> None:
        cursor = self._cursor_at_end()
        cursor.insertBlock(QTextBlockFormat(), _PLAIN)
        cursor.insertText(text, _PLAIN)

    def _append_note(self, text: str, warning: bool) -> None:
        if not text:
            return
        colour = "#b3541e" if warning else "gray"
        cursor = self._cursor_at_end()
        cursor.insertBlock(QTextBlockFormat(), _PLAIN)
        cursor.insertHtml(
            f"<span style='color:{colour}; font-size:small'>{html.escape(text)}</span>"
        )

    def _append_footer(self, message: MessageView) -> None:
        if message.role != "assistant":
            return
        if message.status in _STATUS_NOTES:
            note = (
                f"{_STATUS_NOTES[message.status]}: {message.error}"
                if message.error
                else (_STATUS_NOTES[message.status])
            )
            self._append_note(note, warning=True)
        elif message.stats is not None:
            line = metrics_line(message.stats, message.model_name, message.runtime)
            retry_note = str(message.params.get("note", ""))
            self._append_note(f"{line} · {retry_note}" if retry_note else line, warning=False)

    def _at_bottom(self) -> bool:
        bar = self.transcript.verticalScrollBar()
        return bool(bar.value() >= bar.maximum() - 4)

    def _scroll_to_end(self) -> None:
        bar = self.transcript.verticalScrollBar()
        bar.setValue(bar.maximum())
