"""Does the Compare window stay responsive while four panes stream? Prints stall figures.

Four panes stream from a fake opener at ~200 tokens/s each (Markdown with lists and code, so
the transcripts really render), in parallel, through the real window, worker, runner and
history database. A 1 ms QTimer heartbeat on the GUI thread measures how late each tick
comes: p50 / p99 / max of the gaps between ticks. Target: p99 ≤ 16 ms.

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m benchmarks.bench_compare_ui [--tokens 600]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QElapsedTimer, QTimer
from PySide6.QtWidgets import QApplication

from app.compare import CompareService
from app.compare_plan import PaneNeed
from app.eval_store import EvalStore
from app.model_session import RunFigures
from app.store import open_database
from runtimes.base import CancelToken, ChatMessage, ChatRequest, LoadOptions
from ui.compare_window import CompareServices, CompareWindow

WORDS = ("the", "model", "streams", "tokens", "into", "four", "panes", "at", "once", "while")
CHOICES = [(f"Fake {i} · Q4_K_M · llama.cpp", f"/fake/model-{i}.gguf") for i in range(4)]


def token_stream(count: int) -> list[str]:
    """Tokens of a Markdown reply: paragraphs, a list, and a code block now and then."""
    tokens: list[str] = []
    for i in range(count):
        if i % 120 == 60:
            tokens.append("\n\n```python\n")
        elif i % 120 == 90:
            tokens.append("\n```\n\n")
        elif i % 40 == 0:
            tokens.append("\n\n- ")
        tokens.append(WORDS[i % len(WORDS)] + " ")
    return tokens


class FastSession:
    """Streams `tokens` at `rate` tokens per second, in ~20 ms batches like the worker pipe."""

    def __init__(self, choice: str, tokens: list[str], rate: float) -> None:
        self.choice, self.name, self.runtime = choice, choice, "llamacpp"
        self.load_seconds: float | None = 0.0
        self._tokens, self._rate = tokens, rate

    def generate(
        self,
        request: ChatRequest,
        cancel: CancelToken,
        on_text: Callable[[str], None] | None = None,
    ) -> tuple[str, RunFigures]:
        start = time.perf_counter()
        per_batch = max(1, round(self._rate * 0.02))
        for i in range(0, len(self._tokens), per_batch):
            if cancel.cancelled:
                break
            if on_text is not None:
                on_text("".join(self._tokens[i : i + per_batch]))
            due = start + (i + per_batch) / self._rate
            time.sleep(max(0.0, due - time.perf_counter()))
        total = time.perf_counter() - start
        n = len(self._tokens)
        return "".join(self._tokens), RunFigures(0.0, 20.0, n / total, None, 10, n, total, None)

    def count_tokens(self, messages: tuple[ChatMessage, ...]) -> int | None:
        return None

    def close(self) -> None:
        pass


class FastOpener:
    def __init__(self, tokens: int, rate: float) -> None:
        self._tokens, self._rate = token_stream(tokens), rate

    def open(
        self, choice: str, load: LoadOptions | None = None, cancel: CancelToken | None = None
    ) -> FastSession:
        return FastSession(choice, self._tokens, self._rate)


def _needs(choices: Sequence[tuple[str, LoadOptions | None]]) -> tuple[PaneNeed, ...]:
    return tuple(PaneNeed(c, c, 2**20) for c, _ in choices)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=600, help="tokens per pane")
    parser.add_argument("--rate", type=float, default=200.0, help="tokens/s per pane")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication(sys.argv)
    with tempfile.TemporaryDirectory() as folder:
        database = open_database(Path(folder) / "bench.sqlite3")
        services = CompareServices(
            compare=CompareService(database),
            opener=FastOpener(args.tokens, args.rate),
            choices=lambda: list(CHOICES),
            hardware=lambda: None,
            pane_needs=_needs,
            eval_store=EvalStore(database),
            database=database,
        )
        window = CompareWindow(services)
        window.resize(1400, 900)
        window.show()
        page = window.compare
        page.set_pane_count(4)
        page.mode.setCurrentIndex(page.mode.findData("parallel"))
        gaps: list[float] = []
        clock = QElapsedTimer()
        heartbeat = QTimer()
        heartbeat.setInterval(1)

        def tick() -> None:
            gaps.append(clock.nsecsElapsed() / 1e6)
            clock.restart()

        heartbeat.timeout.connect(tick)
        page.turn_finished.connect(app.quit)
        page.input.setPlainText("Stream, please.")
        started = time.perf_counter()
        clock.start()
        heartbeat.start()
        page.send()
        app.exec()
        heartbeat.stop()
        elapsed = time.perf_counter() - started
        rows = page.summary.rows
        window.close()
    worst = max(range(len(gaps)), key=gaps.__getitem__)
    gaps = gaps[5:]  # the first ticks include the turn's start-up
    print(f"four panes × {args.tokens} tokens at {args.rate:.0f} tok/s each, parallel")
    print(f"turn wall time: {elapsed:.2f} s ({len(gaps)} heartbeats; worst at tick {worst})")
    print(
        f"GUI heartbeat gap (1 ms timer): p50 {statistics.median(gaps):.1f} ms, "
        f"p99 {percentile(gaps, 0.99):.1f} ms, max {max(gaps):.1f} ms (target p99 ≤ 16 ms)"
    )
    for row in rows:
        tps = row.figures.decode_tps if row.figures else 0.0
        print(f"  {row.name}: {row.status}, {tps:.0f} tok/s as streamed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
