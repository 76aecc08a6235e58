"""Ollama's NDJSON replies, read on a helper thread so a cancel or a stalled server never blocks.

The `ollama` client iterates a streaming reply inside its own generator, which gives no handle
to stop a read that is waiting on a silent server. `NdjsonStream` reads with httpx on a
daemon thread and hands lines over through a queue; the caller polls its cancel token while it
waits, and `close()` shuts the socket down, which wakes the blocked read at once.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from runtimes.base import CancelToken
from runtimes.errors import ExternalFailure, WorkbenchError
from runtimes.ollama_errors import (
    OllamaServerError,
    dropped,
    error_text,
    http_error,
    malformed,
    not_running,
    timed_out,
)

_log = logging.getLogger(__name__)

POLL_S = 0.02
"""How often a waiting caller looks at its cancel token (bounds cancel latency)."""

_END_GRACE_S = 0.1
"""How long a reply whose last object was read may take to end before its socket is shut."""

Chunk = dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Failed:
    error: WorkbenchError


class _End:
    pass


_END = _End()


class NdjsonStream:
    """One request whose reply is NDJSON (or a single JSON object), read on a helper thread.

    Use as a context manager; `chunks()` yields the parsed objects.

    Args:
        http: the client to send with (its base URL is the server's).
        url: the server's base URL, for messages.
        path: e.g. "/api/chat".
        body: the JSON request body.
        model: the model the request is about ("" if none), for a 404's message.
        connect_timeout_s: how long connecting may take.
        read_timeout_s: the longest silence allowed between two pieces of the reply.
    """

    def __init__(
        self,
        http: httpx.Client,
        url: str,
        path: str,
        body: Mapping[str, object],
        *,
        model: str,
        connect_timeout_s: float,
        read_timeout_s: float,
    ) -> None:
        self._http = http
        self._url = url
        self._path = path
        self._body = dict(body)
        self._model = model
        self._read_timeout_s = read_timeout_s
        self._timeout = httpx.Timeout(
            connect=connect_timeout_s, read=read_timeout_s, write=read_timeout_s, pool=None
        )
        self._queue: queue.Queue[Chunk | _Failed | _End] = queue.Queue()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._socket: Any = None
        self._thread = threading.Thread(target=self._read, name=f"ollama{path}", daemon=True)

    def __enter__(self) -> NdjsonStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A reply read to its end is nearly done: let its connection be reused.
        self.close(grace_s=_END_GRACE_S if exc is None else 0.0)

    def chunks(self, cancel: CancelToken | None = None) -> Iterator[Chunk]:
        """The reply's JSON objects in order; returns early (and closes) once `cancel` is set.

        Raises:
            ExternalFailure: not running, timed out, dropped, malformed, or an error line.
            UserFacingError: HTTP 404 for the model, or another 4xx.
        """
        self._thread.start()
        while True:
            if cancel is not None and cancel.cancelled:
                self.close()
                return
            try:
                item = self._queue.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if isinstance(item, _End):
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def close(self, *, grace_s: float = 0.0) -> None:
        """Stop reading: shut the socket down so a blocked read returns now. Idempotent.

        Args:
            grace_s: how long the reader may take to finish a reply that is ending anyway
                (its connection then goes back to the pool instead of being shut down).
        """
        if grace_s > 0 and not self._closed.is_set() and self._thread.is_alive():
            self._thread.join(grace_s)
        with self._lock:
            self._closed.set()
            sock, self._socket = self._socket, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError as exc:  # already closed by the server or the reader
                _log.debug("socket shutdown after close: %s", exc)

    def _read(self) -> None:
        """The helper thread: send, then queue each line's object, an end, or one failure."""
        try:
            with self._http.stream(
                "POST", self._path, json=self._body, timeout=self._timeout
            ) as response:
                try:
                    finished = self._read_response(response)
                finally:
                    # Before the connection can go back to the pool and serve another
                    # request: a late close() must not shut that one down.
                    with self._lock:
                        self._socket = None
            if finished:
                self._queue.put(_END)
        except httpx.ConnectError as exc:
            self._fail(not_running(self._url), exc)
        except httpx.ConnectTimeout as exc:
            self._fail(not_running(self._url), exc)
        except httpx.TimeoutException as exc:
            self._fail(timed_out(self._url, self._read_timeout_s), exc)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            self._fail(dropped(self._url, str(exc)), exc)
        except httpx.HTTPError as exc:
            self._fail(ExternalFailure(f"Talking to Ollama at {self._url} failed: {exc}."), exc)

    def _read_response(self, response: httpx.Response) -> bool:
        """Queue the reply's objects; True when it ended normally (else closed or failed)."""
        if not self._hold_socket(response):
            return False
        if response.status_code >= 400:
            response.read()
            body = response.text
            self._fail(http_error(response.status_code, error_text(body), self._model, body))
            return False
        for line in response.iter_lines():
            if self._closed.is_set():
                return False
            if line.strip() and not self._take(line):
                return False
        return True

    def _hold_socket(self, response: httpx.Response) -> bool:
        """Keep the response's socket for `close()`; False when closed already."""
        stream = response.extensions.get("network_stream")
        with self._lock:
            if self._closed.is_set():
                return False
            if stream is not None:
                self._socket = stream.get_extra_info("socket")
            return True

    def _take(self, line: str) -> bool:
        """Queue one line's object; False (after queueing a failure) when the line is bad."""
        try:
            chunk = json.loads(line)
        except ValueError:
            self._fail(malformed(line))
            return False
        if not isinstance(chunk, dict):
            self._fail(malformed(line))
            return False
        if "error" in chunk:
            self._fail(OllamaServerError(str(chunk["error"]), details=line))
            return False
        self._queue.put(chunk)
        return True

    def _fail(self, error: WorkbenchError, cause: BaseException | None = None) -> None:
        if self._closed.is_set():
            return  # our own close() broke the read: nobody waits for a reason
        if cause is not None:
            error.__cause__ = cause
            if not error.details:
                error.details = f"{type(cause).__name__}: {cause}"
        self._queue.put(_Failed(error))


class OllamaConnection:
    """The HTTP side shared by the runtime and its model handles: one client, one server.

    Args:
        url: the server's base URL.
        connect_timeout_s: how long connecting may take.
        read_timeout_s: the longest silence allowed inside a streamed reply.
    """

    def __init__(self, url: str, *, connect_timeout_s: float, read_timeout_s: float) -> None:
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        headers = {"Accept": "application/json"}
        if api_key := os.environ.get("OLLAMA_API_KEY"):  # as ollama.Client sends it
            headers["Authorization"] = f"Bearer {api_key}"
        self.http = httpx.Client(base_url=url, follow_redirects=True, headers=headers)

    def stream(self, path: str, body: Mapping[str, object], *, model: str = "") -> NdjsonStream:
        """A streamed request (not sent before its `chunks()` is iterated)."""
        return NdjsonStream(
            self.http,
            self.url,
            path,
            body,
            model=model,
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()
