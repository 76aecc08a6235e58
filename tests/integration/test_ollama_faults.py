"""Ollama chat under cancel and faults: each failure a clear error, the reply so far kept."""

from __future__ import annotations

import math
import socket
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
    LoadedModelInfo,
    LoadOptions,
    StreamEvent,
    TextDelta,
)
from runtimes.errors import ExternalFailure, ModelLoadFailed, RuntimeBusy
from runtimes.ollama import OllamaModel, OllamaRuntime
from runtimes.ollama_stream import OllamaConnection
from tests.servers.fixtures_ollama import SMOLLM2, OllamaTestServer

pytestmark = pytest.mark.integration

OPTIONS = LoadOptions(n_ctx=1024)
LONG = ChatRequest(
    (ChatMessage("user", "Write a very long story about a dragon who learns to cook."),),
    GenerationParams(temperature=0.7, seed=1, max_tokens=400),
)
CANCEL_LIMIT_S = 0.2


@pytest.fixture()
def model(ollama_runtime: OllamaRuntime) -> OllamaModel:
    return ollama_runtime.load(SMOLLM2, OPTIONS)


def _collect(stream: Iterator[StreamEvent]) -> tuple[list[TextDelta], BaseException | None]:
    """The text events a stream gave before it ended or raised, and what it raised."""
    deltas: list[TextDelta] = []
    try:
        for event in stream:
            if isinstance(event, TextDelta):
                deltas.append(event)
            else:
                pytest.fail(f"the stream ended with {event} instead of an error")
    except ExternalFailure as exc:
        return deltas, exc
    return deltas, None


def _cancel_from_another_thread(
    stream: Iterator[StreamEvent], cancel: CancelToken, after_deltas: int, delay_s: float
) -> tuple[list[StreamEvent], float]:
    """Consume `stream`; `delay_s` after the `after_deltas`-th delta, cancel from a timer thread.

    Returns the events and the seconds from `cancel()` to the `Done`.
    """
    events: list[StreamEvent] = []
    cancelled_at: list[float] = []

    def fire() -> None:
        cancelled_at.append(time.perf_counter())
        cancel.cancel()

    timer: threading.Timer | None = None
    for event in stream:
        events.append(event)
        deltas = sum(isinstance(e, TextDelta) for e in events)
        if deltas == after_deltas and timer is None:
            timer = threading.Timer(delay_s, fire)
            timer.start()
    assert timer is not None and cancelled_at, "the stream ended before the cancel"
    return events, time.perf_counter() - cancelled_at[0]


def _wait_for_server_run(server: OllamaTestServer, within_s: float = 5.0) -> dict[str, object]:
    """How the server's generation ended, once it has (it ends when its client has left)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        run = server.last_run()
        if run is not None:
            return run
        time.sleep(0.05)
    pytest.fail(f"the server did not end the cancelled generation within {within_s} s")


def test_cancel_mid_stream_ends_within_200_ms_and_stops_the_server(
    model: OllamaModel, ollama_server: OllamaTestServer
) -> None:
    cancel = CancelToken()
    events, latency = _cancel_from_another_thread(model.chat(LONG, cancel), cancel, 3, 0.0)
    assert latency < CANCEL_LIMIT_S
    done = events[-1]
    assert isinstance(done, Done)
    assert done.stats.stop_reason == "cancelled"
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert done.stats.completion_tokens == len(deltas) >= 3
    assert done.stats.total_time_s > 0
    run = _wait_for_server_run(ollama_server)  # the server saw the client leave
    assert run["reason"] == "cancelled"
    assert isinstance(run["eval_count"], int) and run["eval_count"] < 400


def test_cancel_while_the_server_is_silent_ends_within_200_ms(
    model: OllamaModel, ollama_server: OllamaTestServer
) -> None:
    ollama_server.fault("stall", after=2, seconds=10)
    cancel = CancelToken()
    events, latency = _cancel_from_another_thread(model.chat(LONG, cancel), cancel, 2, 0.3)
    assert latency < CANCEL_LIMIT_S
    assert [type(e) for e in events] == [TextDelta, TextDelta, Done]
    done = events[-1]
    assert isinstance(done, Done) and done.stats.stop_reason == "cancelled"
    # The connection was really closed: the server stops long before its 10 s stall ends.
    assert _wait_for_server_run(ollama_server, within_s=3.0)["reason"] == "cancelled"


def test_a_dropped_connection_keeps_the_text_so_far(
    model: OllamaModel, ollama_server: OllamaTestServer
) -> None:
    ollama_server.fault("drop", after=3)
    deltas, error = _collect(model.chat(LONG, CancelToken()))
    assert len(deltas) == 3
    assert error is not None
    assert "broke before the reply was complete" in str(error)
    assert "The reply so far is kept" in str(error)


def test_a_malformed_line_is_a_malformed_reply(
    model: OllamaModel, ollama_server: OllamaTestServer
) -> None:
    ollama_server.fault("malformed", after=3)
    deltas, error = _collect(model.chat(LONG, CancelToken()))
    assert len(deltas) == 3
    assert error is not None
    assert str(error).startswith("Ollama sent a malformed reply")


def test_http_500_carries_the_servers_error(
    model: OllamaModel, ollama_server: OllamaTestServer
) -> None:
    ollama_server.fault("http500")
    deltas, error = _collect(model.chat(LONG, CancelToken()))
    assert deltas == []
    assert error is not None
    assert "llama runner process has terminated: signal: killed" in str(error)
    assert "HTTP 500" in str(error)


def test_a_load_the_server_refuses_is_a_failed_load(
    ollama_runtime: OllamaRuntime, ollama_server: OllamaTestServer
) -> None:
    refusal = "model requires more system memory (9.1 GiB) than is available (3.2 GiB)"
    ollama_server.fault("http500", message=refusal)
    with pytest.raises(ModelLoadFailed) as caught:
        ollama_runtime.load(SMOLLM2, OPTIONS)
    assert caught.value.message.startswith(f"Ollama could not load {SMOLLM2}: {refusal}.")


def test_a_server_slower_than_the_timeout_fails_in_time(
    model: OllamaModel, ollama_server: OllamaTestServer
) -> None:
    # The timeout must outlast the prompt (slow on a busy machine), so it is sized from a
    # reply just measured; the server then stalls far longer than the timeout.
    probe = list(
        model.chat(ChatRequest(LONG.messages, GenerationParams(max_tokens=2)), CancelToken())
    )
    assert isinstance(probe[-1], Done)
    timeout_s = float(max(1, math.ceil(3 * probe[-1].stats.total_time_s)))
    runtime = OllamaRuntime(ollama_server.url, read_timeout_s=timeout_s)
    try:
        slow = runtime.load(SMOLLM2, OPTIONS)
        ollama_server.fault("stall", after=2, seconds=timeout_s + 10)
        started = time.perf_counter()
        deltas, error = _collect(slow.chat(LONG, CancelToken()))
        elapsed = time.perf_counter() - started
    finally:
        runtime.close()
    assert len(deltas) == 2, (error, elapsed)
    assert error is not None
    assert str(error).startswith(f"Ollama did not answer within {timeout_s:g} s")
    assert elapsed < timeout_s + 10  # gave up at its timeout, not when the server spoke again


def test_a_server_that_is_not_running_is_named() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    runtime = OllamaRuntime(url)
    with pytest.raises(ExternalFailure, match=f"Ollama is not running at {url}"):
        runtime.list_models()
    with pytest.raises(ExternalFailure, match=f"Ollama is not running at {url}"):
        runtime.load(SMOLLM2, OPTIONS)
    info = LoadedModelInfo("Ollama", 1024, 0, 0, 0, "llama", "ollama", "", 0.0)
    connection = OllamaConnection(url, connect_timeout_s=1.0, read_timeout_s=1.0)
    handle = OllamaModel(
        connection,
        SMOLLM2,
        info,
        load_options={"num_ctx": 1024},
        keep_alive=None,
        unload=runtime.unload,
    )
    deltas, error = _collect(handle.chat(LONG, CancelToken()))
    assert deltas == []
    assert error is not None and f"Ollama is not running at {url}" in str(error)
    connection.close()


def test_a_second_reply_while_one_streams_is_refused(model: OllamaModel) -> None:
    first = model.chat(LONG, CancelToken())
    assert isinstance(next(first), TextDelta)
    with pytest.raises(RuntimeBusy):
        next(model.chat(LONG, CancelToken()))
    first.close()  # leaving a reply early frees the model
    events = list(
        model.chat(ChatRequest(LONG.messages, GenerationParams(max_tokens=2)), CancelToken())
    )
    assert isinstance(events[-1], Done)
