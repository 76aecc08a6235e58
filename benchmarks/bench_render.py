"""Markdown rendering cost of a streaming reply, and main-thread stalls at 200 tok/s (offscreen).

Part one streams a 4,000-token reply into a ChatView one token per call and times each
`append_reply_text` (with the layout/paint that follows), for prose (paragraphs with lists) and
for one long fenced code block; it prints the mean cost per token around token 10 and around
token 4,000 and their ratio (target ≤ 1.2). Part two feeds 200 tok/s from a QTimer-driven fake
runtime through the controller's 40 ms coalescing and prints the gaps of a 1 ms heartbeat
timer (target p99 ≤ 16 ms):

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_render.py
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QElapsedTimer, QTimer
from PySide6.QtWidgets import QApplication

from app.chat import MessageView
from ui.chat_view import ChatView

TOKENS = 4000
WINDOW = 10  # tokens either side of a checkpoint
PROSE_CYCLE = 46  # tokens per paragraph + list in prose_tokens()
CODE_CYCLE = 10  # tokens per function in code_tokens()


def prose_tokens() -> Iterator[str]:
    """Paragraphs with emphasis and code spans, then a short list, repeated."""
    n = 0
    while True:
        for i in range(40):
            yield ("**word** " if i == 7 else "`code` " if i == 21 else "word ")
        yield "\n\n"
        for item in range(4):
            yield f"- item {n} {item} with text\n"
        yield "\n"
        n += 1


def code_tokens() -> Iterator[str]:
    """One fenced Python block that never closes within the run."""
    yield "Here is the code:\n\n```python\n"
    n = 0
    while True:
        yield from ("def ", f"f{n}", "(x", "):", "\n", "    return ", "x ", "+ ", f"{n}", "\n")
        n += 1


def history() -> list[MessageView]:
    """An earlier exchange, long enough that the transcript already scrolls."""
    return [
        MessageView(
            id=i,
            conversation_id=1,
            role="user" if i % 2 == 0 else "assistant",
            content="Earlier message. " * 80,
            status="complete",
            model_name="",
            runtime="",
            params={},
            stats=None,
            error="",
            created_at=datetime.now(UTC),
        )
        for i in range(4)
    ]


def per_token_costs(
    tokens: Iterator[str], shown: bool = True, with_history: bool = True
) -> list[float]:
    """Seconds per append (with processEvents, as the event loop would lay out and paint).

    With `shown` False the widget is never shown, so Qt does no layout or paint: what is
    left is the transcript's own work (splitting, removing and inserting the tail). Without
    `with_history` the reply starts in an empty transcript, so the first tokens are measured
    before the scroll bar appears (each height change then repaints it, about 1 ms offscreen).
    """
    app = QApplication.instance() or QApplication([])
    view = ChatView()
    view.resize(900, 700)
    if shown:
        view.show()
    if with_history:
        view.show_messages(history())
    app.processEvents()
    view.begin_reply()
    costs = []
    for _ in range(TOKENS + WINDOW):
        token = next(tokens)
        start = time.perf_counter()
        view.append_reply_text(token)
        app.processEvents()
        costs.append(time.perf_counter() - start)
    view.close()
    return costs


def best_of(
    runs: int, tokens: Callable[[], Iterator[str]], shown: bool = True, with_history: bool = True
) -> list[float]:
    """Per-token minimum over a few runs: the usual way to take scheduler noise out."""
    results = [per_token_costs(tokens(), shown, with_history) for _ in range(runs)]
    return [min(values) for values in zip(*results, strict=True)]


def report(name: str, costs: list[float], cycle: int) -> None:
    """Mean cost per token around token 10 and around token 4,000, at the same place in the
    text's repeating pattern (`cycle` tokens: paragraph + list, or one function), and over
    whole cycles near the start and the end."""
    late_start = 5 + cycle * ((TOKENS - 5) // cycle)
    early = statistics.mean(costs[5:15])
    late = statistics.mean(costs[late_start : late_start + 10])
    span = cycle * max(1, 200 // cycle)
    wide_early = statistics.mean(costs[1 : 1 + span])
    wide_late = statistics.mean(costs[late_start - span : late_start])
    print(
        f"{name:>6}: token 5-15 {early * 1000:6.3f} ms | token {late_start}-{late_start + 10} "
        f"{late * 1000:6.3f} ms | ratio {late / early:4.2f}   (first {span} tokens vs the "
        f"{span} before: {wide_early * 1000:.3f} / {wide_late * 1000:.3f} ms, "
        f"ratio {wide_late / wide_early:4.2f})"
    )


def stalls(seconds: float = 6.0, rate: int = 200) -> list[float]:
    """Heartbeat gaps (ms) while a fake runtime streams prose+code at `rate` tok/s."""
    app = QApplication.instance() or QApplication([])
    view = ChatView()
    view.resize(900, 700)
    view.show()
    view.begin_reply()
    source = _mixed_tokens()
    buffer: list[str] = []
    producer, drain, beat = QTimer(), QTimer(), QTimer()
    producer.setInterval(5)  # 200 tok/s: one token every 5 ms
    producer.timeout.connect(lambda: buffer.extend(next(source) for _ in range(rate // 200)))
    drain.setInterval(40)

    def flush() -> None:
        if buffer:
            text = "".join(buffer)
            buffer.clear()
            view.append_reply_text(text)

    drain.timeout.connect(flush)
    gaps: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def tick() -> None:
        now = clock.nsecsElapsed()
        gaps.append((now - last[0]) / 1e6)
        last[0] = now

    beat.setInterval(1)
    beat.timeout.connect(tick)
    for timer in (producer, drain, beat):
        timer.start()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.0002)
    for timer in (producer, drain, beat):
        timer.stop()
    view.close()
    return gaps


def _mixed_tokens() -> Iterator[str]:
    prose, code = prose_tokens(), code_tokens()
    while True:
        for _ in range(300):
            yield next(prose)
        yield "\n\n```python\n"
        for _ in range(300):
            yield next(code).replace("```python", "")
        yield "\n```\n\n"


def main() -> None:
    """Print both parts."""
    runs = 3
    cases = (("prose", prose_tokens, PROSE_CYCLE), ("code", code_tokens, CODE_CYCLE))
    print(f"Cost per append_reply_text of 1 token, best of {runs} runs of 4,000 tokens:")
    print(" after an earlier exchange (the transcript scrolls from the first token):")
    for name, tokens, cycle in cases:
        report(name, best_of(runs, tokens), cycle)
    print(" in an empty transcript (the scroll bar appears after a few lines):")
    for name, tokens, cycle in cases:
        report(name, best_of(runs, tokens, with_history=False), cycle)
    print(" widget hidden (no Qt layout or paint: the transcript's own work only):")
    for name, tokens, cycle in cases:
        report(name, best_of(runs, tokens, shown=False), cycle)
    gaps = stalls()
    ordered = sorted(gaps)
    q = statistics.quantiles(ordered, n=100)
    print(
        f"Heartbeat (1 ms timer) gaps at 200 tok/s with 40 ms coalescing, {len(gaps)} beats: "
        f"p50 {q[49]:.2f} ms, p99 {q[98]:.2f} ms, max {ordered[-1]:.2f} ms "
        f"(next largest {ordered[-2]:.2f}, {ordered[-3]:.2f} ms)"
    )


if __name__ == "__main__":
    main()
