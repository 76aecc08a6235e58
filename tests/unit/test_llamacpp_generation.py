"""GenerationRun: token pieces to text, stops, counts and stop reasons (fake tokens, no llama)."""

from __future__ import annotations

from collections.abc import Callable

from runtimes.llamacpp.generation import GenerationRun
from runtimes.llamacpp.textstream import StopMatcher

END = 0
PIECES = {1: b"Hel", 2: b"lo", 3: b" \xc3", 4: b"\xa9t\xc3\xa9", 5: b" STOP", 6: b" more"}


def _run(
    tokens: list[int],
    *,
    max_new: int = 100,
    stops: tuple[str, ...] = (),
    cancelled: Callable[[], bool] = lambda: False,
) -> tuple[str, GenerationRun, str]:
    out: list[str] = []
    run = GenerationRun(
        prompt_tokens=4,
        is_end=lambda t: t == END,
        detokenize=lambda ts: b"".join(PIECES[t] for t in ts),
        matcher=StopMatcher(stops),
        on_text=out.append,
    )
    reason = run.consume(iter(tokens), max_new, cancelled)
    return "".join(out), run, reason


def test_utf8_split_across_tokens_is_joined() -> None:
    text, run, reason = _run([1, 2, 3, 4, END])
    assert text == "Hello été"
    assert (reason, run.completion_tokens, run.sampled) == ("stop", 4, 5)


def test_end_token_is_not_counted_or_shown() -> None:
    text, run, _reason = _run([1, END, 2])
    assert (text, run.completion_tokens) == ("Hel", 1)


def test_max_new_tokens_ends_with_length() -> None:
    text, run, reason = _run([1, 2, 6, 6, 6], max_new=2)
    assert (text, run.completion_tokens, reason) == ("Hello", 2, "length")


def test_stop_string_ends_with_stop_and_is_cut() -> None:
    text, run, reason = _run([1, 2, 5, 6], stops=("STOP",))
    assert (text, reason, run.completion_tokens) == ("Hello ", "stop", 3)


def test_cancel_is_checked_after_each_token() -> None:
    calls = iter([False, False, True])
    text, run, reason = _run([1, 2, 6, 6], cancelled=lambda: next(calls))
    assert (text, reason, run.completion_tokens) == ("Hello", "cancelled", 2)


def test_stats_carry_counts_and_reason() -> None:
    _text, run, reason = _run([1, 2, END])
    stats = run.stats(reason, started=run.first - 0.5 if run.first else 0.0)
    assert (stats.prompt_tokens, stats.completion_tokens, stats.stop_reason) == (4, 2, "stop")
    assert stats.load_time_s == 0.0
    assert abs(stats.ttft_s - 0.5) < 1e-6
    assert stats.decode_tps > 0
