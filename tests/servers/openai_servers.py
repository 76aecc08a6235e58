"""OpenAI-compatible servers on loopback: llama-cpp-python's real one, and a fault server.

The fault server speaks the OpenAI streaming format (SSE `data: {...}` lines, `data: [DONE]`,
chunked transfer encoding as uvicorn sends it) and misbehaves on request: error statuses with
OpenAI-style bodies, a dropped connection, a malformed chunk, an error event, a stall.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx


@dataclass(frozen=True)
class FaultPlan:
    """How the fault server answers; the default streams "Hello, world!" and stops.

    Attributes:
        models: the model ids `/v1/models` lists; chat for any other answers 404.
        pieces: the content deltas of a reply, one chunk each.
        finish_reason: the last chunk's finish reason (None: the stream just ends).
        usage: send a usage chunk when the client asks (`stream_options.include_usage`).
        status: answer chat with this status and an OpenAI-style error body instead.
        error_message: the error body's message.
        api_key: when set, requests without `Authorization: Bearer <api_key>` get 401.
        drop_after: close the connection abruptly after this many content chunks.
        malformed_after: send a broken JSON chunk after this many content chunks.
        error_event_after: send `data: {"error": ...}` after this many content chunks.
        stall_after: stop for `stall_s` after this many content chunks.
        stall_s: how long a stall lasts (ended early by `FaultServer.reset`/`stop`).
        headers_delay_s: wait this long before sending any response's headers.
        chunk_delay_s: pause between chunks.
        version: what `GET /version` answers ("" for 404).
        max_model_len: listed per model when > 0 (as vLLM does).
    """

    models: tuple[str, ...] = ("fault-model",)
    pieces: tuple[str, ...] = ("Hello", ",", " world", "!")
    finish_reason: str | None = "stop"
    usage: bool = True
    status: int = 200
    error_message: str = "The server had an error while processing your request."
    api_key: str = ""
    drop_after: int | None = None
    malformed_after: int | None = None
    error_event_after: int | None = None
    stall_after: int | None = None
    stall_s: float = 0.0
    headers_delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    version: str = ""
    max_model_len: int = 0


@dataclass(frozen=True)
class RecordedRequest:
    """A request the fault server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FaultServer:
    """An OpenAI-compatible server on 127.0.0.1 in a thread, following `plan`."""

    plan: FaultPlan = field(default_factory=FaultPlan)
    requests: list[RecordedRequest] = field(default_factory=list)
    _httpd: ThreadingHTTPServer | None = None
    _release: threading.Event = field(default_factory=threading.Event)

    @property
    def base_url(self) -> str:
        """The API root, "http://127.0.0.1:PORT/v1"."""
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> FaultServer:
        """Listen on an ephemeral port and serve in a daemon thread."""
        server = self

        class Handler(_FaultHandler):
            fault_server = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def reset(self, plan: FaultPlan | None = None) -> None:
        """Follow `plan` (default: well-behaved) from now on; end stalls; forget requests."""
        self._release.set()
        self._release = threading.Event()
        self.plan = plan or FaultPlan()
        self.requests.clear()

    def stall(self, seconds: float) -> None:
        """Wait `seconds`, or until the next reset/stop."""
        self._release.wait(seconds)

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._release.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()


class _FaultHandler(BaseHTTPRequestHandler):
    fault_server: FaultServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def version_string(self) -> str:
        return "FaultServer/1.0"

    def do_GET(self) -> None:
        self._record({})
        plan = self.fault_server.plan
        if plan.headers_delay_s:
            self.fault_server.stall(plan.headers_delay_s)
        with contextlib.suppress(OSError):  # the client gave up waiting
            self._answer_get(plan)

    def _answer_get(self, plan: FaultPlan) -> None:
        if not self._authorized(plan):
            return
        if self.path.rstrip("/") == "/v1/models":
            data = [
                {"id": m, "object": "model", "owned_by": "fault"}
                | ({"max_model_len": plan.max_model_len} if plan.max_model_len else {})
                for m in plan.models
            ]
            self._json(200, {"object": "list", "data": data})
        elif self.path == "/version" and plan.version:
            self._json(200, {"version": plan.version})
        else:
            self._json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        self._record(body)
        with contextlib.suppress(OSError):  # the client went away (cancel, timeout)
            self._answer_chat(self.fault_server.plan, body)

    def _answer_chat(self, plan: FaultPlan, body: dict[str, Any]) -> None:
        if not self._authorized(plan):
            return
        if plan.headers_delay_s:
            self.fault_server.stall(plan.headers_delay_s)
        if plan.status != 200:
            error = {"message": plan.error_message, "type": "server_error", "code": None}
            self._json(plan.status, {"error": error})
            return
        model = body.get("model")
        if model not in plan.models:
            message = f"The model `{model}` does not exist."
            error = {"message": message, "type": "invalid_request_error", "code": "404"}
            self._json(404, {"error": error})
            return
        self._stream(plan, str(model), body)

    def _stream(self, plan: FaultPlan, model: str, body: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        for index, piece in enumerate(plan.pieces):
            if index == plan.drop_after:
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if index == plan.malformed_after:
                self._event('{"id": "x", "choices": [{"delta": {"content": "oops"')
            if index == plan.error_event_after:
                self._event(json.dumps({"error": {"message": "CUDA out of memory"}}))
            if index == plan.stall_after:
                self.fault_server.stall(plan.stall_s)
            self._event(json.dumps(_chunk(model, {"content": piece}, None)))
            if plan.chunk_delay_s:
                time.sleep(plan.chunk_delay_s)
        if plan.finish_reason is not None:
            self._event(json.dumps(_chunk(model, {}, plan.finish_reason)))
        wants_usage = (body.get("stream_options") or {}).get("include_usage")
        if plan.usage and wants_usage:
            usage = {"prompt_tokens": 11, "completion_tokens": len(plan.pieces)}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            self._event(json.dumps(_chunk(model, None, None) | {"choices": [], "usage": usage}))
        self._event("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _event(self, data: str) -> None:
        payload = f"data: {data}\n\n".encode()
        self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        self.wfile.flush()

    def _authorized(self, plan: FaultPlan) -> bool:
        if not plan.api_key or self.headers.get("Authorization") == f"Bearer {plan.api_key}":
            return True
        error = {
            "message": "Incorrect API key provided.",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
        self._json(401, {"error": error})
        return False

    def _json(self, status: int, body: object) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        # One request per connection: a stopped server then really is gone for the client.
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self.wfile.write(payload)

    def _record(self, body: dict[str, Any]) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.fault_server.requests.append(RecordedRequest(self.command, self.path, headers, body))


def _chunk(model: str, delta: dict[str, str] | None, finish: str | None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {
        "id": "chatcmpl-fault",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [choice] if delta is not None else [],
    }


@dataclass(frozen=True)
class LlamaCppServer:
    """A running `python -m llama_cpp.server`."""

    base_url: str
    model: str
    process: subprocess.Popen[bytes]
    log_path: Path


MODEL_ALIAS = "smollm2-135m-instruct"


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_llama_cpp_server(
    model_path: Path, log_path: Path, timeout_s: float = 60.0, n_threads: int | None = None
) -> LlamaCppServer:
    """Start llama-cpp-python's server on a free loopback port; wait until it lists a model.

    `n_threads=None` keeps the server's default, half the logical cores: on a 2-core box
    that is 1 thread, which also stays steady (about 54 tok/s for SmolLM2) while other tests
    load the CPU, where 2 threads spin against them and can fall below 10 tok/s.

    Raises:
        RuntimeError: the server exited or did not answer within `timeout_s`.
    """
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path),
        "--model_alias", MODEL_ALIAS,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", "2048",
        "--verbose", "false",
        *(["--n_threads", str(n_threads)] if n_threads else []),
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"llama_cpp.server exited ({process.returncode}):\n{_tail(log_path)}"
            )
        try:
            reply = httpx.get(f"{base_url}/models", timeout=1.0)
            if reply.status_code == 200 and reply.json()["data"]:
                model = reply.json()["data"][0]["id"]
                return LlamaCppServer(base_url, model, process, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_process(process)
    raise RuntimeError(f"llama_cpp.server did not answer in {timeout_s} s:\n{_tail(log_path)}")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill after 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
