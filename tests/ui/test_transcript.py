"""The transcript renders streaming Markdown, code blocks, reasoning and message controls."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from PySide6.QtCore import QPoint, Qt, QUrl
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QGuiApplication,
    QPalette,
    QTextCursor,
    QTextDocument,
    QTextTable,
)

from app.chat import MessageView
from runtimes.base import GenerationStats
from ui.chat_view import message_note
from ui.code_highlight import CodeFormats
from ui.transcript import Transcript

REPLY = """# Plan

Some *emphasis*, `inline code` and a [link](https://example.org).

- first
- second

| name | size |
|------|------|
| a    | 1    |

```python
def add(a, b):
    return a + b  # sum
```

Done."""


def _stats(stop_reason: str = "stop") -> GenerationStats:
    return GenerationStats(
        prompt_tokens=3,
        completion_tokens=9,
        load_time_s=0.0,
        ttft_s=0.1,
        decode_tps=50.0,
        total_time_s=0.3,
        stop_reason=stop_reason,
    )


def _message(
    message_id: int, role: str, content: str, status: str = "complete", **kw: object
) -> MessageView:
    return MessageView(
        id=message_id,
        conversation_id=1,
        role=role,  # type: ignore[arg-type]
        content=content,
        status=status,  # type: ignore[arg-type]
        model_name="m",
        runtime="llamacpp",
        params={},
        stats=kw.get("stats", _stats() if role == "assistant" else None),  # type: ignore[arg-type]
        error="",
        created_at=datetime.now(UTC),
        branch_index=int(kw.get("branch_index", 1)),  # type: ignore[call-overload]
        branch_count=int(kw.get("branch_count", 1)),  # type: ignore[call-overload]
    )


def _hrefs(doc: QTextDocument) -> list[str]:
    found = []
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fmt = it.fragment().charFormat()
            if fmt.isAnchor():
                found.append(fmt.anchorHref())
            it += 1
        block = block.next()
    return found


def _anchor_position(doc: QTextDocument, href: str) -> int:
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            if fragment.charFormat().anchorHref() == href:
                return fragment.position() + fragment.length() // 2
            it += 1
        block = block.next()
    raise AssertionError(f"no anchor {href}")


def _transcript(qtbot) -> Transcript:
    view = Transcript(message_note)
    qtbot.addWidget(view)
    view.resize(700, 600)
    return view


def test_markdown_renders_headings_lists_tables_and_highlighted_code(qtbot) -> None:
    view = _transcript(qtbot)
    view.show_messages([_message(1, "assistant", REPLY)])
    doc = view.document()
    blocks = [doc.findBlockByNumber(i) for i in range(doc.blockCount())]
    assert any(b.text() == "Plan" and b.blockFormat().headingLevel() == 1 for b in blocks)
    assert [b.text() for b in blocks if b.textList() is not None] == ["first", "second"]
    tables = [f for f in doc.rootFrame().childFrames() if isinstance(f, QTextTable)]
    assert len(tables) == 1 and (tables[0].rows(), tables[0].columns()) == (2, 2)
    assert "https://example.org" in _hrefs(doc)
    code = next(b for b in blocks if b.text().startswith("def add"))
    colours = set()
    it = code.begin()
    while not it.atEnd():
        fmt = it.fragment().charFormat()
        assert fmt.font().fixedPitch() or fmt.fontFixedPitch() or fmt.fontFamilies()
        colours.add(fmt.foreground().color().name())
        it += 1
    assert len(colours) > 1
    assert "*" not in view.toPlainText() and "```" not in view.toPlainText()


def test_streaming_in_random_chunks_renders_like_the_whole_text(qtbot) -> None:
    whole = _transcript(qtbot)
    message = _message(2, "assistant", REPLY)
    whole.show_messages([message])
    rng = random.Random(3)
    for _ in range(5):
        streamed = _transcript(qtbot)
        streamed.begin_reply()
        i = 0
        while i < len(REPLY):
            n = rng.randint(1, 12)
            streamed.append_reply_text(REPLY[i : i + n])
            i += n
        streamed.end_reply(whole.source_text().splitlines()[-1], message=message)
        assert streamed.toPlainText() == whole.toPlainText()


def test_an_open_fence_streams_its_lines_and_highlights_when_closed(qtbot) -> None:
    view = _transcript(qtbot)
    view.begin_reply()
    view.append_reply_text("```python\n")
    for i in range(50):
        view.append_reply_text(f"x{i} = {i}\n")
    assert "x49 = 49" in view.toPlainText()
    assert "copy-code:0" not in _hrefs(view.document())
    view.append_reply_text("```\n\nafter")
    assert "copy-code:0" in _hrefs(view.document())
    assert view.toPlainText().endswith("x49 = 49\nafter")


def test_copy_link_puts_the_raw_code_on_the_clipboard(qtbot) -> None:
    view = _transcript(qtbot)
    view.show_messages([_message(1, "assistant", REPLY)])
    view.anchorClicked.emit(QUrl("copy-code:0"))
    assert QGuiApplication.clipboard().text() == "def add(a, b):\n    return a + b  # sum"
    view.anchorClicked.emit(QUrl("copy-msg:0"))
    assert QGuiApplication.clipboard().text() == REPLY


def test_reasoning_is_collapsed_and_toggles(qtbot) -> None:
    view = _transcript(qtbot)
    view.show_messages(
        [
            _message(1, "user", "q"),
            _message(2, "assistant", "<think>\nsecret plan here\n</think>\nOK"),
        ]
    )
    assert "▸ Reasoning (3 words)" in view.toPlainText()
    assert "secret plan" not in view.toPlainText()
    view.anchorClicked.emit(QUrl("think:1:0"))
    assert "▾ Reasoning" in view.toPlainText() and "secret plan here" in view.toPlainText()
    assert view.toPlainText().startswith("You\nq\n")  # the other message is untouched
    view.anchorClicked.emit(QUrl("think:1:0"))
    assert "secret plan" not in view.toPlainText()


def test_streaming_reasoning_shows_a_growing_word_count_not_the_text(qtbot) -> None:
    view = _transcript(qtbot)
    view.begin_reply()
    view.append_reply_text("<think>")
    view.append_reply_text("\nlet me")
    assert view.toPlainText().endswith("▸ Reasoning (2 words)")
    view.append_reply_text(" see\nmore words")
    assert view.toPlainText().endswith("▸ Reasoning (5 words)")
    view.append_reply_text("\n</think>\n\nAnswer")
    assert view.toPlainText().endswith("▸ Reasoning (5 words)\nAnswer")
    assert "let me" not in view.toPlainText()


def test_a_stray_think_close_collapses_what_came_before(qtbot) -> None:
    view = _transcript(qtbot)
    view.begin_reply()
    view.append_reply_text("pondering a lot\n\nstill\n")
    view.append_reply_text("</think>\n\nFinal.")
    view.end_reply("note")
    assert "pondering" not in view.toPlainText()
    assert "▸ Reasoning (4 words)" in view.toPlainText() and "Final." in view.toPlainText()


def test_controls_emit_actions_with_the_message_id(qtbot) -> None:
    view = _transcript(qtbot)
    view.show_messages(
        [
            _message(7, "user", "hi"),
            _message(8, "assistant", "yo", status="interrupted", branch_index=2, branch_count=3),
        ]
    )
    text = view.toPlainText()
    assert "Copy · Edit · Delete" in text
    assert "‹ 2/3 › · " in text and "Copy · Regenerate · Delete · Continue" in text
    actions: list[tuple[str, int]] = []
    view.action_requested.connect(lambda a, i: actions.append((a, i)))
    for href in (
        "action:edit:7",
        "action:delete:7",
        "action:prev:8",
        "action:next:8",
        "action:regenerate:8",
        "action:continue:8",
    ):
        assert href in _hrefs(view.document())
        view.anchorClicked.emit(QUrl(href))
    assert actions == [
        ("edit", 7),
        ("delete", 7),
        ("prev", 8),
        ("next", 8),
        ("regenerate", 8),
        ("continue", 8),
    ]


def test_continue_is_offered_only_for_a_short_last_reply(qtbot) -> None:
    view = _transcript(qtbot)
    view.show_messages(
        [_message(1, "assistant", "a", stats=_stats("length")), _message(2, "user", "b")]
    )
    assert "action:continue:1" not in _hrefs(view.document())
    view.show_messages([_message(1, "assistant", "a", stats=_stats("length"))])
    assert "action:continue:1" in _hrefs(view.document())
    view.append_user_message(_message(3, "user", "next"))
    assert "action:continue:1" not in _hrefs(view.document())


def test_no_controls_while_a_reply_streams(qtbot) -> None:
    view = _transcript(qtbot)
    view.begin_reply()
    view.append_reply_text("partial answer")
    assert not [h for h in _hrefs(view.document()) if h.startswith(("action:", "copy-msg:"))]
    view.end_reply("done", message=_message(4, "assistant", "partial answer"))
    assert "action:regenerate:4" in _hrefs(view.document())


def test_really_clicking_a_control_link_emits_its_action(qtbot) -> None:
    view = _transcript(qtbot)
    view.show()
    qtbot.waitExposed(view)
    view.show_messages([_message(5, "user", "hello"), _message(6, "assistant", "reply")])
    cursor = QTextCursor(view.document())
    cursor.setPosition(_anchor_position(view.document(), "action:delete:6"))
    point: QPoint = view.cursorRect(cursor).center()
    with qtbot.waitSignal(view.action_requested, timeout=2000) as blocker:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert blocker.args == ["delete", 6]


def test_external_links_open_in_the_browser_not_the_transcript(qtbot, monkeypatch) -> None:
    view = _transcript(qtbot)
    view.show_messages([_message(1, "assistant", REPLY)])
    opened: list[str] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toString()))
    before = view.toPlainText()
    view.anchorClicked.emit(QUrl("https://example.org"))
    assert opened == ["https://example.org"]
    assert view.toPlainText() == before


def test_code_colours_follow_a_dark_palette() -> None:
    dark = QPalette()
    dark.setColor(QPalette.ColorRole.Base, QColor("#1e1e1e"))
    dark.setColor(QPalette.ColorRole.Text, QColor("#dddddd"))
    light = QPalette()
    light.setColor(QPalette.ColorRole.Base, QColor("#ffffff"))
    light.setColor(QPalette.ColorRole.Text, QColor("#111111"))
    doc_dark, doc_light = QTextDocument(), QTextDocument()
    CodeFormats(dark).insert_highlighted(QTextCursor(doc_dark), "x = 'a'  # c", "python")
    CodeFormats(light).insert_highlighted(QTextCursor(doc_light), "x = 'a'  # c", "python")

    def lightness(doc: QTextDocument) -> list[int]:
        it, found = doc.lastBlock().begin(), []
        while not it.atEnd():
            found.append(it.fragment().charFormat().foreground().color().lightness())
            it += 1
        return found

    assert min(lightness(doc_dark)) > 100
    assert max(lightness(doc_light)) < 160
