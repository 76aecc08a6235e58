"""Pure helpers of the token stream: BOS placement, stop strings, and text batching."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence


def normalize_bos(tokens: Sequence[int], bos_id: int, want_bos: bool) -> list[int]:
    """Make a prompt start with exactly one BOS token when the model wants one, else none.

    Chat templates often write the BOS text themselves while the tokenizer adds BOS too;
    a doubled BOS degrades replies. Leading BOS tokens are dropped, then one is put back.

    Args:
        tokens: the prompt's token ids as tokenized (special tokens parsed).
        bos_id: the vocabulary's BOS id (-1 when it has none).
        want_bos: whether the vocabulary asks for BOS (`tokenizer.ggml.add_bos_token`) or the
            template wrote one.
    """
    if bos_id < 0:
        return list(tokens)
    start = 0
    while start < len(tokens) and tokens[start] == bos_id:
        start += 1
    body = list(tokens[start:])
    return [bos_id, *body] if want_bos else body


class StopMatcher:
    """Finds stop strings in streamed text, holding back text that may begin one.

    Feed text pieces in order; each call returns the text that is safe to show. Once a stop
    string is seen, `stopped` is True and the text from the stop string on is dropped.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._pending = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """Add a piece of text; return what can be released now."""
        if self.stopped:
            return ""
        if not self._stops:
            return text
        pending = self._pending + text
        cut = min((i for i in (pending.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._pending = ""
            return pending[:cut]
        hold = self._partial_suffix(pending)
        self._pending = pending[len(pending) - hold :] if hold else ""
        return pending[: len(pending) - hold]

    def flush(self) -> str:
        """Release held-back text at the end of the stream (it did not become a stop)."""
        out, self._pending = self._pending, ""
        return "" if self.stopped else out

    def _partial_suffix(self, text: str) -> int:
        """Length of the longest suffix of `text` that is a proper prefix of a stop string."""
        best = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:n]):
                    best = n
                    break
        return best


class TextBatcher:
    """Collects text pieces and sends them in batches, at most every `interval_s` seconds.

    The first piece goes out at once (time to first token matters to the user); later
    pieces wait until the interval has passed. This keeps pipe traffic to ~50 messages a
    second however fast the model decodes.
    """

    def __init__(
        self,
        send: Callable[[str], None],
        interval_s: float = 0.02,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._send = send
        self._interval = interval_s
        self._clock = clock
        self._parts: list[str] = []
        self._last_sent: float | None = None

    def add(self, text: str) -> None:
        """Queue a piece; send the batch when the interval has passed."""
        if not text:
            return
        self._parts.append(text)
        now = self._clock()
        if self._last_sent is None or now - self._last_sent >= self._interval:
            self._emit(now)

    def flush(self) -> None:
        """Send whatever is queued."""
        if self._parts:
            self._emit(self._clock())

    def _emit(self, now: float) -> None:
        text = "".join(self._parts)
        self._parts.clear()
        self._last_sent = now
        self._send(text)
