"""One contract, three runtimes: llama.cpp in a worker, Ollama's protocol, an OpenAI server.

Each runtime serves the same real SmolLM2 model: llama.cpp directly, the Ollama-protocol server
and llama-cpp-python's OpenAI-compatible server on loopback. The same checks run on all three.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from runtimes.base import (
    CancelToken,
    ChatMessage,
    ChatRequest,
    Done,
    GenerationParams,
    LoadedModel,
    LoadOptions,
    Runtime,
    StreamEvent,
    TextDelta,
)
from runtimes.errors import UserFacingError, WorkbenchError

pytestmark = pytest.mark.integration

RUNTIMES = ("llamacpp", "ollama", "openai")


@dataclass(frozen=True)
class Target:
    """A runtime and the name under which it serves SmolLM2."""

    runtime: Runtime
    model: str


def _target(kind: str, request: pytest.FixtureRequest, smollm2_path: Path) -> Target:
    if kind == "llamacpp":
        from runtimes.llamacpp import LlamaCppRuntime

        return Target(LlamaCppRuntime(), str(smollm2_path))
    if kind == "ollama":
        from runtimes.ollama import OllamaRuntime

        server = request.getfixturevalue("ollama_server")
        return Target(OllamaRuntime(host=server.url), "smollm2:135m")
    from runtimes.openai_compat import OpenAICompatRuntime

    server = request.getfixturevalue("llama_cpp_server")
    return Target(OpenAICompatRuntime(base_url=server.base_url), server.model)


@pytest.fixture(params=RUNTIMES)
def loaded(request: pytest.FixtureRequest, smollm2_path: Path) -> Iterator[LoadedModel]:
    """SmolLM2 loaded through one runtime after another."""
    target = _target(request.param, request, smollm2_path)
    model = target.runtime.load(target.model, LoadOptions(n_ctx=2048, n_threads=2))
    yield model
    model.unload()


# An OpenAI-compatible server may send no usage (llama-cpp-python 0.3.36 ignores
# stream_options): its prompt count is then 0, meaning "unknown", never a guess.
REPORTS_PROMPT_TOKENS = {"LlamaCppModel": True, "OllamaModel": True, "OpenAIModel": False}


def _ask(text: str, max_tokens: int = 16) -> ChatRequest:
    return ChatRequest(
        (ChatMessage("user", text),),
        GenerationParams(temperature=0.0, seed=7, max_tokens=max_tokens),
    )


def test_stream_is_text_then_exactly_one_done_with_sane_stats(loaded: LoadedModel) -> None:
    events: list[StreamEvent] = list(loaded.chat(_ask("Name three fruits."), CancelToken()))
    assert isinstance(events[-1], Done)
    assert all(isinstance(e, TextDelta) for e in events[:-1])
    assert "".join(e.text for e in events[:-1] if isinstance(e, TextDelta)).strip()
    stats = events[-1].stats
    if REPORTS_PROMPT_TOKENS[type(loaded).__name__]:
        assert stats.prompt_tokens > 0
    else:
        assert stats.prompt_tokens >= 0
    assert 0 < stats.completion_tokens <= 16
    assert stats.ttft_s > 0
    assert stats.decode_tps > 0
    assert stats.total_time_s >= stats.ttft_s
    assert stats.stop_reason in ("stop", "length")


def test_max_tokens_ends_with_length(loaded: LoadedModel) -> None:
    events = list(loaded.chat(_ask("Write a long story about the sea.", 8), CancelToken()))
    done = events[-1]
    assert isinstance(done, Done)
    assert done.stats.stop_reason == "length"
    assert done.stats.completion_tokens == 8


def test_greedy_with_a_seed_repeats(loaded: LoadedModel) -> None:
    def reply() -> str:
        events = loaded.chat(_ask("What is the capital of France?"), CancelToken())
        return "".join(e.text for e in events if isinstance(e, TextDelta))

    assert reply() == reply()


def test_cancel_ends_the_stream_within_200_ms(loaded: LoadedModel) -> None:
    cancel = CancelToken()
    stream = loaded.chat(_ask("Write a very long story about a lighthouse keeper.", 400), cancel)
    deltas = 0
    cancelled_at = 0.0
    done: Done | None = None
    for event in stream:
        if isinstance(event, TextDelta):
            deltas += 1
            if deltas == 3:
                cancelled_at = time.perf_counter()
                cancel.cancel()
        else:
            done = event
    latency = time.perf_counter() - cancelled_at
    assert done is not None
    assert done.stats.stop_reason == "cancelled"
    assert latency < 0.2, f"cancel took {latency * 1000:.0f} ms"
    # The model still answers afterwards.
    again = list(loaded.chat(_ask("Hi", 4), CancelToken()))
    assert isinstance(again[-1], Done)


@pytest.mark.parametrize("kind", RUNTIMES)
def test_unknown_model_is_a_clear_user_error(
    kind: str, request: pytest.FixtureRequest, smollm2_path: Path, tmp_path: Path
) -> None:
    target = _target(kind, request, smollm2_path)
    missing = str(tmp_path / "missing.gguf") if kind == "llamacpp" else "no-such-model:1b"
    with pytest.raises(UserFacingError) as caught:
        target.runtime.load(missing, LoadOptions(n_ctx=512))
    assert "Traceback" not in str(caught.value)


def test_chat_after_unload_is_a_typed_error(loaded: LoadedModel) -> None:
    loaded.unload()
    with pytest.raises(WorkbenchError):
        list(loaded.chat(_ask("Hi", 4), CancelToken()))
