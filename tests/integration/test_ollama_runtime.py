"""OllamaRuntime against the Ollama-protocol test server, which generates real SmolLM2 tokens."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runtimes.base import (
    CancelToken,
    ChatMessage,
    ChatRequest,
    Done,
    GenerationParams,
    LoadOptions,
    LoadProgress,
    StreamEvent,
    TextDelta,
    join_text,
)
from runtimes.errors import ExternalFailure, ModelNotLoaded, UserFacingError
from runtimes.ollama import OllamaModel, OllamaRuntime, PullProgress
from tests.servers.fixtures_ollama import COPY, PULLABLE, SMOLLM2, OllamaTestServer

pytestmark = pytest.mark.integration

OPTIONS = LoadOptions(n_ctx=1024)
GREEDY = GenerationParams(temperature=0.0, seed=7, max_tokens=40)
QUESTION = (
    ChatMessage("system", "Be brief."),
    ChatMessage("user", "What is the capital of France?"),
)
STORY = (ChatMessage("user", "Write a very long story about a dragon who learns to cook."),)


def _chat(
    model: OllamaModel, messages: tuple[ChatMessage, ...], params: GenerationParams
) -> list[StreamEvent]:
    return list(model.chat(ChatRequest(messages, params), CancelToken()))


def _done(events: list[StreamEvent]) -> Done:
    assert isinstance(events[-1], Done)
    assert sum(isinstance(e, Done) for e in events) == 1
    return events[-1]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_status_reports_the_servers_version(ollama_runtime: OllamaRuntime) -> None:
    status = ollama_runtime.status()
    assert status.state == "available"
    assert status.version == "0.21.0"
    assert status.endpoint == ollama_runtime.endpoint
    assert status.warnings == ()  # loopback, and newer than every fixed CVE


def test_status_warns_about_an_old_server(
    ollama_runtime: OllamaRuntime, ollama_server: OllamaTestServer
) -> None:
    ollama_server.set_version("0.1.33")
    status = ollama_runtime.status()
    assert status.state == "available"
    assert status.version == "0.1.33"
    (warning,) = status.warnings
    assert "CVE-2024-37032" in warning


def test_status_on_a_closed_port_is_not_found_at_once() -> None:
    runtime = OllamaRuntime(f"127.0.0.1:{_closed_port()}")
    started = time.perf_counter()
    status = runtime.status(timeout_s=1.0)
    assert time.perf_counter() - started < 1.0
    assert status.state == "not_found"
    assert status.detail == (
        f"No Ollama server answers at {runtime.endpoint}. Start it with `ollama serve` or "
        "install it from ollama.com."
    )


def test_status_of_a_server_that_accepts_but_never_answers_is_an_error_in_time() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)  # connections wait in the backlog, nobody answers
        runtime = OllamaRuntime(f"127.0.0.1:{silent.getsockname()[1]}")
        started = time.perf_counter()
        status = runtime.status(timeout_s=0.6)
        elapsed = time.perf_counter() - started
    assert status.state == "error"
    assert "did not answer within 0.6 s" in status.detail
    assert elapsed < 1.0


def test_status_of_a_path_without_ollama_is_an_error(ollama_server: OllamaTestServer) -> None:
    status = OllamaRuntime(f"{ollama_server.url}/not-ollama").status()
    assert status.state == "error"
    assert "HTTP 404" in status.detail


def test_list_models_gives_the_servers_figures(
    ollama_runtime: OllamaRuntime, smollm2_path: Path
) -> None:
    models = {m.name: m for m in ollama_runtime.list_models()}
    assert set(models) == {SMOLLM2, COPY}
    smollm2 = models[SMOLLM2]
    assert smollm2.size_bytes == smollm2_path.stat().st_size
    assert smollm2.family == "llama"
    assert smollm2.parameter_size == "134.52M"
    assert smollm2.quantization == "Q4_1"


def test_show_reads_the_models_metadata(ollama_runtime: OllamaRuntime) -> None:
    details = ollama_runtime.show(SMOLLM2)
    assert details.architecture == "llama"
    assert details.context_length == 8192
    assert details.n_layers == 30
    assert details.has_template
    assert details.quantization == "Q4_1"


def test_loading_an_unknown_model_says_to_pull_it(ollama_runtime: OllamaRuntime) -> None:
    with pytest.raises(UserFacingError) as caught:
        ollama_runtime.load("nope:1b", OPTIONS)
    assert (
        caught.value.message
        == "Ollama has no model nope:1b; pull it first (`ollama pull nope:1b`)."
    )


def test_load_preloads_the_model_and_reports_what_it_got(ollama_runtime: OllamaRuntime) -> None:
    ollama_runtime.unload(SMOLLM2)  # a real load, not one the server had already done
    progress: list[LoadProgress] = []
    model = ollama_runtime.load(SMOLLM2, OPTIONS, on_progress=progress.append)
    assert progress == [
        LoadProgress(0.0, "loading in Ollama"),
        LoadProgress(1.0, "loading in Ollama"),
    ]
    info = model.info
    assert info.backend == "Ollama 0.21.0"
    assert (info.n_ctx, info.n_gpu_layers, info.n_layers) == (1024, 0, 0)
    assert info.architecture == "llama"
    assert info.chat_template == "ollama"
    assert info.notice == ""
    assert info.load_time_s > 0.05  # llama.cpp really loaded the file
    (running,) = ollama_runtime.running()
    assert running.name == SMOLLM2
    assert running.context_length == 1024
    assert running.where == "CPU"
    assert running.size_bytes > 0
    assert running.expires_at is not None and running.expires_at > datetime.now(UTC)


def test_chat_streams_real_text_with_the_servers_figures(
    ollama_runtime: OllamaRuntime, ollama_server: OllamaTestServer
) -> None:
    model = ollama_runtime.load(SMOLLM2, OPTIONS)
    events = _chat(model, QUESTION, GREEDY)
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) >= 3  # streamed, not one block
    assert "Paris" in join_text(events)
    stats = _done(events).stats
    final = ollama_server.last_final()
    assert stats.prompt_tokens == final["prompt_eval_count"] > 5
    assert stats.completion_tokens == final["eval_count"]
    assert len(deltas) <= stats.completion_tokens <= GREEDY.max_tokens
    load_ns, prompt_ns = final["load_duration"], final["prompt_eval_duration"]
    assert stats.ttft_s == pytest.approx((load_ns + prompt_ns) / 1e9)
    assert stats.decode_tps == pytest.approx(final["eval_count"] / final["eval_duration"] * 1e9)
    assert stats.decode_tps > 0
    assert stats.total_time_s == pytest.approx(final["total_duration"] / 1e9)
    assert stats.stop_reason == "stop"


def test_a_reply_cut_by_max_tokens_ends_with_length(ollama_runtime: OllamaRuntime) -> None:
    model = ollama_runtime.load(SMOLLM2, OPTIONS)
    stats = _done(_chat(model, STORY, GenerationParams(max_tokens=8))).stats
    assert stats.completion_tokens == 8
    assert stats.stop_reason == "length"


def test_seeded_greedy_replies_are_reproducible(ollama_runtime: OllamaRuntime) -> None:
    model = ollama_runtime.load(SMOLLM2, OPTIONS)
    params = GenerationParams(temperature=0.0, seed=42, max_tokens=24)
    first = join_text(_chat(model, STORY, params))
    second = join_text(_chat(model, STORY, params))
    assert first
    assert first == second


def test_unload_frees_the_model_on_the_server(ollama_runtime: OllamaRuntime) -> None:
    model = ollama_runtime.load(SMOLLM2, OPTIONS)
    assert [r.name for r in ollama_runtime.running()] == [SMOLLM2]
    model.unload()
    model.unload()  # idempotent
    assert ollama_runtime.running() == []
    assert not model.alive
    with pytest.raises(ModelNotLoaded):
        _chat(model, QUESTION, GREEDY)


def test_delete_removes_the_model_and_a_second_delete_says_it_is_gone(
    ollama_runtime: OllamaRuntime,
) -> None:
    ollama_runtime.delete(COPY)
    assert COPY not in {m.name for m in ollama_runtime.list_models()}
    with pytest.raises(UserFacingError, match="Ollama has no model smollm2:copy"):
        ollama_runtime.delete(COPY)


def test_chat_with_a_model_deleted_since_its_load_says_to_pull_it(
    ollama_runtime: OllamaRuntime,
) -> None:
    model = ollama_runtime.load(COPY, OPTIONS)
    ollama_runtime.delete(COPY)
    with pytest.raises(UserFacingError, match="pull it first"):
        _chat(model, QUESTION, GREEDY)


def test_pull_reports_ollamas_progress_steps(ollama_runtime: OllamaRuntime) -> None:
    steps: list[PullProgress] = []
    ollama_runtime.pull(PULLABLE, steps.append, CancelToken())
    statuses = [s.status for s in steps]
    assert statuses[0] == "pulling manifest"
    assert statuses[-4:] == [
        "verifying sha256 digest",
        "writing manifest",
        "removing any unused layers",
        "success",
    ]
    layers = [s for s in steps if s.status.startswith("pulling ") and s.digest]
    assert layers
    for step in layers:
        assert step.digest.startswith("sha256:")
        assert step.status == f"pulling {step.digest[7:19]}"
        assert step.total > 0
    model_layer = [s.completed for s in layers if s.digest == layers[0].digest]
    assert model_layer == sorted(model_layer)  # grows
    assert model_layer[-1] == layers[0].total
    assert PULLABLE in {m.name for m in ollama_runtime.list_models()}


def test_pulling_an_unknown_model_fails_with_the_servers_words(
    ollama_runtime: OllamaRuntime,
) -> None:
    with pytest.raises(ExternalFailure) as caught:
        ollama_runtime.pull("no-such-model:7b", lambda _step: None, CancelToken())
    assert "Ollama could not pull no-such-model:7b" in caught.value.message
    assert "pull model manifest: file does not exist" in caught.value.message


def test_a_cancelled_pull_stops_at_once_and_resumes_later(ollama_runtime: OllamaRuntime) -> None:
    cancel = CancelToken()
    seen: list[PullProgress] = []
    cancelled_at = 0.0

    def on_step(step: PullProgress) -> None:
        nonlocal cancelled_at
        seen.append(step)
        if step.completed > 0 and not cancel.cancelled:
            cancel.cancel()
            cancelled_at = time.perf_counter()

    ollama_runtime.pull(PULLABLE, on_step, cancel)
    assert time.perf_counter() - cancelled_at < 0.2
    assert seen[-1].status != "success"
    assert PULLABLE not in {m.name for m in ollama_runtime.list_models()}
    resumed: list[PullProgress] = []
    ollama_runtime.pull(PULLABLE, resumed.append, CancelToken())
    first_layer = next(s for s in resumed if s.digest == seen[-1].digest)
    assert first_layer.completed >= seen[-1].completed  # picks up where it stopped
    assert resumed[-1].status == "success"
