"""The same basic chat against a real Ollama, where one answers (OLLAMA_HOST or the default).

Skipped, with the reason in `pytest -rs`, when no server answers `/api/version` within 1 s.
Nothing is pulled: the smallest model the server already has is used.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtimes.base import (
    CancelToken,
    ChatMessage,
    ChatRequest,
    Done,
    GenerationParams,
    LoadOptions,
    TextDelta,
)
from runtimes.ollama import OllamaRuntime

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def real_ollama() -> Iterator[OllamaRuntime]:
    runtime = OllamaRuntime()
    status = runtime.status(timeout_s=1.0)
    if status.state != "available":
        runtime.close()
        pytest.skip(f"no real Ollama server answers at {runtime.endpoint} ({status.state})")
    yield runtime
    runtime.close()


def test_a_real_ollama_chats_with_its_smallest_model(real_ollama: OllamaRuntime) -> None:
    models = real_ollama.list_models()
    if not models:
        pytest.skip(f"the real Ollama at {real_ollama.endpoint} has no models")
    smallest = min(models, key=lambda m: m.size_bytes)
    model = real_ollama.load(smallest.name, LoadOptions(n_ctx=2048))
    try:
        request = ChatRequest(
            (ChatMessage("user", "Say hello in one short sentence."),),
            GenerationParams(temperature=0.0, seed=1, max_tokens=24),
        )
        events = list(model.chat(request, CancelToken()))
    finally:
        model.unload()
    assert any(isinstance(e, TextDelta) and e.text for e in events)
    done = events[-1]
    assert isinstance(done, Done)
    assert done.stats.completion_tokens > 0
    assert done.stats.decode_tps > 0
    assert done.stats.ttft_s > 0
    assert model.info.backend.startswith("Ollama ")
