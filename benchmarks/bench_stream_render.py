"""Cost of appending streamed text to the chat view as the reply grows (offscreen Qt).

Prints the mean time per 40 ms flush (5 tokens) at several reply lengths, side by side, so
the claim "cost per token does not grow with the message" is a figure, not a hope:

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_stream_render.py
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication

from ui.chat_view import ChatView

CHECKPOINTS = (100, 1000, 2000, 4000, 8000)
FLUSH = "word " * 5


def run(paragraph_every: int) -> dict[int, float]:
    """Stream 8,000 tokens in flushes of 5; mean time of the last 100 flushes at checkpoints."""
    app = QApplication.instance() or QApplication([])
    view = ChatView()
    view.resize(900, 700)
    view.show()
    view.begin_reply()
    tokens = 0
    results: dict[int, float] = {}
    window: list[float] = []
    while tokens < CHECKPOINTS[-1]:
        start = time.perf_counter()
        view.append_reply_text(FLUSH + ("\n\n" if tokens % paragraph_every == 0 else ""))
        app.processEvents()  # layout and paint, as the event loop would
        window.append(time.perf_counter() - start)
        tokens += 5
        window = window[-100:]
        if tokens in CHECKPOINTS:
            results[tokens] = sum(window) / len(window)
    view.close()
    return results


def main() -> None:
    """Print both cases side by side: paragraphs of ~80 tokens, and one endless paragraph."""
    normal = run(paragraph_every=80)
    worst = run(paragraph_every=10**9)
    print(
        "reply length | ms/flush, paragraphs of 80 tokens (ratio) | ms/flush, one paragraph (ratio)"
    )
    for n in CHECKPOINTS:
        a, b = normal[n], worst[n]
        ra, rb = a / normal[CHECKPOINTS[0]], b / worst[CHECKPOINTS[0]]
        print(f"{n:>12} | {a * 1000:>30.3f} ({ra:4.2f}) | {b * 1000:>22.3f} ({rb:5.2f})")


if __name__ == "__main__":
    main()
