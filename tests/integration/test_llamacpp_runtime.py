"""LlamaCppRuntime against real llama.cpp and real GGUF models, each in a worker process."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
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
from runtimes.errors import InvalidModelFile, ModelNotLoaded, RuntimeBusy, RuntimeCrashed
from runtimes.llamacpp import LlamaCppModel, LlamaCppRuntime, default_threads, wheel_backend
from runtimes.llamacpp import runtime as runtime_module

pytestmark = pytest.mark.integration

GPU_BUILD = wheel_backend() != "CPU"
# Full offload on GPU builds, as the app plans it; the CPU build takes n_gpu_layers=0 silently.
OPTIONS = LoadOptions(n_ctx=1024, n_threads=2, n_gpu_layers=-1 if GPU_BUILD else 0)
GREEDY = GenerationParams(temperature=0.0, seed=7, max_tokens=40)
QUESTION = (
    ChatMessage("system", "Be brief."),
    ChatMessage("user", "What is the capital of France?"),
)
STORY = (ChatMessage("user", "Write a very long story about a dragon who learns to cook."),)


def _chat(
    model: LlamaCppModel, messages: tuple[ChatMessage, ...], params: GenerationParams
) -> list[StreamEvent]:
    return list(model.chat(ChatRequest(messages, params), CancelToken()))


def _done(events: list[StreamEvent]) -> Done:
    assert isinstance(events[-1], Done)
    assert sum(isinstance(e, Done) for e in events) == 1
    return events[-1]


@pytest.fixture(scope="module")
def runtime() -> LlamaCppRuntime:
    return LlamaCppRuntime()


@pytest.fixture(scope="module")
def smollm2(runtime: LlamaCppRuntime, smollm2_path: Path) -> Iterator[LlamaCppModel]:
    model = runtime.load(str(smollm2_path), OPTIONS)
    yield model
    model.unload()


@pytest.fixture()
def fresh_smollm2(runtime: LlamaCppRuntime, smollm2_path: Path) -> Iterator[LlamaCppModel]:
    """A model of its own, for tests that kill or unload it."""
    model = runtime.load(str(smollm2_path), OPTIONS)
    yield model
    model.unload()


def test_load_reports_what_it_produced(smollm2: LlamaCppModel) -> None:
    info = smollm2.info
    if GPU_BUILD:
        # llama.cpp's own count ("offloaded 31/31 layers") includes the output layer.
        assert info.backend == wheel_backend()
        assert info.n_gpu_layers == info.n_layers == 31
    else:
        assert info.backend == wheel_backend() == "CPU"
        assert (info.n_gpu_layers, info.n_layers) == (0, 30)  # SmolLM2's block_count
    assert (info.n_ctx, info.n_threads, info.architecture) == (1024, 2, "llama")
    assert (info.chat_template, info.notice) == ("gguf", "")
    assert 0 < info.load_time_s < 30


def test_load_progress_arrives_in_order_in_the_callers_thread(
    runtime: LlamaCppRuntime, smollm2_path: Path
) -> None:
    seen: list[tuple[LoadProgress, int]] = []
    auto_threads = LoadOptions(n_ctx=512, n_threads=None)
    model = runtime.load(
        str(smollm2_path), auto_threads, lambda p: seen.append((p, threading.get_ident()))
    )
    model.unload()
    assert model.info.n_threads == default_threads()
    fractions = [p.fraction for p, _ in seen]
    assert fractions == sorted(fractions)
    assert (seen[0][0].fraction, seen[-1][0]) == (0.0, LoadProgress(1.0, "ready"))
    stages = [p.stage for p, _ in seen]
    assert "loading weights" in stages and "creating context" in stages
    assert len([s for s in stages if s == "loading weights"]) > 5  # llama.cpp's own callback
    assert {thread for _, thread in seen} == {threading.get_ident()}


def test_gguf_template_is_rendered_with_a_single_leading_bos(smollm2: LlamaCppModel) -> None:
    rendered = smollm2.render_prompt(QUESTION)
    assert rendered.text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    # SmolLM2's BOS is <|im_start|>: written by the template, and not added a second time.
    assert rendered.tokens[0] == rendered.bos_id != rendered.tokens[1]
    assert rendered.tokens.count(rendered.bos_id) == 3  # one per turn, all parsed as special
    assert "<|im_end|>" in rendered.stop_texts


def test_greedy_reply_is_repeatable(smollm2: LlamaCppModel) -> None:
    first = _chat(smollm2, QUESTION, GREEDY)
    second = _chat(smollm2, QUESTION, GREEDY)
    assert join_text(first).strip() != ""
    assert join_text(first) == join_text(second)
    assert "Paris" in join_text(first)
    stats = _done(first).stats
    assert stats.prompt_tokens > 10 and stats.completion_tokens > 0
    assert stats.stop_reason == "stop"
    assert 0 < stats.ttft_s < stats.total_time_s and stats.decode_tps > 0
    assert stats.load_time_s == 0.0


def test_max_tokens_is_honoured(smollm2: LlamaCppModel) -> None:
    params = GenerationParams(temperature=0.0, seed=1, max_tokens=6)
    stats = _done(_chat(smollm2, STORY, params)).stats
    assert (stats.stop_reason, stats.completion_tokens) == ("length", 6)


def test_stop_string_cuts_the_reply(smollm2: LlamaCppModel) -> None:
    full = join_text(_chat(smollm2, STORY, GREEDY))
    stop = full[len(full) // 2 : len(full) // 2 + 4]
    assert len(stop) == 4
    params = GenerationParams(temperature=0.0, seed=7, max_tokens=40, stop=(stop,))
    events = _chat(smollm2, STORY, params)
    assert join_text(events) == full[: full.index(stop)]
    assert _done(events).stats.stop_reason == "stop"


def test_cancel_ends_stream_within_200_ms_and_model_stays_usable(smollm2: LlamaCppModel) -> None:
    cancel = CancelToken()
    cancelled_at: list[float] = []

    def press_stop() -> None:
        cancelled_at.append(time.perf_counter())
        cancel.cancel()

    params = GenerationParams(temperature=0.7, seed=3, max_tokens=900)
    events: list[StreamEvent] = []
    for event in smollm2.chat(ChatRequest(STORY, params), cancel):
        events.append(event)
        if len(events) == 3:  # cancel from another thread, as the GUI does
            threading.Timer(0.15, press_stop).start()
    done_at = time.perf_counter()
    stats = _done(events).stats
    assert stats.stop_reason == "cancelled"
    assert stats.completion_tokens < 900
    latency = done_at - cancelled_at[0]
    assert latency < 0.2, f"cancel took {latency * 1000:.0f} ms"
    assert _done(_chat(smollm2, QUESTION, GREEDY)).stats.stop_reason == "stop"


def test_abandoned_stream_leaves_no_leftovers(smollm2: LlamaCppModel) -> None:
    expected = join_text(_chat(smollm2, QUESTION, GREEDY))
    stream = smollm2.chat(ChatRequest(STORY, GenerationParams(max_tokens=300)), CancelToken())
    assert isinstance(next(stream), TextDelta)
    stream.close()  # the consumer walks away mid-reply
    assert join_text(_chat(smollm2, QUESTION, GREEDY)) == expected


def test_model_is_free_again_once_done_is_received(smollm2: LlamaCppModel) -> None:
    stream = smollm2.chat(ChatRequest(QUESTION, GREEDY), CancelToken())
    while not isinstance(next(stream), Done):  # stop at Done, keep the generator open
        pass
    assert _done(_chat(smollm2, QUESTION, GREEDY)).stats.stop_reason == "stop"
    stream.close()


def test_second_chat_while_streaming_is_busy(smollm2: LlamaCppModel) -> None:
    stream = smollm2.chat(ChatRequest(STORY, GenerationParams(max_tokens=50)), CancelToken())
    next(stream)
    with pytest.raises(RuntimeBusy):
        _chat(smollm2, QUESTION, GREEDY)
    stream.close()


def test_gemma_without_template_chats_in_gemma_turns(
    runtime: LlamaCppRuntime, gemma_path: Path
) -> None:
    model = runtime.load(str(gemma_path), OPTIONS)
    try:
        assert model.info.chat_template == "fallback:gemma"
        assert model.info.notice == (
            "This model file has no chat template; using the Gemma format for its "
            "architecture (gemma3)."
        )
        messages = (ChatMessage("system", "Be brief."), ChatMessage("user", "Hi"))
        rendered = model.render_prompt(messages)
        assert rendered.text == (
            "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
        )
        tokens = rendered.tokens
        assert tokens[0] == rendered.bos_id and tokens.count(rendered.bos_id) == 1
        start_of_turn, end_of_turn = tokens[1], tokens[-5]
        assert tokens.count(start_of_turn) == 2 and tokens.count(end_of_turn) == 1  # special
        assert {start_of_turn, end_of_turn} <= set(rendered.stop_ids)
        events = _chat(model, messages, GenerationParams(temperature=0.0, seed=1, max_tokens=24))
        reply = join_text(events)
        assert reply.strip() != ""
        assert "<start_of_turn>" not in reply and "<end_of_turn>" not in reply
        lines = {line.strip() for line in reply.splitlines()}
        assert not lines & {"user", "model"}, f"reply runs into a new turn: {reply!r}"
    finally:
        model.unload()


def _stream_then_signal(model: LlamaCppModel, sig: signal.Signals) -> tuple[str, RuntimeCrashed]:
    received: list[StreamEvent] = []
    stream = model.chat(ChatRequest(STORY, GenerationParams(max_tokens=900)), CancelToken())
    with pytest.raises(RuntimeCrashed) as caught:
        for event in stream:
            received.append(event)
            if len(received) == 2:
                os.kill(model.pid, sig)
    return join_text(received), caught.value


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGABRT])
def test_killed_worker_raises_runtime_crashed_and_reload_works(
    runtime: LlamaCppRuntime, smollm2_path: Path, fresh_smollm2: LlamaCppModel, sig: signal.Signals
) -> None:
    partial, error = _stream_then_signal(fresh_smollm2, sig)
    assert partial != ""
    assert error.exit_code == -sig.value
    assert "llama" in error.stderr_tail and error.details == error.stderr_tail
    if sig == signal.SIGABRT:
        assert "Fatal Python error: Aborted" in error.stderr_tail
    assert not fresh_smollm2.alive
    with pytest.raises(ModelNotLoaded):
        _chat(fresh_smollm2, QUESTION, GREEDY)
    again = runtime.load(str(smollm2_path), OPTIONS)
    try:
        assert "Paris" in join_text(_chat(again, QUESTION, GREEDY))
    finally:
        again.unload()


def test_unload_ends_the_worker_process(fresh_smollm2: LlamaCppModel) -> None:
    pid = fresh_smollm2.pid
    assert psutil.pid_exists(pid) and fresh_smollm2.alive
    fresh_smollm2.unload()
    assert not psutil.pid_exists(pid)
    assert not fresh_smollm2.alive
    fresh_smollm2.unload()  # idempotent
    with pytest.raises(ModelNotLoaded):
        _chat(fresh_smollm2, QUESTION, GREEDY)


def test_unload_from_another_thread_ends_a_running_reply(fresh_smollm2: LlamaCppModel) -> None:
    pid = fresh_smollm2.pid
    params = GenerationParams(max_tokens=900)
    stream = fresh_smollm2.chat(ChatRequest(STORY, params), CancelToken())
    assert isinstance(next(stream), TextDelta)
    unloader = threading.Thread(target=fresh_smollm2.unload)
    started = time.perf_counter()
    unloader.start()
    try:
        last = [event for event in stream][-1]
        assert isinstance(last, Done) and last.stats.stop_reason == "cancelled"
    except ModelNotLoaded:
        pass  # the worker was gone before its last message was read: also a clean end
    unloader.join(timeout=5)
    assert time.perf_counter() - started < 1.0
    assert not psutil.pid_exists(pid)


@pytest.fixture()
def no_spawn(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a worker was started for an invalid file")

    monkeypatch.setattr(runtime_module.WorkerProcess, "spawn", fail)


@pytest.mark.usefixtures("no_spawn")
def test_bad_magic_is_rejected_before_any_worker(runtime: LlamaCppRuntime, tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOPE" + bytes(1024))
    with pytest.raises(InvalidModelFile) as caught:
        runtime.load(str(bad), OPTIONS)
    assert "GGUF" in caught.value.reason


@pytest.mark.usefixtures("no_spawn")
def test_truncated_file_is_rejected_before_any_worker(
    runtime: LlamaCppRuntime, smollm2_path: Path, tmp_path: Path
) -> None:
    half = tmp_path / "half.gguf"
    half.write_bytes(smollm2_path.read_bytes()[: smollm2_path.stat().st_size // 2])
    with pytest.raises(InvalidModelFile) as caught:
        runtime.load(str(half), OPTIONS)
    assert "truncated" in caught.value.reason
