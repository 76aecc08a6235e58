"""BOS placement, stop strings and text batching of the llama.cpp worker (pure helpers)."""

from __future__ import annotations

from runtimes.llamacpp.textstream import StopMatcher, TextBatcher, normalize_bos


def test_doubled_bos_becomes_one() -> None:
    assert normalize_bos([2, 2, 105, 7], bos_id=2, want_bos=True) == [2, 105, 7]


def test_missing_bos_is_added_when_wanted() -> None:
    assert normalize_bos([105, 7], bos_id=2, want_bos=True) == [2, 105, 7]


def test_bos_is_removed_when_not_wanted() -> None:
    assert normalize_bos([2, 105, 2], bos_id=2, want_bos=False) == [105, 2]


def test_vocab_without_bos_leaves_tokens_alone() -> None:
    assert normalize_bos([5, 6], bos_id=-1, want_bos=True) == [5, 6]


def _feed_all(matcher: StopMatcher, pieces: list[str]) -> str:
    out = "".join(matcher.feed(p) for p in pieces)
    return out + matcher.flush()


def test_stop_string_split_across_pieces_is_cut() -> None:
    matcher = StopMatcher(["STOP"])
    assert _feed_all(matcher, ["Hello S", "T", "OP and more"]) == "Hello "
    assert matcher.stopped


def test_partial_stop_is_held_back_then_released() -> None:
    matcher = StopMatcher(["STOP"])
    assert matcher.feed("Hello ST") == "Hello "
    assert matcher.feed("AR") == "STAR"
    assert matcher.flush() == ""
    assert not matcher.stopped


def test_partial_stop_at_end_is_flushed() -> None:
    matcher = StopMatcher(["</s>"])
    assert matcher.feed("abc</") == "abc"
    assert matcher.flush() == "</"


def test_earliest_of_several_stops_wins() -> None:
    matcher = StopMatcher(["zzz", "b"])
    assert _feed_all(matcher, ["a b zzz"]) == "a "


def test_no_stops_passes_text_through() -> None:
    matcher = StopMatcher([])
    assert matcher.feed("x") == "x"
    assert not matcher.stopped


def test_nothing_after_a_stop() -> None:
    matcher = StopMatcher(["."])
    assert matcher.feed("a.b") == "a"
    assert matcher.feed("more") == ""
    assert matcher.flush() == ""


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_batcher_sends_first_piece_at_once_then_batches() -> None:
    sent: list[str] = []
    clock = _Clock()
    batcher = TextBatcher(sent.append, interval_s=0.02, clock=clock)
    batcher.add("a")
    clock.now = 0.005
    batcher.add("b")
    clock.now = 0.01
    batcher.add("c")
    assert sent == ["a"]
    clock.now = 0.021
    batcher.add("d")
    assert sent == ["a", "bcd"]
    batcher.add("e")
    batcher.flush()
    assert sent == ["a", "bcd", "e"]


def test_batcher_ignores_empty_pieces_and_empty_flush() -> None:
    sent: list[str] = []
    batcher = TextBatcher(sent.append, clock=_Clock())
    batcher.add("")
    batcher.flush()
    assert sent == []
