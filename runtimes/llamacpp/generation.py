"""One generation's bookkeeping: token-to-text decoding, stop strings, counts and timings.

Pure Python over callables, so it runs without llama.cpp (the worker's engine feeds it).
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable, Iterator

from runtimes.base import GenerationStats, StopReason
from runtimes.llamacpp.textstream import StopMatcher


class GenerationRun:
    """The bookkeeping of one generation: text decoding, stops, counts and times."""

    def __init__(
        self,
        *,
        prompt_tokens: int,
        is_end: Callable[[int], bool],
        detokenize: Callable[[list[int]], bytes],
        matcher: StopMatcher,
        on_text: Callable[[str], None],
    ) -> None:
        self._prompt_tokens = prompt_tokens
        self._is_end = is_end
        self._detokenize = detokenize
        self._matcher = matcher
        self._on_text = on_text
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.completion_tokens = 0
        self.sampled = 0
        self.first: float | None = None
        self.last = 0.0

    def consume(
        self, tokens: Iterator[int], max_new: int, cancelled: Callable[[], bool]
    ) -> StopReason:
        """Pull tokens until a stop, the limit, or a cancel; return why it ended."""
        reason: StopReason = "length"
        if cancelled():
            return "cancelled"
        detokenize = self._detokenize
        for token in tokens:
            self.last = time.perf_counter()
            if self.first is None:
                self.first = self.last
            self.sampled += 1
            if self._is_end(int(token)):
                reason = "stop"
                break
            self.completion_tokens += 1
            self._emit(self._decoder.decode(detokenize([token])))
            if self._matcher.stopped:
                reason = "stop"
                break
            if self.completion_tokens >= max_new:
                break
            if cancelled():
                reason = "cancelled"
                break
        if not self._matcher.stopped:
            self._emit(self._decoder.decode(b"", final=True))
            self._on_text(self._matcher.flush())
        return reason

    def _emit(self, text: str) -> None:
        if text:
            self._on_text(self._matcher.feed(text))

    def stats(self, reason: StopReason, started: float) -> GenerationStats:
        """The figures of this run; decode speed counts every sampled token after the first."""
        end = time.perf_counter()
        first = self.first if self.first is not None else end
        span = self.last - first
        tps = (self.sampled - 1) / span if self.sampled > 1 and span > 0 else 0.0
        return GenerationStats(
            prompt_tokens=self._prompt_tokens,
            completion_tokens=self.completion_tokens,
            load_time_s=0.0,
            ttft_s=first - started,
            decode_tps=tps,
            total_time_s=end - started,
            stop_reason=reason,
        )
