"""Continuing a cut reply through Ollama's `/api/chat`, against the Ollama-protocol test server.

Ollama continues a final assistant message (ollama/ollama#6778; its library templates leave
the last assistant turn open), so the runtime sends the messages as they are; the test
server renders such a conversation the same way, with the model file's own template.
"""

from __future__ import annotations

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
from runtimes.ollama import OllamaModel, OllamaRuntime
from tests.servers.fixtures_ollama import SMOLLM2

pytestmark = pytest.mark.integration

FRUITS = (ChatMessage("user", "List five fruits."),)
GREEDY_8 = GenerationParams(temperature=0.0, seed=7, max_tokens=8, repeat_penalty=1.0)


def _reply(model: OllamaModel, request: ChatRequest) -> tuple[str, GenerationStats]:
    events = list(model.chat(request, CancelToken()))
    done = events[-1]
    assert isinstance(done, Done)
    return join_text(events), done.stats


def test_a_cut_reply_is_continued_in_the_same_turn(ollama_runtime: OllamaRuntime) -> None:
    model = ollama_runtime.load(SMOLLM2, LoadOptions(n_ctx=1024))
    head, head_stats = _reply(model, ChatRequest(FRUITS, GREEDY_8))
    cut = (*FRUITS, ChatMessage("assistant", head))
    tail, tail_stats = _reply(model, ChatRequest(cut, GREEDY_8, continue_last=True))
    assert head_stats.stop_reason == tail_stats.stop_reason == "length"
    assert tail_stats.completion_tokens == 8
    # The prompt grew by exactly the 8 tokens of the partial reply: no end of turn and no new
    # assistant header were added, so the model carries on from where it was cut.
    assert tail_stats.prompt_tokens == head_stats.prompt_tokens + 8
    assert tail and not tail.startswith(head)  # only the new text streams


def test_count_tokens_is_unknown_for_ollama(ollama_runtime: OllamaRuntime) -> None:
    model = ollama_runtime.load(SMOLLM2, LoadOptions(n_ctx=1024))
    assert model.count_tokens(FRUITS) is None
