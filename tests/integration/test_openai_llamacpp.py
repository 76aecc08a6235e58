"""OpenAI-compatible runtime against llama-cpp-python's real server serving SmolLM2 on loopback.

llama-cpp-python's server (0.3.36) ignores `stream_options` and sends no usage chunk, so
token counts here are the counted content chunks (one token each on that server).
"""

from __future__ import annotations

import time

import pytest

from runtimes.base import (
    CancelToken,
    ChatMessage,
    ChatRequest,
    Done,
    GenerationParams,
    LoadOptions,
    RemoteModel,
    StreamEvent,
    TextDelta,
    join_text,
)
from runtimes.openai_compat import OpenAICompatRuntime, OpenAIModel
from tests.servers.openai_servers import MODEL_ALIAS, LlamaCppServer

pytestmark = pytest.mark.integration

GREEDY = GenerationParams(temperature=0.0, seed=7, max_tokens=40)
QUESTION = (
    ChatMessage("system", "Be brief."),
    ChatMessage("user", "What is the capital of France?"),
)
STORY = (ChatMessage("user", "Write a very long story about a dragon who learns to cook."),)


@pytest.fixture(scope="module")
def runtime(llama_cpp_server: LlamaCppServer) -> OpenAICompatRuntime:
    return OpenAICompatRuntime(llama_cpp_server.base_url)


@pytest.fixture(scope="module")
def model(runtime: OpenAICompatRuntime, llama_cpp_server: LlamaCppServer) -> OpenAIModel:
    return runtime.load(llama_cpp_server.model, LoadOptions(n_ctx=2048))


def _chat(
    model: OpenAIModel, messages: tuple[ChatMessage, ...], params: GenerationParams
) -> list[StreamEvent]:
    return list(model.chat(ChatRequest(messages, params), CancelToken()))


def _done(events: list[StreamEvent]) -> Done:
    assert isinstance(events[-1], Done)
    assert sum(isinstance(e, Done) for e in events) == 1
    return events[-1]


def test_status_is_available_with_its_one_model(
    runtime: OpenAICompatRuntime, llama_cpp_server: LlamaCppServer
) -> None:
    status = runtime.status()
    assert status.state == "available"
    assert status.endpoint == llama_cpp_server.base_url
    assert status.detail == f"1 model offered: {MODEL_ALIAS}."
    assert status.version == ""  # uvicorn's `Server` header names no version; no /version
    assert status.warnings == ()


def test_list_models_gives_the_served_alias(runtime: OpenAICompatRuntime) -> None:
    # llama-cpp-python lists no context length.
    assert runtime.list_models() == [RemoteModel(name=MODEL_ALIAS)]


def test_load_reports_the_server_and_the_requested_context(model: OpenAIModel) -> None:
    host = model.info.backend.removeprefix("OpenAI-compatible (").removesuffix(")")
    assert host.startswith("127.0.0.1:")
    assert (model.info.n_ctx, model.info.n_gpu_layers, model.info.chat_template) == (
        2048,
        0,
        "server",
    )
    assert model.alive


def test_chat_streams_real_text_with_figures_measured_here(model: OpenAIModel) -> None:
    events = _chat(model, QUESTION, GREEDY)
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert "Paris" in join_text(events)
    stats = _done(events).stats
    assert stats.completion_tokens == len(deltas)  # counted: this server sends no usage
    assert stats.prompt_tokens == 0
    assert stats.stop_reason == "stop"
    assert 0 < stats.ttft_s < stats.total_time_s
    assert stats.decode_tps > 0


def test_greedy_with_a_seed_is_reproducible(model: OpenAIModel) -> None:
    first = join_text(_chat(model, STORY, GREEDY))
    second = join_text(_chat(model, STORY, GREEDY))
    assert first
    assert first == second


def test_max_tokens_stops_with_length(model: OpenAIModel) -> None:
    events = _chat(model, STORY, GenerationParams(temperature=0.0, max_tokens=5))
    stats = _done(events).stats
    assert stats.stop_reason == "length"
    assert stats.completion_tokens == 5


def test_stop_strings_end_the_reply_before_them(model: OpenAIModel) -> None:
    full = join_text(_chat(model, STORY, GREEDY))
    words = full.split()
    assert len(words) > 6
    stop_word = words[5]
    cut = full.index(stop_word)
    params = GenerationParams(temperature=0.0, seed=7, max_tokens=40, stop=(stop_word,))
    events = _chat(model, STORY, params)
    assert join_text(events) == full[:cut]
    assert _done(events).stats.stop_reason == "stop"


def test_cancel_mid_reply_ends_within_200_ms_and_the_model_chats_again(model: OpenAIModel) -> None:
    cancel = CancelToken()
    events: list[StreamEvent] = []
    cancelled_at = 0.0
    for event in model.chat(ChatRequest(STORY, GenerationParams(max_tokens=400)), cancel):
        events.append(event)
        if len(events) == 3:
            cancelled_at = time.monotonic()
            cancel.cancel()
    assert time.monotonic() - cancelled_at < 0.2
    assert len(events) == 4
    assert _done(events).stats.stop_reason == "cancelled"
    assert "Paris" in join_text(_chat(model, QUESTION, GREEDY))
