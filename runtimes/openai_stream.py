"""Reads the SDK's blocking stream on a helper thread, so a cancel never waits on a socket.

The SDK's `Stream` blocks in a socket read until the server sends the next chunk; a slow or
stalled server would hold a cancel for as long as the read timeout. Here a daemon thread
owns the request and the stream and hands chunks over a queue; the consumer polls the queue
and the cancel token. On stop, the connection's socket is shut down, which wakes the blocked
read at once (closing the response from another thread would not: `close()` on a socket does
not interrupt a `recv()` already waiting in it).
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from openai import Stream
from openai.types.chat import ChatCompletionChunk

from runtimes.base import CancelToken

POLL_S = 0.02


@dataclass(frozen=True, slots=True)
class ChunkArrived:
    """One parsed chunk and when it arrived (`time.monotonic()`)."""

    chunk: ChatCompletionChunk
    at: float


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """The server ended the stream (`data: [DONE]` or end of body)."""


@dataclass(frozen=True, slots=True)
class StreamFailed:
    """The request or the stream raised; `opened` is True once the reply had started."""

    error: Exception
    opened: bool


@dataclass(frozen=True, slots=True)
class StreamCancelled:
    """The consumer's cancel token was set."""


PumpItem = ChunkArrived | StreamEnded | StreamFailed | StreamCancelled


class ChunkPump:
    """Runs `open_stream()` and iterates it on a daemon thread.

    Args:
        open_stream: sends the request and returns the SDK's stream (blocks until headers).
        poll_s: how often `next_item` looks at the cancel token while nothing arrives.
    """

    def __init__(
        self,
        open_stream: Callable[[], Stream[ChatCompletionChunk]],
        poll_s: float = POLL_S,
    ) -> None:
        self._open_stream = open_stream
        self._poll_s = poll_s
        self._items: queue.SimpleQueue[PumpItem] = queue.SimpleQueue()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._stream: Stream[ChatCompletionChunk] | None = None
        self._thread = threading.Thread(target=self._run, name="openai-stream", daemon=True)

    def start(self) -> None:
        """Send the request on the helper thread."""
        self._thread.start()

    def next_item(self, cancel: CancelToken) -> PumpItem:
        """The next chunk, the end, a failure, or `StreamCancelled` within `poll_s` of a cancel
        or a `stop()`."""
        while True:
            if cancel.cancelled or self._stopped.is_set():
                return StreamCancelled()
            try:
                return self._items.get(timeout=self._poll_s)
            except queue.Empty:
                continue

    def stop(self) -> None:
        """Stop reading: wake a blocked read and let the helper thread close the stream.

        Idempotent. A thread still waiting for the response headers ends at the client's
        timeout at the latest (the SDK gives no handle on that socket) and then closes it.
        """
        self._stopped.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            _shut_down_socket(stream)

    def _run(self) -> None:
        try:
            stream = self._open_stream()
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which re-raises what it cannot map
            self._items.put(StreamFailed(exc, opened=False))
            return
        with self._lock:
            self._stream = stream
        last: PumpItem = StreamEnded()
        try:
            if self._stopped.is_set():
                return  # stopped while the headers were on their way: read nothing
            for chunk in stream:
                if self._stopped.is_set():
                    return
                self._items.put(ChunkArrived(chunk, time.monotonic()))
        except Exception as exc:  # noqa: BLE001 - as above; after a stop nobody reads it
            last = StreamFailed(exc, opened=True)
        finally:
            # Forget the stream before anyone can see the end: a `stop()` after a finished
            # reply must not shut down a connection that went back to the pool.
            with self._lock:
                self._stream = None
            stream.close()
        self._items.put(last)


def _shut_down_socket(stream: Stream[ChatCompletionChunk]) -> None:
    """Shut the connection's socket down so a read blocked in it returns at once."""
    network_stream = stream.response.extensions.get("network_stream")
    get_extra_info = getattr(network_stream, "get_extra_info", None)
    sock = get_extra_info("socket") if callable(get_extra_info) else None
    if isinstance(sock, socket.socket):
        # The plain socket's shutdown, also for TLS: SSLSocket.shutdown would also drop its
        # SSL object under the reading thread's feet. The read then fails on its own thread.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
