"""Code blocks in the transcript: Pygments colours as Qt character formats, in a monospace block.

Pygments' tokens are turned straight into `QTextCharFormat`s (no HTML round trip), so the code
keeps its exact text and the block's background comes from the palette (AlternateBase), which
reads in light and dark themes alike.
"""

from __future__ import annotations

from collections.abc import Iterable

from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.lexers.special import TextLexer
from pygments.styles import get_style_by_name
from pygments.token import _TokenType
from pygments.util import ClassNotFound
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QPalette,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
)

Run = tuple[str, _TokenType]
"""A piece of one line and its Pygments token type."""

_LIGHT_STYLE = "default"
_DARK_STYLE = "monokai"


def lexer_for(language: str) -> Lexer:
    """The lexer named by a fence's language; plain text for an unknown or empty name."""
    options = {"stripnl": False, "ensurenl": False}
    if language:
        try:
            return get_lexer_by_name(language, **options)
        except ClassNotFound:
            pass
    return TextLexer(**options)


def highlight_lines(code: str, language: str) -> list[list[Run]]:
    """Split code into lines of (text, token type) runs; the texts join back to `code`."""
    lines: list[list[Run]] = [[]]
    for token, value in lexer_for(language).get_tokens(code):
        parts = value.split("\n")
        for i, part in enumerate(parts):
            if i:
                lines.append([])
            if part:
                lines[-1].append((part, token))
    return lines


class CodeFormats:
    """Block and character formats for code, from a palette (dark palettes get a dark style)."""

    def __init__(self, palette: QPalette) -> None:
        self.font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        dark = palette.color(QPalette.ColorRole.Base).lightness() < 128
        self._style = get_style_by_name(_DARK_STYLE if dark else _LIGHT_STYLE)
        self.block = QTextBlockFormat()
        self.block.setBackground(palette.color(QPalette.ColorRole.AlternateBase))
        # Long code lines wrap inside the column (like a narrow editor with soft wrap)
        # rather than giving the whole transcript a horizontal scroll bar.
        self.block.setLeftMargin(6)
        self.block.setRightMargin(6)
        self.plain = QTextCharFormat()
        self.plain.setFont(self.font)
        self.plain.setForeground(palette.color(QPalette.ColorRole.Text))
        self._tokens: dict[_TokenType, QTextCharFormat] = {}

    def for_token(self, token: _TokenType) -> QTextCharFormat:
        """The character format of one token type (cached)."""
        found = self._tokens.get(token)
        if found is None:
            style = self._style.style_for_token(token)
            found = QTextCharFormat(self.plain)
            if style["color"]:
                found.setForeground(QColor(f"#{style['color']}"))
            if style["bold"]:
                found.setFontWeight(QFont.Weight.Bold)
            if style["italic"]:
                found.setFontItalic(True)
            self._tokens[token] = found
        return found

    def insert_plain_lines(self, cursor: QTextCursor, lines: Iterable[str]) -> None:
        """Append lines as code blocks without colours (an open fence, while it streams)."""
        for line in lines:
            cursor.insertBlock(self.block, self.plain)
            if line:
                cursor.insertText(line, self.plain)

    def insert_highlighted(self, cursor: QTextCursor, code: str, language: str) -> None:
        """Append a whole code block, coloured by its language's lexer."""
        for runs in highlight_lines(code, language):
            cursor.insertBlock(self.block, self.plain)
            for text, token in runs:
                cursor.insertText(text, self.for_token(token))
