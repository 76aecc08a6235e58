"""A loopback HTTP file server with byte ranges, redirects and injectable faults.

`RangeServer` serves named files (`{url_path: Path}` or raw bytes) on 127.0.0.1 with HEAD,
`Range: bytes=a-b`, `bytes=a-` and `bytes=-n` (206 + Content-Range), `Accept-Ranges: bytes`,
302 redirects from one path to another (like a Hugging Face resolve URL to its CDN), and
per-path faults (`Fault`): ignore Range, a fixed status, a connection dropped at an offset, a
delay, other bytes, a required token. It records every request so tests can check what was fetched.

Use `serve_files(...)` (a context manager) or the `range_server` pytest fixture
(`from tests.servers.range_server import range_server_fixture  # noqa: F401`).
"""

from __future__ import annotations

import contextlib
import io
import re
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.servers.loopback import RequestLog, serve_in_thread, stop_serving

_PIECE = 64 * 1024


@dataclass(frozen=True, slots=True)
class Fault:
    """How the server misbehaves for one path; the default behaves.

    Attributes:
        ignore_range: answer 200 with the whole body, no `Accept-Ranges`.
        status: answer every request with this status (and a short text body).
        drop_at: hang up (close the connection) once an answer reaches this file offset, as
            a server whose copy ends there would; answers starting there send nothing.
        delay_s: wait this long before answering each request.
        body: serve these bytes (e.g. an HTML page) instead of the file.
        content_type: the answer's Content-Type.
        token: when set, requests without `Authorization: Bearer <token>` get 401.
    """

    ignore_range: bool = False
    status: int | None = None
    drop_at: int | None = None
    delay_s: float = 0.0
    body: bytes | None = None
    content_type: str = "application/octet-stream"
    token: str | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """One request the server saw.

    Attributes:
        method: "GET" or "HEAD".
        path: the URL path.
        range: the Range header ("" when absent).
        authorization: the Authorization header ("" when absent).
        sent: body bytes written in the answer (what reached the socket).
    """

    method: str
    path: str
    range: str
    authorization: str
    sent: int


class RangeServer:
    """The server; `start()` it, add files, read `requests`, `stop()` it."""

    def __init__(self) -> None:
        self.files: dict[str, Path | bytes] = {}
        self.redirects: dict[str, str] = {}
        self.faults: dict[str, Fault] = {}
        self._log: RequestLog[Request] = RequestLog()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        assert self._httpd is not None, "start() the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def url(self, path: str) -> str:
        """The full URL of a path such as "/m.gguf"."""
        return self.base_url + path

    def add(self, path: str, content: Path | bytes, fault: Fault | None = None) -> str:
        """Serve a file (or bytes) at `path`, optionally with a fault; returns its URL."""
        self.files[path] = content
        if fault is not None:
            self.faults[path] = fault
        return self.url(path)

    def redirect(self, path: str, target: str) -> str:
        """Answer `path` with a 302 to `target` (a path on this server); returns its URL."""
        self.redirects[path] = target
        return self.url(path)

    def bytes_sent(self, path: str | None = None) -> int:
        """Body bytes sent in all answers (for one path, or all)."""
        return sum(r.sent for r in self.requests if path is None or r.path == path)

    def started(self) -> None:
        """A handler began answering a request (handler use)."""
        self._log.started()

    def record(self, request: Request) -> None:
        """Note one answered request (handler use)."""
        self._log.record(request)

    @property
    def requests(self) -> list[Request]:
        """Every request answered so far (see `RequestLog`)."""
        return self._log.entries()

    def start(self) -> RangeServer:
        """Listen on 127.0.0.1 on a free port and serve from a background thread."""
        handler = type("Handler", (_Handler,), {"owner": self})
        self._httpd, self._thread = serve_in_thread(handler)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        stop_serving(self._httpd, self._thread)


class _Handler(BaseHTTPRequestHandler):
    owner: RangeServer
    protocol_version = "HTTP/1.1"

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_GET(self) -> None:
        self._answer(head=False)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests read `requests` instead."""

    def _answer(self, *, head: bool) -> None:
        path = self.path.split("?", 1)[0]
        fault = self.owner.faults.get(path, Fault())
        sent = 0
        self.owner.started()
        try:
            time.sleep(fault.delay_s)
            sent = self._respond(path, fault, head=head)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client stopped reading: fine
        finally:
            self.owner.record(
                Request(
                    self.command,
                    path,
                    self.headers.get("Range", ""),
                    self.headers.get("Authorization", ""),
                    sent,
                )
            )

    def _respond(self, path: str, fault: Fault, *, head: bool) -> int:
        if path in self.owner.redirects:
            self._short(302, "", {"Location": self.owner.redirects[path]})
            return 0
        content = self.owner.files.get(path)
        if content is None:
            self._short(404, "Entry not found")
            return 0
        if fault.status is not None:
            self._short(fault.status, f"status {fault.status}")
            return 0
        if fault.token is not None and self.headers.get("Authorization") != f"Bearer {fault.token}":
            self._short(401, "Invalid credentials")
            return 0
        data = fault.body if fault.body is not None else content
        size = len(data) if isinstance(data, bytes) else data.stat().st_size
        span = None if fault.ignore_range else _parse_range(self.headers.get("Range"), size)
        if span == (-1, -1):
            self._short(416, "", {"Content-Range": f"bytes */{size}"})
            return 0
        start, end = span or (0, size)
        self.send_response(206 if span else 200)
        self.send_header("Content-Type", fault.content_type)
        self.send_header("Content-Length", str(end - start))
        if not fault.ignore_range:
            self.send_header("Accept-Ranges", "bytes")
        if span:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.end_headers()
        if head:
            return 0
        return self._send_body(data, start, end, fault.drop_at)

    def _send_body(self, data: Path | bytes, start: int, end: int, drop_at: int | None) -> int:
        stop = end if drop_at is None else max(start, min(end, drop_at))
        sent = 0
        with contextlib.ExitStack() as stack:
            handle = (
                io.BytesIO(data)
                if isinstance(data, bytes)
                else stack.enter_context(data.open("rb"))
            )
            handle.seek(start)
            while start + sent < stop:
                piece = handle.read(min(_PIECE, stop - start - sent))
                self.wfile.write(piece)
                sent += len(piece)
        if stop < end:  # the fault: hang up mid-answer
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
        return sent

    def _short(self, status: int, text: str, headers: Mapping[str, str] | None = None) -> None:
        body = text.encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """`bytes=a-b`, `bytes=a-`, `bytes=-n` -> (start, end exclusive); None: no (valid) Range.

    (-1, -1) means the range is unsatisfiable (starts at or past the end).
    """
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", (header or "").strip())
    if match is None or match[1] == match[2] == "":
        return None
    if match[1] == "":
        return max(size - int(match[2]), 0), size
    start = int(match[1])
    end = size if match[2] == "" else min(int(match[2]) + 1, size)
    if start >= size or end <= start:
        return -1, -1
    return start, end


@contextlib.contextmanager
def serve_files(files: Mapping[str, Path | bytes] | None = None) -> Iterator[RangeServer]:
    """A started `RangeServer` serving `files` ({url_path: Path or bytes}), stopped after."""
    server = RangeServer().start()
    for path, content in (files or {}).items():
        server.add(path, content)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="range_server")
def range_server_fixture() -> Iterator[RangeServer]:
    """An empty `RangeServer` on 127.0.0.1 for one test; add files with `.add(...)`."""
    with serve_files() as server:
        yield server
