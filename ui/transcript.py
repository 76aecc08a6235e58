"""The transcript: messages rendered as Markdown in a QTextBrowser, with a streaming tail.

Each message is a header block ("You" / "Assistant"), its body and a quiet line of controls.
A streaming reply is split by `MarkdownStream`: closed blocks are rendered once and never
touched again; only the open tail (the last paragraph group, or the last line of an open code
fence) is removed and rendered again on each update, so a token costs the same at the end of
a long reply as at its start. Links use private schemes that never navigate:
``copy-code:N``, ``copy-msg:K``, ``think:K:I`` and ``action:NAME:ID``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from PySide6.QtCore import QUrl, Signal, Slot
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QFont,
    QGuiApplication,
    QPalette,
    QTextBlock,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextDocumentFragment,
    QTextFormat,
)
from PySide6.QtWidgets import QTextBrowser, QWidget

from app.chat import MessageView
from ui.code_highlight import CodeFormats
from ui.markdown_stream import Block, MarkdownStream, Tail, split_blocks

NoteFor = Callable[[MessageView], tuple[str, bool]]
"""The quiet line under a stored message (figures, or what went wrong) and "is a warning"."""
ROLE_TITLES = {"user": "You", "assistant": "Assistant", "system": "System"}
_ENTRY_PROPERTY = QTextFormat.Property.UserProperty + 1
_MARKDOWN = QTextDocument.MarkdownFeature.MarkdownDialectGitHub
_EXTERNAL_SCHEMES = ("http", "https", "mailto")
_WARNING = "\0warning"
"""A `_render_line` href that means "plain text in the warning colour"."""
_WARNING_COLOUR = QColor("#b3541e")
_EMPTY_HINT = "<p style='color:gray'>Say hello: type a message below and press Enter.</p>"


@dataclass(slots=True)
class _Entry:
    """One message as rendered: what its body, note and controls are made of."""

    key: int
    role: str
    text: str
    message: MessageView | None = None
    note: str = ""
    warning: bool = False
    last: bool = False


@dataclass(slots=True)
class _Live:
    """The streaming reply: its splitter and the size of its open tail in the document."""

    entry: _Entry
    stream: MarkdownStream = field(default_factory=MarkdownStream)
    pieces: list[str] = field(default_factory=list)
    tail_size: int = 0
    tail_kind: str = ""
    code_done: int = 0
    partial_size: int = 0


def can_continue(message: MessageView) -> bool:
    """A reply that stopped early (interrupted, or cut by max tokens) can be continued."""
    stopped_short = message.stats is not None and message.stats.stop_reason == "length"
    return message.status in ("interrupted", "partial") or stopped_short


class Transcript(QTextBrowser):
    """Read-only, Markdown-rendering list of messages with per-message controls.

    Signals:
        action_requested(str, int): a control was clicked: "edit", "delete", "regenerate",
            "continue", "prev" or "next", and the message id.
    """

    action_requested = Signal(str, int)

    def __init__(self, note_for: NoteFor, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._note_for = note_for
        self.setObjectName("transcript")
        self.setOpenLinks(False)
        self.document().setDocumentMargin(14)
        self.anchorClicked.connect(self._on_transcript_anchor_clicked)
        self._entries: list[_Entry] = []
        self._live: _Live | None = None
        self._codes: list[str] = []
        self._expanded: set[tuple[int, int]] = set()
        self._code = CodeFormats(self.palette())

    # ------------------------------------------------------------- messages

    def show_messages(self, messages: Sequence[MessageView]) -> None:
        """Render a whole conversation (on open)."""
        self.clear()
        self._entries, self._live, self._codes = [], None, []
        self._expanded.clear()
        self._code = CodeFormats(self.palette())
        with self._edit_block():
            for i, message in enumerate(messages):
                note, warning = self._note_for(message)
                last = i == len(messages) - 1
                self._add(message.role, message.content, message, note, warning, last)
        if not messages:
            self.setHtml(_EMPTY_HINT)
        self._scroll_to_end()

    def append_user_message(self, message: MessageView | str) -> None:
        """Show the user's message at the end (a str has no id, so no Edit/Delete)."""
        self._drop_hint()
        with self._edit_block():
            if isinstance(message, str):
                self._add("user", message, None, "", False, True)
            else:
                self._add("user", message.content, message, "", False, True)
        self._scroll_to_end()

    def begin_reply(self) -> None:
        """Open an empty assistant message that `append_reply_text` grows."""
        self._drop_hint()
        with self._edit_block():
            entry = self._add("assistant", "", None, "", False, True, live=True)
        self._live = _Live(entry)

    def append_reply_text(self, text: str) -> None:
        """Add streamed text to the open reply; re-renders only the open tail."""
        if self._live is None:
            self.begin_reply()
        live = self._live
        assert live is not None
        at_bottom = self._at_bottom()
        live.pieces.append(text)
        live.stream.feed(text)
        with self._edit_block():
            if live.stream.take_reset():
                self._rerender(live.entry)
            else:
                self._update_tail(live, live.stream.take_closed())
        if at_bottom:
            self._scroll_to_end()

    def end_reply(
        self, note: str, warning: bool = False, message: MessageView | None = None
    ) -> None:
        """Close the open reply: render its last blocks, then its note and controls."""
        live, self._live = self._live, None
        self._drop_hint()
        with self._edit_block():
            if live is None:
                self._add("assistant", "", message, note, warning, True)
            else:
                self._close_live(live, note, warning, message)
        self._scroll_to_end()

    def _close_live(
        self, live: _Live, note: str, warning: bool, message: MessageView | None
    ) -> None:
        entry = live.entry
        entry.text = message.content if message is not None else "".join(live.pieces)
        entry.message, entry.note, entry.warning = message, note, warning
        blocks = live.stream.finish()
        if live.stream.take_reset():
            self._rerender(entry)
            return
        self._remove_tail(live)
        cursor = self._end()
        for i, block in enumerate(blocks, len(live.stream.closed) - len(blocks)):
            self._render_block(cursor, entry.key, i, block)
        self._render_controls(cursor, entry)

    def source_text(self) -> str:
        """Every message as its role, raw text and note (what a reader would copy)."""
        parts = []
        for entry in self._entries:
            text = self._text_of(entry)
            parts.append(f"{ROLE_TITLES.get(entry.role, entry.role)}\n{text}")
            if entry.note:
                parts.append(entry.note)
        return "\n".join(parts)

    # ------------------------------------------------------------- rendering

    def _add(
        self,
        role: str,
        text: str,
        message: MessageView | None,
        note: str,
        warning: bool,
        last: bool,
        live: bool = False,
    ) -> _Entry:
        if self._entries and self._entries[-1].last:
            previous = self._entries[-1]
            previous.last = False
            if previous.message is not None and can_continue(previous.message):
                self._rerender(previous)  # its "Continue" no longer applies
        entry = _Entry(len(self._entries), role, text, message, note, warning, last)
        self._entries.append(entry)
        cursor = self._end()
        self._render_header(cursor, entry)
        if not live:
            self._render_body(cursor, entry)
            self._render_controls(cursor, entry)
        return entry

    def _render_header(self, cursor: QTextCursor, entry: _Entry) -> None:
        block = QTextBlockFormat()
        block.setProperty(_ENTRY_PROPERTY, entry.key)
        bold = QTextCharFormat()
        bold.setFontWeight(QFont.Weight.Bold)
        if cursor.position() == 0 and cursor.block().length() == 1:
            cursor.setBlockFormat(block)
            cursor.setCharFormat(bold)
        else:
            block.setTopMargin(14)
            cursor.insertBlock(block, bold)
        cursor.insertText(ROLE_TITLES.get(entry.role, entry.role), bold)

    def _render_body(self, cursor: QTextCursor, entry: _Entry) -> None:
        if entry.role != "assistant":
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
            cursor.insertText(entry.text, QTextCharFormat())
            return
        for i, block in enumerate(split_blocks(entry.text)):
            self._render_block(cursor, entry.key, i, block)

    def _render_block(self, cursor: QTextCursor, key: int, index: int, block: Block) -> None:
        if block.kind == "code":
            self._codes.append(block.text)
            self._render_code_label(cursor, block.language, len(self._codes) - 1)
            self._code.insert_highlighted(cursor, block.text, block.language)
        elif block.kind == "think":
            expanded = (key, index) in self._expanded
            words = len(block.text.split())
            label = "▾ Reasoning" if expanded else f"▸ Reasoning ({words} words)"
            self._render_line(cursor, [(label, f"think:{key}:{index}")])
            if expanded and block.text:
                self._render_prose(cursor, block.text, quiet=True)
        else:
            self._render_prose(cursor, block.text)

    def _render_prose(self, cursor: QTextCursor, markdown: str, quiet: bool = False) -> None:
        start = cursor.position()
        source = QTextDocument()
        source.setMarkdown(markdown, _MARKDOWN)
        first = source.begin().blockFormat()
        first.setTopMargin(max(first.topMargin(), 6.0))
        cursor.insertBlock(first, source.begin().charFormat())
        cursor.insertFragment(QTextDocumentFragment(source))
        # A fragment that starts with a list or table lands after the new block, leaving it
        # empty: fold that empty block into the one before.
        inserted = self.document().findBlock(start + 1)
        if inserted.length() == 1 and inserted.next().isValid():
            eraser = QTextCursor(self.document())
            eraser.setPosition(start)
            eraser.deleteChar()
        if quiet:
            grey = QTextCharFormat()
            grey.setForeground(self._quiet_colour())
            span = QTextCursor(self.document())
            span.setPosition(start)
            span.setPosition(cursor.position(), QTextCursor.MoveMode.KeepAnchor)
            span.mergeCharFormat(grey)

    def _render_code_label(self, cursor: QTextCursor, language: str, index: int | None) -> None:
        items: list[tuple[str, str]] = [(language, "")] if language else []
        if index is not None:
            items.append(("Copy", f"copy-code:{index}"))
        self._render_line(cursor, items or [(" ", "")])

    def _render_line(
        self, cursor: QTextCursor, items: Sequence[tuple[str, str]], glued: int = 0
    ) -> None:
        """A small quiet line of texts and links: (text, href) pairs, "" href for plain text.

        Items are separated by " · ", except the first `glued` ones, by a space.
        """
        block = QTextBlockFormat()
        block.setTopMargin(4)
        plain = self._small_format()
        cursor.insertBlock(block, plain)
        for i, (text, href) in enumerate(items):
            if i:
                cursor.insertText(" " if i < glued else " · ", plain)
            fmt = self._small_format(href)
            cursor.insertText(text, fmt)

    def _small_format(self, href: str = "") -> QTextCharFormat:
        fmt = QTextCharFormat()
        fmt.setFontPointSize(max(self.font().pointSizeF() * 0.85, 6.0))
        fmt.setForeground(self._quiet_colour())
        if href == _WARNING:
            fmt.setForeground(_WARNING_COLOUR)
        elif href:
            fmt.setAnchor(True)
            fmt.setAnchorHref(href)
            if not href.startswith(("action:", "copy-msg:")):  # controls stay quiet
                fmt.setForeground(self.palette().color(QPalette.ColorRole.Link))
        return fmt

    def _render_controls(self, cursor: QTextCursor, entry: _Entry) -> None:
        message, items, glued = entry.message, [], 0
        if message is not None and message.branch_count > 1:
            glued = 3
            mid = f"{message.branch_index}/{message.branch_count}"
            items.append(("‹", f"action:prev:{message.id}"))
            items.append((mid, ""))
            items.append(("›", f"action:next:{message.id}"))
        if entry.note:
            items.append((entry.note, _WARNING if entry.warning else ""))
        items.append(("Copy", f"copy-msg:{entry.key}"))
        if message is not None:
            actions = ["edit", "delete"] if entry.role == "user" else ["regenerate", "delete"]
            if entry.role == "assistant" and entry.last and can_continue(message):
                actions.append("continue")
            items += [(a.capitalize(), f"action:{a}:{message.id}") for a in actions]
        self._render_line(cursor, items, glued)

    # ----------------------------------------------------------------- tail

    def _update_tail(self, live: _Live, new: list[Block]) -> None:
        tail = live.stream.tail
        if not new and tail.kind == "code" and live.tail_kind == "code":
            self._grow_code(live, tail)
            return
        self._remove_tail(live)
        cursor = self._end()
        first = len(live.stream.closed) - len(new)
        for i, block in enumerate(new, first):
            self._render_block(cursor, live.entry.key, i, block)
        self._render_tail(live, tail)

    def _render_tail(self, live: _Live, tail: Tail) -> None:
        cursor = self._end()
        start = cursor.position()
        if tail.kind == "code":
            self._render_code_label(cursor, tail.language, None)
            self._code.insert_plain_lines(cursor, tail.code_lines)
            live.code_done = len(tail.code_lines)
            partial_start = cursor.position()
            self._code.insert_plain_lines(cursor, [tail.partial])
            live.partial_size = cursor.position() - partial_start
        elif tail.kind == "think":
            self._render_line(cursor, [(f"▸ Reasoning ({tail.think_words} words)", "")])
        else:
            if tail.prose.strip():
                self._render_prose(cursor, tail.prose)
            if tail.think_words is not None:
                self._render_line(cursor, [(f"▸ Reasoning ({tail.think_words} words)", "")])
        live.tail_size = cursor.position() - start
        live.tail_kind = tail.kind

    def _grow_code(self, live: _Live, tail: Tail) -> None:
        """An open fence got more text: add its completed lines, redo only the partial one."""
        before = self._end().position()
        self._remove_last(live.partial_size)
        cursor = self._end()
        self._code.insert_plain_lines(cursor, tail.code_lines[live.code_done :])
        live.code_done = len(tail.code_lines)
        partial_start = cursor.position()
        self._code.insert_plain_lines(cursor, [tail.partial])
        live.partial_size = cursor.position() - partial_start
        live.tail_size += cursor.position() - before

    def _remove_tail(self, live: _Live) -> None:
        self._remove_last(live.tail_size)
        live.tail_size, live.tail_kind = 0, ""

    def _remove_last(self, size: int) -> None:
        if size <= 0:
            return
        cursor = self._end()
        cursor.setPosition(cursor.position() - size, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()

    # -------------------------------------------------------------- re-render

    def _rerender(self, entry: _Entry) -> None:
        """Render one message again in place (a toggle, a stray ``</think>``)."""
        header = self._header_block(entry.key)
        if not header.isValid():
            return
        following = header.next()
        while following.isValid() and following.blockFormat().property(_ENTRY_PROPERTY) is None:
            following = following.next()
        cursor = QTextCursor(self.document())
        cursor.setPosition(max(header.position() - 1, 0))
        if following.isValid():
            cursor.setPosition(following.position() - 1, QTextCursor.MoveMode.KeepAnchor)
        else:
            cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        self._render_header(cursor, entry)
        live = self._live
        if live is not None and live.entry is entry:
            live.stream.take_closed()
            for i, block in enumerate(live.stream.closed):
                self._render_block(cursor, entry.key, i, block)
            self._render_tail(live, live.stream.tail)
        else:
            self._render_body(cursor, entry)
            self._render_controls(cursor, entry)

    def _header_block(self, key: int) -> QTextBlock:
        block = self.document().lastBlock()
        while block.isValid() and block.blockFormat().property(_ENTRY_PROPERTY) != key:
            block = block.previous()
        return block

    # ---------------------------------------------------------------- links

    @Slot(QUrl)
    def _on_transcript_anchor_clicked(self, url: QUrl) -> None:
        scheme, path = url.scheme(), url.path()
        if scheme in _EXTERNAL_SCHEMES:
            QDesktopServices.openUrl(url)
        elif scheme == "copy-code" and path.isdigit() and int(path) < len(self._codes):
            QGuiApplication.clipboard().setText(self._codes[int(path)])
        elif scheme == "copy-msg" and path.isdigit() and int(path) < len(self._entries):
            entry = self._entries[int(path)]
            text = self._text_of(entry)
            QGuiApplication.clipboard().setText(text)
        elif scheme == "think":
            key, _, index = path.partition(":")
            if key.isdigit() and index.isdigit() and int(key) < len(self._entries):
                self._expanded ^= {(int(key), int(index))}
                with self._edit_block():
                    self._rerender(self._entries[int(key)])
        elif scheme == "action":
            action, _, message_id = path.partition(":")
            if message_id.lstrip("-").isdigit():
                self.action_requested.emit(action, int(message_id))

    # -------------------------------------------------------------- helpers

    @contextmanager
    def _edit_block(self) -> Iterator[None]:
        """Group edits, so Qt lays out and repaints once for all of them, not per insert."""
        cursor = QTextCursor(self.document())
        cursor.beginEditBlock()
        try:
            yield
        finally:
            cursor.endEditBlock()

    def _drop_hint(self) -> None:
        if not self._entries and not self.document().isEmpty():
            self.clear()  # the "say hello" hint

    def _text_of(self, entry: _Entry) -> str:
        live = self._live
        return "".join(live.pieces) if live is not None and live.entry is entry else entry.text

    def _end(self) -> QTextCursor:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        return cursor

    def _quiet_colour(self) -> QColor:
        return self.palette().color(QPalette.ColorRole.PlaceholderText)

    def _at_bottom(self) -> bool:
        bar = self.verticalScrollBar()
        return bool(bar.value() >= bar.maximum() - 4)

    def _scroll_to_end(self) -> None:
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())
