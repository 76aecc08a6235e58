"""Continuing a cut reply and counting prompt tokens, with real SmolLM2 in a worker process.

Measured here (SmolLM2 Q4_1, CPU, greedy): a reply cut at N tokens and continued right away
for N more equals the 2N-token reply when `repeat_penalty` is 1.0. It may differ when the
penalty is on (llama.cpp's penalty window holds only the tokens sampled in the current run,
so the cut-off part no longer counts) or when the prompt cache was lost in between (the
partial reply is then evaluated in one batch, whose logits differ in the last bits from
token-by-token decoding). So the equality asserted below is for the "Continue" button's
case: penalty off, right after the cut.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runtimes.base import (
    CancelToken,
    ChatMessage,
    ChatRequest,
    Done,
    GenerationParams,
    GenerationStats,
    LoadOptions,
    join_text,
)
from runtimes.errors import RuntimeBusy, UserFacingError
from runtimes.llamacpp import LlamaCppModel, LlamaCppRuntime

pytestmark = pytest.mark.integration

OPTIONS = LoadOptions(n_ctx=1024, n_threads=2)
STORY = (ChatMessage("user", "Write a very long story about a dragon who learns to cook."),)
FRUITS = (ChatMessage("user", "List five fruits."),)
QUESTION = (
    ChatMessage("system", "Be brief."),
    ChatMessage("user", "What is the capital of France?"),
)
TALK = (
    *QUESTION,
    ChatMessage("assistant", "Paris."),
    ChatMessage("user", "And of Italy?"),
)


def _greedy(max_tokens: int) -> GenerationParams:
    return GenerationParams(temperature=0.0, seed=7, max_tokens=max_tokens, repeat_penalty=1.0)


def _reply(model: LlamaCppModel, request: ChatRequest) -> tuple[str, GenerationStats]:
    events = list(model.chat(request, CancelToken()))
    done = events[-1]
    assert isinstance(done, Done)
    return join_text(events), done.stats


@pytest.fixture(scope="module")
def smollm2(smollm2_path: Path) -> Iterator[LlamaCppModel]:
    model = LlamaCppRuntime().load(str(smollm2_path), OPTIONS)
    yield model
    model.unload()


@pytest.mark.parametrize("messages", [STORY, FRUITS], ids=["story", "list"])
def test_a_greedy_reply_cut_at_8_tokens_and_continued_for_8_equals_16_in_one_go(
    smollm2: LlamaCppModel, messages: tuple[ChatMessage, ...]
) -> None:
    whole, _ = _reply(smollm2, ChatRequest(messages, _greedy(16)))
    head, head_stats = _reply(smollm2, ChatRequest(messages, _greedy(8)))
    cut = (*messages, ChatMessage("assistant", head))
    tail, tail_stats = _reply(smollm2, ChatRequest(cut, _greedy(8), continue_last=True))
    assert head_stats.stop_reason == tail_stats.stop_reason == "length"
    assert tail  # only the new text streams, and there is some
    assert not tail.startswith(head)
    assert head + tail == whole
    # The partial reply re-tokenizes into exactly the 8 tokens generated: the prompt grew by 8.
    assert tail_stats.prompt_tokens == head_stats.prompt_tokens + 8


def test_the_continue_prompt_ends_with_the_partial_reply_in_an_open_turn(
    smollm2: LlamaCppModel,
) -> None:
    cut = (*QUESTION, ChatMessage("assistant", "The capital of "))
    rendered = smollm2.render_prompt(cut, continue_last=True)
    assert rendered.text == smollm2.render_prompt(QUESTION).text + "The capital of "
    assert rendered.text.endswith("<|im_start|>assistant\nThe capital of ")
    new_turn = smollm2.render_prompt(cut).text
    assert new_turn.endswith("The capital of <|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize("messages", [QUESTION, STORY, TALK], ids=["question", "story", "talk"])
def test_count_tokens_equals_the_prompt_tokens_the_reply_reports(
    smollm2: LlamaCppModel, messages: tuple[ChatMessage, ...]
) -> None:
    counted = smollm2.count_tokens(messages)
    _, stats = _reply(smollm2, ChatRequest(messages, _greedy(4)))
    assert counted == stats.prompt_tokens > 10
    assert counted == len(smollm2.render_prompt(messages).tokens)


def test_count_tokens_counts_a_conversation_too_long_for_the_context(
    smollm2: LlamaCppModel,
) -> None:
    long = (ChatMessage("user", "cook the dragon a meal " * 300),)
    counted = smollm2.count_tokens(long)
    assert counted > OPTIONS.n_ctx
    with pytest.raises(UserFacingError, match=f"{counted} tokens long"):
        _reply(smollm2, ChatRequest(long, _greedy(4)))


def test_count_tokens_while_a_reply_streams_is_busy(smollm2: LlamaCppModel) -> None:
    stream = smollm2.chat(ChatRequest(STORY, _greedy(50)), CancelToken())
    next(stream)
    with pytest.raises(RuntimeBusy):
        smollm2.count_tokens(QUESTION)
    stream.close()
    assert smollm2.count_tokens(QUESTION) > 10  # idle again
