"""The chat view on its own: streaming appends at the tail, Enter/Shift+Enter, Esc."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from PySide6.QtCore import Qt

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
    view.append_user_message("tell me more")
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
