"""Run an http.server handler on 127.0.0.1 (a free port) in a background thread."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Generic, TypeVar

T = TypeVar("T")


def serve_in_thread(
    handler: type[BaseHTTPRequestHandler],
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Listen on 127.0.0.1 on a free port and serve from a daemon thread."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return httpd, thread


def stop_serving(httpd: ThreadingHTTPServer | None, thread: threading.Thread | None) -> None:
    """Stop serving, close the socket and wait a little for the thread."""
    if httpd is not None:
        httpd.shutdown()
        httpd.server_close()
    if thread is not None:
        thread.join(timeout=5)


class RequestLog(Generic[T]):
    """The requests a test server answered, safe to read right after a client returns.

    A client can finish reading a reply a moment before the handler thread records it, so
    `entries()` first waits (up to `settle_s`) for handlers still answering. Handlers call
    `started()` first and `record()` last (in a `finally`).
    """

    def __init__(self, settle_s: float = 2.0) -> None:
        self._entries: list[T] = []
        self._in_flight = 0
        self._settled = threading.Condition()
        self._settle_s = settle_s

    def started(self) -> None:
        """A handler began answering."""
        with self._settled:
            self._in_flight += 1

    def record(self, entry: T) -> None:
        """A handler answered: note its request."""
        with self._settled:
            self._entries.append(entry)
            self._in_flight -= 1
            self._settled.notify_all()

    def entries(self) -> list[T]:
        """Every answered request so far (after the handlers in flight are done)."""
        with self._settled:
            self._settled.wait_for(lambda: self._in_flight == 0, timeout=self._settle_s)
            return list(self._entries)
