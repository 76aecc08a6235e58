"""OpenAI-compatible runtime against a loopback server that misbehaves on request.

Each fault must end in a typed, readable error with the text streamed before it kept, and
a cancel must end the stream within 200 ms even while the server stalls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

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
from runtimes.errors import (
    ExternalFailure,
    LoadCancelled,
    ModelLoadFailed,
    ModelNotLoaded,
    RuntimeBusy,
    UserFacingError,
)
from runtimes.openai_compat import OpenAICompatRuntime, OpenAIModel
from runtimes.openai_errors import MalformedReply, ServerTimedOut, ServerUnreachable
from tests.servers.openai_servers import FaultPlan, FaultServer

pytestmark = pytest.mark.integration

REQUEST = ChatRequest((ChatMessage("user", "Say hello."),), GenerationParams(max_tokens=16))
CANCEL_BUDGET_S = 0.2


def _load(server: FaultServer, **runtime_args: object) -> OpenAIModel:
    runtime = OpenAICompatRuntime(server.base_url, **runtime_args)  # type: ignore[arg-type]
    return runtime.load(server.plan.models[0], LoadOptions())


def _collect(stream: Iterator[StreamEvent], into: list[StreamEvent]) -> None:
    for event in stream:
        into.append(event)


def _done(events: list[StreamEvent]) -> Done:
    assert isinstance(events[-1], Done)
    assert sum(isinstance(e, Done) for e in events) == 1
    return events[-1]


def _stream_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "openai-stream" and t.is_alive()}


# --- status, models, load ---------------------------------------------------------------


def test_status_available_counts_models_and_reads_the_version(fault_server: FaultServer) -> None:
    fault_server.reset(FaultPlan(models=("a", "b"), version="0.9.2"))
    status = OpenAICompatRuntime(fault_server.base_url).status()
    assert status.state == "available"
    assert status.detail == "2 models offered: a, b."
    assert status.version == "0.9.2"


def test_status_version_falls_back_to_a_product_server_header(fault_server: FaultServer) -> None:
    status = OpenAICompatRuntime(fault_server.base_url).status()
    assert (status.state, status.version) == ("available", "FaultServer/1.0")


def test_status_is_an_error_about_the_key_on_401(fault_server: FaultServer) -> None:
    fault_server.reset(FaultPlan(api_key="right-key"))
    status = OpenAICompatRuntime(fault_server.base_url, api_key="wrong-key").status()
    assert status.state == "error"
    assert "refused the API key" in status.detail
    assert "Incorrect API key provided." in status.detail
    right = OpenAICompatRuntime(fault_server.base_url, api_key="right-key").status()
    assert right.state == "available"
    models_request = next(r for r in fault_server.requests[::-1] if r.path == "/v1/models")
    assert models_request.headers["authorization"] == "Bearer right-key"
    # The unauthenticated version probe does not get the key.
    assert all(
        "authorization" not in r.headers for r in fault_server.requests if r.path == "/version"
    )


def test_status_of_a_stalled_server_returns_within_its_timeout(fault_server: FaultServer) -> None:
    fault_server.reset(FaultPlan(headers_delay_s=10))
    started = time.monotonic()
    status = OpenAICompatRuntime(fault_server.base_url).status(timeout_s=0.5)
    assert time.monotonic() - started < 1.0
    assert status.state == "error"
    assert "did not answer within 0.5 s" in status.detail


def test_list_models_reads_context_length_and_load_uses_it(fault_server: FaultServer) -> None:
    fault_server.reset(FaultPlan(models=("m1",), max_model_len=8192))
    runtime = OpenAICompatRuntime(fault_server.base_url)
    [model] = runtime.list_models()
    assert (model.name, model.context_length) == ("m1", 8192)
    progress: list[LoadProgress] = []
    loaded = runtime.load("m1", LoadOptions(n_ctx=2048), on_progress=progress.append)
    assert [p.fraction for p in progress] == [0.0, 1.0]
    port = fault_server.base_url.split(":")[2].split("/")[0]
    assert loaded.info.backend == f"OpenAI-compatible (127.0.0.1:{port})"
    assert (loaded.info.n_ctx, loaded.info.n_gpu_layers, loaded.info.chat_template) == (
        8192,
        0,
        "server",
    )
    assert loaded.info.notice == ""


def test_load_of_an_unlisted_model_names_the_models_there(fault_server: FaultServer) -> None:
    fault_server.reset(FaultPlan(models=("qwen", "llama")))
    with pytest.raises(UserFacingError, match=r"no model 'gpt-4'.*'qwen', 'llama'"):
        OpenAICompatRuntime(fault_server.base_url).load("gpt-4", LoadOptions())


def test_load_when_the_server_is_down_is_a_load_failure() -> None:
    server = FaultServer().start()
    url = server.base_url
    server.stop()
    runtime = OpenAICompatRuntime(url)
    with pytest.raises(ServerUnreachable, match="No server answers"):
        runtime.list_models()
    with pytest.raises(ModelLoadFailed, match="No server answers"):
        runtime.load("fault-model", LoadOptions())


def test_load_cancelled_before_it_starts(fault_server: FaultServer) -> None:
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(LoadCancelled):
        OpenAICompatRuntime(fault_server.base_url).load("fault-model", LoadOptions(), cancel=cancel)


# --- streaming ------------------------------------------------------------------------


def test_chat_streams_deltas_then_done_with_the_servers_usage(fault_server: FaultServer) -> None:
    events = list(_load(fault_server).chat(REQUEST, CancelToken()))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hello", ",", " world", "!"]
    stats = _done(events).stats
    assert (stats.prompt_tokens, stats.completion_tokens, stats.stop_reason) == (11, 4, "stop")
    assert 0 < stats.ttft_s <= stats.total_time_s


def test_chat_counts_chunks_when_the_server_sends_no_usage(fault_server: FaultServer) -> None:
    fault_server.reset(FaultPlan(usage=False, finish_reason="length"))
    stats = _done(list(_load(fault_server).chat(REQUEST, CancelToken()))).stats
    assert (stats.prompt_tokens, stats.completion_tokens, stats.stop_reason) == (0, 4, "length")


def test_decode_speed_leaves_out_the_time_to_first_token(fault_server: FaultServer) -> None:
    # 0.4 s before the first token, then 5 tokens 20 ms apart: 4 intervals in about 80 ms,
    # so about 50 tok/s (5 tokens over the whole 0.5 s would read 10 tok/s).
    plan = FaultPlan(
        pieces=("a", "b", "c", "d", "e"), stall_after=0, stall_s=0.4, chunk_delay_s=0.02
    )
    fault_server.reset(plan)
    stats = _done(list(_load(fault_server).chat(REQUEST, CancelToken()))).stats
    assert stats.completion_tokens == 5
    assert 0.4 <= stats.ttft_s < 0.6
    assert 30 < stats.decode_tps < 100
    assert stats.total_time_s >= stats.ttft_s + 0.07


def test_chat_sends_the_sampling_options(fault_server: FaultServer) -> None:
    params = GenerationParams(
        temperature=0.2, top_p=0.9, top_k=7, min_p=0.1, repeat_penalty=1.3, max_tokens=9,
        seed=42, stop=("\n\n", "END"),
    )  # fmt: skip
    model = _load(fault_server)
    list(model.chat(ChatRequest(REQUEST.messages, params), CancelToken()))
    body = fault_server.requests[-1].body
    assert body["model"] == "fault-model"
    assert body["messages"] == [{"role": "user", "content": "Say hello."}]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    sent = {k: body[k] for k in ("temperature", "top_p", "max_tokens", "seed", "stop")}
    assert sent == {
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 9,
        "seed": 42,
        "stop": ["\n\n", "END"],
    }
    extras = {k: body[k] for k in ("top_k", "min_p", "repeat_penalty", "repetition_penalty")}
    assert extras == {"top_k": 7, "min_p": 0.1, "repeat_penalty": 1.3, "repetition_penalty": 1.3}
    list(model.chat(REQUEST, CancelToken()))
    assert "seed" not in fault_server.requests[-1].body
    assert "stop" not in fault_server.requests[-1].body


# --- cancel -----------------------------------------------------------------------------


def _cancel_later(cancel: CancelToken, delay_s: float, stamp: list[float]) -> None:
    def fire() -> None:
        stamp.append(time.monotonic())
        cancel.cancel()

    threading.Timer(delay_s, fire).start()


def test_cancel_while_the_server_stalls_mid_reply_ends_within_200_ms(
    fault_server: FaultServer,
) -> None:
    fault_server.reset(FaultPlan(stall_after=2, stall_s=30))
    model = _load(fault_server)
    before = _stream_threads()
    cancel = CancelToken()
    cancelled_at: list[float] = []
    events: list[StreamEvent] = []
    for event in model.chat(REQUEST, cancel):
        events.append(event)
        if len(events) == 2:
            _cancel_later(cancel, 0.3, cancelled_at)  # while the read blocks on the socket
    done_at = time.monotonic()
    assert done_at - cancelled_at[0] < CANCEL_BUDGET_S
    assert join_text(events) == "Hello,"
    assert _done(events).stats.stop_reason == "cancelled"
    assert _done(events).stats.completion_tokens == 2
    # The blocked read was woken (socket shut down), so the reading thread ends at once
    # instead of waiting out the 30 s stall or the read timeout.
    deadline = time.monotonic() + 1.0
    while _stream_threads() - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _stream_threads() - before


def test_cancel_while_waiting_for_the_response_headers_ends_within_200_ms(
    fault_server: FaultServer,
) -> None:
    model = _load(fault_server)
    fault_server.reset(FaultPlan(headers_delay_s=30))
    cancel = CancelToken()
    cancelled_at: list[float] = []
    _cancel_later(cancel, 0.3, cancelled_at)
    events = list(model.chat(REQUEST, cancel))
    assert time.monotonic() - cancelled_at[0] < CANCEL_BUDGET_S
    assert [type(e) for e in events] == [Done]
    assert _done(events).stats.stop_reason == "cancelled"


def test_a_new_chat_after_a_cancel_works(fault_server: FaultServer) -> None:
    model = _load(fault_server)
    fault_server.reset(FaultPlan(stall_after=1, stall_s=30))
    cancel = CancelToken()
    _cancel_later(cancel, 0.2, [])
    assert _done(list(model.chat(REQUEST, cancel))).stats.stop_reason == "cancelled"
    fault_server.reset()
    assert join_text(list(model.chat(REQUEST, CancelToken()))) == "Hello, world!"


def test_a_second_chat_while_one_streams_is_busy_and_unload_ends_the_first(
    fault_server: FaultServer,
) -> None:
    fault_server.reset(FaultPlan(stall_after=1, stall_s=30))
    model = _load(fault_server)
    first = model.chat(REQUEST, CancelToken())
    assert next(first) == TextDelta("Hello")
    with pytest.raises(RuntimeBusy):
        next(model.chat(REQUEST, CancelToken()))
    threading.Timer(0.2, model.unload).start()
    started = time.monotonic()
    with pytest.raises(ModelNotLoaded, match="unloaded while it was answering"):
        next(first)
    assert time.monotonic() - started < 0.2 + CANCEL_BUDGET_S
    assert not model.alive
    with pytest.raises(ModelNotLoaded):
        next(model.chat(REQUEST, CancelToken()))


# --- faults -----------------------------------------------------------------------------


def _fails(model: OpenAIModel, events: list[StreamEvent]) -> pytest.ExceptionInfo[Exception]:
    with pytest.raises(Exception) as info:
        _collect(model.chat(REQUEST, CancelToken()), events)
    assert not any(isinstance(e, Done) for e in events)
    return info


def test_server_down_at_chat_time_is_an_external_failure() -> None:
    server = FaultServer().start()
    model = _load(server)
    server.stop()
    events: list[StreamEvent] = []
    info = _fails(model, events)
    assert isinstance(info.value, ExternalFailure)
    assert str(info.value).startswith(f"No server answers at {server.base_url}.")
    assert events == []


def test_http_500_is_an_external_failure_with_the_servers_message(
    fault_server: FaultServer,
) -> None:
    model = _load(fault_server)
    fault_server.reset(FaultPlan(status=500, error_message="KV cache is full"))
    events: list[StreamEvent] = []
    info = _fails(model, events)
    assert type(info.value) is ExternalFailure
    assert "HTTP 500" in str(info.value)
    assert "KV cache is full" in str(info.value)
    assert events == []


def test_http_401_at_chat_is_a_user_facing_error_about_the_key(fault_server: FaultServer) -> None:
    model = _load(fault_server, api_key="old-key")
    fault_server.reset(FaultPlan(api_key="new-key"))
    info = _fails(model, [])
    assert type(info.value) is UserFacingError
    assert "refused the API key" in str(info.value)


def test_http_404_model_is_a_user_facing_error_naming_it(fault_server: FaultServer) -> None:
    model = _load(fault_server)
    fault_server.reset(FaultPlan(models=("another-model",)))  # unloaded on the server
    info = _fails(model, [])
    assert type(info.value) is UserFacingError
    assert "no model 'fault-model'" in str(info.value)
    assert "does not exist" in str(info.value)


def test_connection_dropped_mid_stream_keeps_the_text_before(fault_server: FaultServer) -> None:
    fault_server.reset(FaultPlan(drop_after=2))
    events: list[StreamEvent] = []
    info = _fails(_load(fault_server), events)
    assert type(info.value) is ExternalFailure
    assert "dropped in the middle of the reply" in str(info.value)
    assert join_text(events) == "Hello,"


def test_a_stream_that_ends_without_a_finish_reason_is_an_error(fault_server: FaultServer) -> None:
    fault_server.reset(FaultPlan(finish_reason=None, usage=False))
    events: list[StreamEvent] = []
    info = _fails(_load(fault_server), events)
    assert type(info.value) is ExternalFailure
    assert "ended the reply before finishing it" in str(info.value)
    assert join_text(events) == "Hello, world!"


def test_malformed_json_chunk_is_a_malformed_reply_keeping_the_text_before(
    fault_server: FaultServer,
) -> None:
    fault_server.reset(FaultPlan(malformed_after=3))
    events: list[StreamEvent] = []
    info = _fails(_load(fault_server), events)
    assert type(info.value) is MalformedReply
    assert "sent a malformed reply" in str(info.value)
    assert join_text(events) == "Hello, world"


def test_an_error_event_mid_stream_is_an_external_failure_with_its_message(
    fault_server: FaultServer,
) -> None:
    fault_server.reset(FaultPlan(error_event_after=1))
    events: list[StreamEvent] = []
    info = _fails(_load(fault_server), events)
    assert type(info.value) is ExternalFailure
    assert "CUDA out of memory" in str(info.value)
    assert join_text(events) == "Hello"


def test_a_server_slower_than_the_timeout_is_a_timeout_keeping_the_text(
    fault_server: FaultServer,
) -> None:
    fault_server.reset(FaultPlan(stall_after=2, stall_s=10))
    model = _load(fault_server, timeout_s=0.5)
    events: list[StreamEvent] = []
    started = time.monotonic()
    info = _fails(model, events)
    assert time.monotonic() - started < 2.0
    assert type(info.value) is ServerTimedOut
    assert "did not answer within 0.5 s" in str(info.value)
    assert join_text(events) == "Hello,"
