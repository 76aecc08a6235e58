"""Context budget: token estimates, whether a history fits, and which messages to drop."""

from __future__ import annotations

from collections.abc import Sequence

from app.context_budget import (
    MESSAGE_OVERHEAD_TOKENS,
    PROMPT_OVERHEAD_TOKENS,
    ContextPlan,
    drop_oldest,
    estimate_prompt_tokens,
    estimate_tokens,
    plan_context,
)
from runtimes.base import ChatMessage


def _history(*contents: str, system: str = "") -> tuple[ChatMessage, ...]:
    messages = [ChatMessage("system", system)] if system else []
    roles = ("user", "assistant")
    messages += [ChatMessage(roles[i % 2], text) for i, text in enumerate(contents)]
    return tuple(messages)


def test_estimate_counts_a_token_per_four_bytes() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a") == 1
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("x" * 400) == 100


def test_estimate_counts_at_least_a_token_per_non_ascii_character() -> None:
    assert estimate_tokens("日本語のテキスト") == 8, "24 bytes would say 6"
    assert estimate_tokens("é" * 10) == 10


def test_prompt_estimate_adds_template_overhead() -> None:
    history = _history("abcd", "abcdefgh")
    assert estimate_prompt_tokens(history) == PROMPT_OVERHEAD_TOKENS + 1 + 2 + (
        2 * MESSAGE_OVERHEAD_TOKENS
    )


def test_a_short_history_fits_without_dropping() -> None:
    plan = plan_context(_history("hello"), n_ctx=2048, max_tokens=512)
    assert plan == ContextPlan(
        needed=PROMPT_OVERHEAD_TOKENS + 2 + MESSAGE_OVERHEAD_TOKENS,
        limit=2048,
        reserved=512,
        fits=True,
        drop_count=0,
        exact=False,
    )


def test_the_reply_reserve_is_capped_at_half_the_window() -> None:
    assert plan_context(_history("hi"), n_ctx=1000, max_tokens=4096).reserved == 500
    assert plan_context(_history("hi"), n_ctx=1000, max_tokens=0).reserved == 500


def _count_words(history: Sequence[ChatMessage]) -> int:
    """An exact-counter stand-in: one token per word, nothing else."""
    return sum(len(m.content.split()) for m in history)


def test_whole_exchanges_are_dropped_oldest_first() -> None:
    history = _history("a " * 40, "b " * 40, "c " * 40, "d " * 40, "last", system="sys")
    # 1 + 160 + 1 words; budget 60 - 10: one exchange leaves 82, two leave 2.
    plan = plan_context(history, n_ctx=60, max_tokens=10, count=_count_words)
    assert (plan.needed, plan.reserved, plan.fits, plan.drop_count, plan.exact) == (
        162,
        10,
        True,
        4,
        True,
    )
    assert [m.content for m in drop_oldest(history, 4)] == ["sys", "last"]


def test_drop_count_stays_on_exchange_boundaries() -> None:
    history = _history("a " * 40, "b " * 40, "c " * 5, "d " * 5, "last")
    # Dropping only "a" would fit; its reply "b" goes with it.
    plan = plan_context(history, n_ctx=70, max_tokens=10, count=_count_words)
    assert plan.drop_count == 2
    assert [m.content for m in drop_oldest(history, plan.drop_count)][-1] == "last"


def test_when_even_the_last_message_is_too_long_nothing_fits() -> None:
    history = _history("old", "reply", "word " * 500)
    plan = plan_context(history, n_ctx=200, max_tokens=50, count=_count_words)
    assert (plan.fits, plan.drop_count) == (False, -1)


def test_the_estimate_is_used_without_a_counter() -> None:
    history = _history("x" * 4000, "y" * 4000, "question")
    plan = plan_context(history, n_ctx=2048, max_tokens=256)
    assert (plan.exact, plan.fits, plan.drop_count) == (False, True, 2)
    assert plan.needed == estimate_prompt_tokens(history)


def test_drop_oldest_keeps_system_messages_and_the_last_message() -> None:
    history = (
        ChatMessage("system", "s1"),
        ChatMessage("user", "u1"),
        ChatMessage("system", "s2"),
        ChatMessage("assistant", "a1"),
        ChatMessage("user", "u2"),
    )
    assert [m.content for m in drop_oldest(history, 1)] == ["s1", "s2", "a1", "u2"]
    assert [m.content for m in drop_oldest(history, 99)] == ["s1", "s2", "u2"]
    assert drop_oldest(history, 0) == history
