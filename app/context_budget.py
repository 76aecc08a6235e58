"""Will a conversation fit the model's context? Token estimates and what to drop if not.

Without the model's tokenizer at hand the count is estimated: `estimate_tokens` takes one
token per 4 bytes of UTF-8, and at least one per non-ASCII character. Byte-level BPE
vocabularies of current open models (Llama 3, Qwen 2.5, Gemma 3, SmolLM2) average about
4 to 4.5 bytes per token on English prose and code, so the estimate is a little high
there (the safe side); CJK text runs near one token per character, which the per-character
floor covers (a 3-byte character alone would count only 0.75). When a loaded model can
count exactly, pass its counter as `count`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from runtimes.base import ChatMessage

BYTES_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
"""Template tokens around each message (role header, separators, end-of-turn)."""
PROMPT_OVERHEAD_TOKENS = 3
"""BOS plus the generation prompt that opens the assistant's turn."""

TokenCounter = Callable[[Sequence[ChatMessage]], int]


@dataclass(frozen=True, slots=True)
class ContextPlan:
    """How a request fits the context window.

    Attributes:
        needed: prompt tokens of the whole history.
        limit: the context length (n_ctx).
        reserved: tokens kept free for the reply.
        fits: whether the history, after dropping `drop_count` messages, fits.
        drop_count: how many of the oldest non-system messages must go (0 when it fits
            as is; -1 when even keeping only the system messages and the last message
            is too much).
        exact: whether `needed` came from the model's tokenizer rather than an estimate.
    """

    needed: int
    limit: int
    reserved: int
    fits: bool
    drop_count: int
    exact: bool


def estimate_tokens(text: str) -> int:
    """An estimate of the tokens in `text` (see the module docstring for the rule)."""
    if not text:
        return 0
    by_bytes = math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)
    non_ascii = sum(1 for char in text if ord(char) > 0x7F)
    return max(1, by_bytes, non_ascii)


def estimate_prompt_tokens(history: Sequence[ChatMessage]) -> int:
    """Estimated prompt tokens of a whole history, template overhead included."""
    return PROMPT_OVERHEAD_TOKENS + sum(
        estimate_tokens(message.content) + MESSAGE_OVERHEAD_TOKENS for message in history
    )


def drop_oldest(history: Sequence[ChatMessage], n: int) -> tuple[ChatMessage, ...]:
    """`history` without its `n` oldest non-system messages; system ones and the last stay."""
    dropped = 0
    kept: list[ChatMessage] = []
    last = len(history) - 1
    for index, message in enumerate(history):
        if dropped < n and message.role != "system" and index != last:
            dropped += 1
            continue
        kept.append(message)
    return tuple(kept)


def plan_context(
    history: Sequence[ChatMessage],
    n_ctx: int,
    max_tokens: int,
    count: TokenCounter | None = None,
) -> ContextPlan:
    """Whether `history` plus a reply of up to `max_tokens` fits `n_ctx`, and what to drop.

    The reply gets `min(max_tokens, n_ctx // 2)` tokens: a reply longer than half the
    window is capped rather than crowding out the whole conversation. Messages are
    dropped oldest first in whole exchanges (a user message with the replies after it),
    never system messages nor the final message.

    Args:
        history: the messages to send, oldest first.
        n_ctx: the context length of the loaded model.
        max_tokens: the reply's token limit (0 or less: no limit, half the window).
        count: the model's exact prompt token counter, if it has one.
    """
    measure = count or estimate_prompt_tokens
    reserved = min(max_tokens, n_ctx // 2) if max_tokens > 0 else n_ctx // 2
    budget = n_ctx - reserved
    needed = measure(history)
    if needed <= budget:
        return ContextPlan(needed, n_ctx, reserved, True, 0, count is not None)
    # Dropping more never needs more tokens, so the smallest cut that fits is found by
    # bisection: a few calls to an exact (slow) counter even for a long conversation.
    cuts = _exchange_cuts(history)
    low, high = 0, len(cuts)
    while low < high:
        middle = (low + high) // 2
        if measure(drop_oldest(history, cuts[middle])) <= budget:
            high = middle
        else:
            low = middle + 1
    if low == len(cuts):
        return ContextPlan(needed, n_ctx, reserved, False, -1, count is not None)
    return ContextPlan(needed, n_ctx, reserved, True, cuts[low], count is not None)


def _exchange_cuts(history: Sequence[ChatMessage]) -> list[int]:
    """Message counts that end at an exchange boundary: 1st, 2nd... exchange dropped."""
    droppable = [m for m in history[:-1] if m.role != "system"]
    cuts = [i for i in range(1, len(droppable)) if droppable[i].role == "user"]
    cuts.append(len(droppable))
    return [cut for cut in cuts if cut > 0]
