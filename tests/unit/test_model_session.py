"""Model sessions over a fake server runtime, figures from stats, and model choices."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.choices import choice_label, join_choice, split_choice
from app.errors import ModelNotLoaded
from app.model_session import LocalSessionOpener, figures_from
from app.runtimes import RuntimeRegistry
from runtimes.base import (
    CancelToken,
    ChatMessage,
    ChatRequest,
    Done,
    GenerationStats,
    LoadedModelInfo,
    LoadOptions,
    ProgressCallback,
    StreamEvent,
    TextDelta,
)

INFO = LoadedModelInfo("fake", 2048, 0, 0, 1, "", "", "", 0.0)
STATS = GenerationStats(40, 3, 0.0, 0.2, 30.0, 0.3, "stop")


class FakeServerModel:
    def __init__(self) -> None:
        self.alive = True

    @property
    def info(self) -> LoadedModelInfo:
        return INFO

    def chat(self, request: ChatRequest, cancel: CancelToken) -> Iterator[StreamEvent]:
        for piece in ("Hel", "lo", "!"):
            if cancel.cancelled:
                break
            yield TextDelta(piece)
        yield Done(STATS)

    def count_tokens(self, messages: tuple[ChatMessage, ...]) -> int | None:
        return None

    def unload(self) -> None:
        self.alive = False


class FakeServer:
    name = "openai:box"

    def __init__(self) -> None:
        self.loaded: list[tuple[str, LoadOptions]] = []
        self.models: list[FakeServerModel] = []

    def load(
        self,
        model_path: str,
        options: LoadOptions,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> FakeServerModel:
        self.loaded.append((model_path, options))
        self.models.append(FakeServerModel())
        return self.models[-1]


@pytest.fixture()
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture()
def opener(server: FakeServer) -> LocalSessionOpener:
    registry = RuntimeRegistry(
        endpoints=[("box", "http://127.0.0.1:9/v1")], endpoint_runtime=lambda _n: server
    )
    return LocalSessionOpener(registry)


REQUEST = ChatRequest((ChatMessage("user", "Hi"),))


def test_a_session_generates_with_figures_and_only_the_first_reply_carries_the_load(
    opener: LocalSessionOpener, server: FakeServer
) -> None:
    session = opener.open("openai:box::qwen", LoadOptions(n_ctx=1024))
    assert (session.choice, session.name, session.runtime) == (
        "openai:box::qwen",
        "qwen",
        "openai:box",
    )
    assert server.loaded == [("qwen", LoadOptions(n_ctx=1024))]
    pieces: list[str] = []
    text, figures = session.generate(REQUEST, CancelToken(), pieces.append)
    assert (text, pieces) == ("Hello!", ["Hel", "lo", "!"])
    assert figures.load_seconds is not None and figures.load_seconds >= 0
    assert (figures.ttft_ms, figures.decode_tps, figures.completion_tokens) == (200.0, 30.0, 3)
    assert figures.prompt_tps == pytest.approx(200.0)
    assert figures.peak_memory_bytes is None  # a server's model uses no memory here
    _text, again = session.generate(REQUEST, CancelToken())
    assert again.load_seconds is None


def test_close_unloads_once_and_the_session_is_then_unusable(
    opener: LocalSessionOpener, server: FakeServer
) -> None:
    session = opener.open("openai:box::qwen")
    session.close()
    session.close()
    assert server.models[0].alive is False
    with pytest.raises(ModelNotLoaded):
        session.generate(REQUEST, CancelToken())


def test_two_sessions_of_the_same_model_are_independent(
    opener: LocalSessionOpener, server: FakeServer
) -> None:
    first = opener.open("openai:box::qwen")
    second = opener.open("openai:box::qwen")
    first.close()
    assert [m.alive for m in server.models] == [False, True]
    assert second.generate(REQUEST, CancelToken())[0] == "Hello!"
    opener.close_all()
    assert server.models[1].alive is False


def test_a_cancelled_reply_returns_the_text_so_far(opener: LocalSessionOpener) -> None:
    session = opener.open("openai:box::qwen")
    cancel = CancelToken()
    text, _figures = session.generate(REQUEST, cancel, lambda _piece: cancel.cancel())
    assert text == "Hel"


def test_prompt_speed_is_unknown_without_a_ttft() -> None:
    stats = GenerationStats(40, 0, 0.0, 0.0, 0.0, 0.0, "cancelled")
    assert figures_from(stats, 1.5, 10).prompt_tps is None
    assert figures_from(stats, 1.5, 10).load_seconds == 1.5


def test_choices_split_join_and_label() -> None:
    assert split_choice("/m/SmolLM2.Q4_1.gguf") == ("llamacpp", "/m/SmolLM2.Q4_1.gguf")
    assert split_choice("ollama::llama3.2:1b") == ("ollama", "llama3.2:1b")
    assert split_choice("openai:vllm-box::Qwen/Qwen2.5-7B") == (
        "openai:vllm-box",
        "Qwen/Qwen2.5-7B",
    )
    assert join_choice("llamacpp", "/m/a.gguf") == "/m/a.gguf"
    assert join_choice("ollama", "llama3.2:1b") == "ollama::llama3.2:1b"
    assert choice_label("/m/a.gguf", "SmolLM2 135M · Q4_1") == "SmolLM2 135M · Q4_1 · llama.cpp"
    assert choice_label("/m/gemma-3.gguf") == "gemma-3 · llama.cpp"
    assert choice_label("ollama::llama3.2:1b") == "llama3.2:1b · Ollama"
    assert choice_label("openai:vllm-box::Qwen") == "Qwen · vllm-box"
