"""Splits a growing Markdown reply into closed blocks and an open tail, line by line (no Qt).

A reply streams in small pieces. Rendering all of it again on every piece would cost more
the longer it gets, so `MarkdownStream` looks only at the lines that completed since the
last piece and sorts the text into blocks:

- prose: paragraphs, lists, tables and headings, grouped until a blank line outside a fence;
- code: a fenced code block (``` or ~~~), its raw code without the fences;
- think: a reasoning section between ``<think>`` and ``</think>`` (R1-style). A stray
  ``</think>`` with no opening tag (some chat templates put the opening tag in the prompt)
  turns everything before it into the reasoning section.

A block is *closed* once the text after it can no longer change how it renders; the renderer
draws it once and never again. What is still open is the *tail* (`MarkdownStream.tail`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

BlockKind = Literal["prose", "code", "think"]

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


@dataclass(frozen=True, slots=True)
class Block:
    """One closed part of a message.

    Attributes:
        kind: "prose" (Markdown), "code" (raw code) or "think" (reasoning, Markdown).
        text: the Markdown of a prose or think block; the raw code of a code block.
        language: a code block's fence language ("" when none was given).
    """

    kind: BlockKind
    text: str
    language: str = ""


@dataclass(frozen=True, slots=True)
class Tail:
    """The open end of a streaming message, as cheap to build as the last group of lines.

    Attributes:
        kind: "prose", "code" or "think": what is open right now.
        prose: for "prose", the Markdown of the open group including the partial last line.
        code_lines: for "code", the completed lines of the open fence (a live sequence that
            only grows while the fence stays open: render the new ones only).
        partial: for "code", the incomplete last line.
        language: for "code", the fence language.
        think_words: for "think", how many words the open reasoning section has so far;
            for "prose", the words of a reasoning section opened on the partial line, or None.
    """

    kind: BlockKind
    prose: str = ""
    code_lines: Sequence[str] = ()
    partial: str = ""
    language: str = ""
    think_words: int | None = None


def fence_language(info: str) -> str:
    """The language named on a fence's opening line ("python {.x}" → "python")."""
    words = info.strip().split()
    return words[0].strip("{}.").lower() if words else ""


class MarkdownStream:
    """Incremental splitter: `feed` pieces, `take_closed` new blocks, read `tail`."""

    def __init__(self) -> None:
        self.closed: list[Block] = []
        """Every closed block so far, in order."""
        self._taken = 0
        self._reset = False
        self._pending = ""
        self._mode: BlockKind = "prose"
        self._group: list[str] = []
        self._fence = ""
        self._language = ""
        self._think_words = 0
        self._think_seen = False
        self._lines: list[str] = []

    # ------------------------------------------------------------------ input

    def feed(self, text: str) -> None:
        """Add streamed text; only lines completed by it are looked at."""
        if "\n" not in text:
            self._pending += text
            return
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        for line in lines:
            self._lines.append(line)
            self._line(line)

    def finish(self) -> list[Block]:
        """The message is complete: close whatever is open; returns the blocks not yet taken."""
        if self._pending:
            line, self._pending = self._pending, ""
            self._lines.append(line)
            self._line(line)
        if self._mode == "code":
            self._close("code", "\n".join(self._group), self._language)
        elif self._mode == "think":
            self._close("think", "\n".join(self._group).strip())
        else:
            self._close_prose()
        self._mode = "prose"
        return self.take_closed()

    # ----------------------------------------------------------------- output

    def take_closed(self) -> list[Block]:
        """Blocks closed since the last call (render each once)."""
        new = self.closed[self._taken :]
        self._taken = len(self.closed)
        return new

    def take_reset(self) -> bool:
        """True once after a stray ``</think>`` re-read everything before it as reasoning:
        render the message again from `closed` (then `take_closed` starts afresh)."""
        reset, self._reset = self._reset, False
        return reset

    @property
    def tail(self) -> Tail:
        """The open part, including the incomplete last line."""
        if self._mode == "code":
            return Tail(
                "code", code_lines=self._group, partial=self._pending, language=self._language
            )
        if self._mode == "think":
            before = self._pending.split(THINK_CLOSE, 1)[0]
            return Tail("think", think_words=self._think_words + len(before.split()))
        pending, think_words = self._pending, None
        if not self._fence_opens(pending) and THINK_OPEN in pending:
            pending, after = pending.split(THINK_OPEN, 1)
            think_words = len(after.split())
        prose = "\n".join([*self._group, pending]) if self._group else pending
        return Tail("prose", prose=prose, think_words=think_words)

    # -------------------------------------------------------------- internals

    @staticmethod
    def _fence_opens(line: str) -> bool:
        match = _FENCE.match(line)
        return bool(match) and not (match[1][0] == "`" and "`" in match[2])  # type: ignore[index]

    def _close(self, kind: BlockKind, text: str, language: str = "") -> None:
        self.closed.append(Block(kind, text, language))
        self._group = []

    def _close_prose(self) -> None:
        if any(line.strip() for line in self._group):
            self._close("prose", "\n".join(self._group))
        self._group = []

    def _line(self, line: str) -> None:
        if self._mode == "code":
            self._code_line(line)
        elif self._mode == "think":
            self._think_line(line)
        else:
            self._prose_line(line)

    def _prose_line(self, line: str) -> None:
        match = _FENCE.match(line)
        if match and self._fence_opens(line):
            self._close_prose()
            self._mode, self._fence = "code", match[1]
            self._language = fence_language(match[2])
        elif THINK_OPEN in line:
            before, after = line.split(THINK_OPEN, 1)
            if before.strip():
                self._prose_line(before)
            self._close_prose()
            self._mode, self._think_seen, self._think_words = "think", True, 0
            if after.strip():
                self._think_line(after)
        elif THINK_CLOSE in line and not self._think_seen:
            self._stray_think_close(line)
        elif not line.strip():
            self._close_prose()
        else:
            self._group.append(line)

    def _code_line(self, line: str) -> None:
        stripped = line.strip()
        closes = (
            stripped.startswith(self._fence)
            and not stripped.strip(self._fence[0])
            and len(line) - len(line.lstrip(" ")) < 4
        )
        if closes:
            self._close("code", "\n".join(self._group), self._language)
            self._mode = "prose"
        else:
            self._group.append(line)

    def _think_line(self, line: str) -> None:
        if THINK_CLOSE in line:
            before, after = line.split(THINK_CLOSE, 1)
            self._group.append(before)
            self._close("think", "\n".join(self._group).strip())
            self._mode = "prose"
            if after.strip():
                self._prose_line(after)
            return
        self._group.append(line)
        self._think_words += len(line.split())

    def _stray_think_close(self, line: str) -> None:
        before, after = line.split(THINK_CLOSE, 1)
        reasoning = "\n".join([*self._lines[:-1], before]).strip()
        self.closed = [Block("think", reasoning)]
        self._taken = 0
        self._reset = True
        self._think_seen = True
        self._group = []
        if after.strip():
            self._prose_line(after)


def split_blocks(text: str) -> list[Block]:
    """All blocks of a complete message."""
    stream = MarkdownStream()
    stream.feed(text)
    stream.finish()
    return stream.closed
