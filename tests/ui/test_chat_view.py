"""The chat view on its own: streaming appends at the tail, Enter/Shift+Enter, Esc."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from PySide6.QtCore import Qt, QUrl

from app.chat import MessageView
from runtimes.base import GenerationStats
from ui.chat_view import ChatView, metrics_line


def _stats(**overrides: object) -> GenerationStats:
    values: dict[str, object] = {
        "prompt_tokens": 12,
        "completion_tokens": 30,
        "load_time_s": 0.0,
        "ttft_s": 0.125,
        "decode_tps": 88.44,
        "total_time_s": 0.5,
        "stop_reason": "stop",
    }
    values.update(overrides)
    return GenerationStats(**values)  # type: ignore[arg-type]


def _message(role: str, content: str, status: str = "complete", **kw: object) -> MessageView:
    return MessageView(
        id=1,
        conversation_id=1,
        role=role,
        content=content,
        status=status,
        model_name="SmolLM2",
        runtime="llamacpp",
        params={},
        stats=kw.get("stats"),  # type: ignore[arg-type]
        error=str(kw.get("error", "")),
        created_at=datetime.now(UTC),
    )


def test_streaming_never_touches_earlier_blocks(qtbot) -> None:
    view = ChatView()
    qtbot.addWidget(view)
    view.show_messages([_message("user", "hi"), _message("assistant", "hello", stats=_stats())])
    doc = view.transcript.document()
    earlier = [
        (doc.findBlockByNumber(i).revision(), doc.findBlockByNumber(i).text())
        for i in range(doc.blockCount())
    ]
    view.append_user_message(_message("user", "tell me more"))
    view.begin_reply()
    for i in range(500):
        view.append_reply_text(f"tok{i} ")
    for i, (revision, text) in enumerate(earlier):
        block = doc.findBlockByNumber(i)
        assert (block.revision(), block.text()) == (revision, text)
    assert view.reply_text().endswith("tok499 ")


def test_streaming_does_not_leak_references_to_none(qtbot) -> None:
    # PySide6 6.12.0's QTextCursor.insertText dropped a reference to None per call, which
    # aborts the interpreter ("none_dealloc") once a long reply has streamed.
    view = ChatView()
    qtbot.addWidget(view)
    view.begin_reply()
    before = sys.getrefcount(None)
    for _ in range(2000):
        view.append_reply_text("x")
    assert sys.getrefcount(None) >= before - 50


def test_enter_sends_and_shift_enter_adds_a_line(qtbot) -> None:
    view = ChatView()
    qtbot.addWidget(view)
    sent: list[str] = []
    view.send_requested.connect(sent.append)
    qtbot.keyClicks(view.input, "first line")
    qtbot.keyClick(view.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(view.input, "second")
    assert sent == []
    qtbot.keyClick(view.input, Qt.Key.Key_Return)
    assert sent == ["first line\nsecond"]
    # The text stays until the controller says the message is stored.
    assert view.input.toPlainText() == "first line\nsecond"
    view.accept_sent()
    assert view.input.toPlainText() == ""


def test_blank_input_is_not_sent_and_busy_blocks_sending(qtbot) -> None:
    view = ChatView()
    qtbot.addWidget(view)
    sent: list[str] = []
    view.send_requested.connect(sent.append)
    qtbot.keyClicks(view.input, "   ")
    qtbot.keyClick(view.input, Qt.Key.Key_Return)
    view.input.setPlainText("hello")
    view.set_busy(True)
    qtbot.keyClick(view.input, Qt.Key.Key_Return)
    assert sent == []
    assert view.stop_button.isEnabled()


def test_escape_requests_stop_only_while_busy(qtbot) -> None:
    view = ChatView()
    qtbot.addWidget(view)
    stops: list[bool] = []
    view.stop_requested.connect(lambda: stops.append(True))
    qtbot.keyClick(view, Qt.Key.Key_Escape)
    assert stops == []
    view.set_busy(True)
    qtbot.keyClick(view, Qt.Key.Key_Escape)
    assert stops == [True]


def test_history_shows_interrupted_replies_and_metrics(qtbot) -> None:
    view = ChatView()
    qtbot.addWidget(view)
    view.show_messages(
        [
            _message("user", "count"),
            _message("assistant", "one two", status="interrupted", error="worker died"),
            _message("user", "again"),
            _message("assistant", "one two three", stats=_stats()),
        ]
    )
    text = view.reply_text()
    assert "interrupted: worker died" in text
    assert "88.4 tok/s" in text
    assert "TTFT 125 ms" in text


def test_metrics_line_names_the_stop_reason() -> None:
    assert metrics_line(_stats(stop_reason="length")).endswith("hit max tokens")
    assert metrics_line(_stats(stop_reason="cancelled")).endswith("stopped")
    assert "load 1.5 s" in metrics_line(_stats(load_time_s=1.5))


def test_metrics_line_names_the_runtime() -> None:
    line = metrics_line(_stats(), "Qwen 2.5 7B · Q4_K_M", "llamacpp")
    assert line.startswith("Qwen 2.5 7B · Q4_K_M · llama.cpp · ")
    assert " · Ollama · " in metrics_line(_stats(), "llama3.2", "ollama")
    assert " · vllm-box · " in metrics_line(_stats(), "m", "openai:vllm-box")


def test_append_user_message_takes_the_stored_message(qtbot) -> None:
    view = ChatView()
    qtbot.addWidget(view)
    actions: list[tuple[str, int]] = []
    view.action_requested.connect(lambda a, i: actions.append((a, i)))
    view.append_user_message(_message("user", "stored"))
    view.transcript.anchorClicked.emit(QUrl("action:edit:1"))
    assert actions == [("edit", 1)]
    assert view.reply_text() == "You\nstored"


def test_edit_mode_sends_an_edit_and_escape_restores_the_draft(qtbot) -> None:
    view = ChatView()
    qtbot.addWidget(view)
    sent: list[str] = []
    edits: list[tuple[int, str]] = []
    view.send_requested.connect(sent.append)
    view.edit_submitted.connect(lambda i, t: edits.append((i, t)))
    view.input.setPlainText("half-typed draft")
    view.start_edit(42, "old question")
    assert view.editing_message_id == 42
    assert view.input.toPlainText() == "old question"
    assert not view.edit_bar.isHidden()
    qtbot.keyClicks(view.input, " fixed")
    qtbot.keyClick(view.input, Qt.Key.Key_Return)
    assert edits == [(42, "old question fixed")] and sent == []
    qtbot.keyClick(view.input, Qt.Key.Key_Escape)
    assert view.editing_message_id is None
    assert view.input.toPlainText() == "half-typed draft"
    assert view.edit_bar.isHidden()
    qtbot.keyClick(view.input, Qt.Key.Key_Return)
    assert sent == ["half-typed draft"]


def test_cancel_link_and_accept_sent_leave_edit_mode(qtbot) -> None:
    view = ChatView()
    qtbot.addWidget(view)
    view.start_edit(3, "text")
    view.edit_bar.linkActivated.emit("cancel")
    assert view.editing_message_id is None and view.input.toPlainText() == ""
    view.input.setPlainText("draft")
    view.start_edit(3, "text")
    view.accept_sent()
    assert view.editing_message_id is None and view.input.toPlainText() == "draft"
