"""An Ollama-protocol server for tests: Ollama's documented API (docs/api.md), real tokens.

    python -m tests.servers.ollama_server --model smollm2:135m=/path/model.gguf \
        [--pullable NAME=PATH ...] [--version 0.21.0]

It binds 127.0.0.1 on a free port and prints `listening on http://127.0.0.1:<port>` when ready.
Like Ollama it loads a model on first use (or on an empty-prompt `/api/generate`), reloads it
for another `num_ctx`, holds one model at a time, queues requests, streams one NDJSON line per
token, reports durations in nanoseconds, and answers errors as `{"error": "..."}` with Ollama's
status codes and wording. Tokens come from llama-cpp-python in this process (`TokenEngine`),
with the model file's own chat template. A final assistant message in `/api/chat` is
continued, as Ollama's library templates do (the turn is left open); only new text streams.

Test-only routes: `POST /_test/fault {"kind", "after", "seconds", "message"}` makes the next
streamed reply "drop" the connection, send a "malformed" line, or "stall" for `seconds` after
`after` text chunks, or the next chat/generate request (a load too) fail with "http500"
(`message` as its error); `POST /_test/reset`; `POST /_test/version {"version"}`;
`GET /_test/last_final` (the last final chunk sent); `GET /_test/last_run` (how the last
generation ended on the server's side, "cancelled" when its client went away).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from runtimes.base import ChatMessage, GenerationParams
from runtimes.gguf_header import read_header
from tests.servers.ollama_store import (
    DEFAULT_NUM_CTX,
    GGUF_TEMPLATE_KEY,
    Fault,
    RunResult,
    ServerState,
    StoredModel,
    TokenEngine,
    keep_alive_seconds,
    now_text,
    sampling,
)

NDJSON = "application/x-ndjson"


def error(status: int, message: str) -> JSONResponse:
    """An error as Ollama answers it."""
    return JSONResponse({"error": message}, status_code=status)


def line(obj: object) -> bytes:
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode()


@dataclass
class Job:
    """One generation request, parsed."""

    model: StoredModel
    messages: list[ChatMessage]
    params: GenerationParams
    n_ctx: int
    keep_alive_s: float
    shape: Callable[[str], dict[str, object]]  # text piece -> chunk
    received: float = field(default_factory=time.perf_counter)


async def generate(state: ServerState, job: Job, fault: Fault | None) -> AsyncIterator[bytes]:
    """Stream one reply: a line per token, then the final line with Ollama's figures."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[str | RunResult | BaseException] = asyncio.Queue()
    stop = threading.Event()
    engine_done: asyncio.Future[None] | None = None
    put = pieces.put_nowait

    def work(engine: TokenEngine) -> None:
        try:
            result = engine.run(
                job.messages, job.params, stop, lambda text: loop.call_soon_threadsafe(put, text)
            )
            loop.call_soon_threadsafe(put, result)
        except Exception as exc:  # any failure becomes an error line, as Ollama sends one
            loop.call_soon_threadsafe(put, exc)

    run: RunResult | None = None
    async with state.lock:
        try:
            load_ns = await loop.run_in_executor(None, state.ensure_loaded, job.model, job.n_ctx)
            assert state.loaded is not None
            engine_done = loop.run_in_executor(None, work, state.loaded.engine)
            sent = 0
            while True:
                item = await pieces.get()
                if isinstance(item, BaseException):
                    yield line({"error": str(item) or type(item).__name__})
                    return
                if isinstance(item, RunResult):
                    run = item
                    yield line(final_chunk(state, job, item, load_ns))
                    return
                if fault is not None and sent == fault.after:
                    if fault.kind == "drop":
                        raise ConnectionAbortedError("fault injected: drop the connection")
                    if fault.kind == "malformed":
                        yield b'{"model":"' + job.model.name.encode() + b'","message":{"rol\n'
                        return
                    if fault.kind == "stall":
                        await asyncio.sleep(fault.seconds)
                yield line(job.shape(item))
                sent += 1
        finally:
            stop.set()
            if engine_done is not None:
                with anyio.CancelScope(shield=True):
                    await engine_done
                while run is None and not pieces.empty():  # the client left before the end
                    item = pieces.get_nowait()
                    run = item if isinstance(item, RunResult) else None
                state.last_run = run
            state.touch(job.keep_alive_s)
            if job.keep_alive_s == 0:
                state.unload()


def final_chunk(state: ServerState, job: Job, run: RunResult, load_ns: int) -> dict[str, object]:
    """The last line: Ollama's figures, durations in nanoseconds."""
    final = job.shape("")
    final.update(
        done=True,
        done_reason=run.reason,
        total_duration=round((time.perf_counter() - job.received) * 1e9),
        load_duration=load_ns,
        prompt_eval_count=run.prompt_tokens,
        prompt_eval_duration=round(run.prompt_eval_s * 1e9),
        eval_count=run.eval_count,
        eval_duration=round(run.eval_s * 1e9),
    )
    state.last_final = final
    return final


def create_app(state: ServerState) -> FastAPI:
    """The ASGI app serving Ollama's API over `state`."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    async def body_of(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise _Reject(400, "invalid request body")
        return body

    def model_of(body: dict[str, Any], missing: str) -> StoredModel:
        name = body.get("model") or body.get("name")
        if not isinstance(name, str) or not name:
            raise _Reject(400, "model is required")
        if name not in state.store:
            raise _Reject(404, missing.format(name=name))
        return state.store[name]

    @app.exception_handler(_Reject)
    async def rejected(_request: Request, exc: _Reject) -> Response:
        return error(exc.status, exc.message)

    @app.get("/")
    @app.head("/")
    async def root() -> Response:
        return PlainTextResponse("Ollama is running")

    @app.get("/api/version")
    async def version() -> dict[str, str]:
        return {"version": state.version}

    @app.get("/api/tags")
    async def tags() -> dict[str, object]:
        return {"models": [m.listing() for m in state.store.values()]}

    @app.post("/api/show")
    async def show(request: Request) -> dict[str, object]:
        model = model_of(await body_of(request), "model '{name}' not found")
        template = model.header.get_str(GGUF_TEMPLATE_KEY) or "{{ .Prompt }}"
        return {
            "modelfile": f'# Modelfile generated by "ollama show"\nFROM {model.path}\n',
            "parameters": "",
            "template": template,
            "details": model.details,
            "model_info": model.model_info(),
            "capabilities": ["completion"],
            "modified_at": model.modified_at,
        }

    @app.get("/api/ps")
    async def ps() -> dict[str, object]:
        state.expire()
        held = state.loaded
        if held is None:
            return {"models": []}
        m = held.model
        return {
            "models": [
                {
                    "name": m.name,
                    "model": m.name,
                    "size": m.memory_bytes(held.n_ctx),
                    "digest": m.digest,
                    "details": m.details,
                    "expires_at": now_text(held.expires_at),
                    "size_vram": 0,
                    "context_length": held.n_ctx,
                }
            ]
        }

    @app.delete("/api/delete")
    async def delete(request: Request) -> Response:
        model = model_of(await body_of(request), "model '{name}' not found")
        async with state.lock:
            if state.loaded is not None and state.loaded.model.name == model.name:
                state.unload()
            del state.store[model.name]
        return Response(status_code=200)

    async def run(request: Request, kind: str) -> Response:
        state.expire()
        body = await body_of(request)
        model = model_of(body, 'model "{name}" not found, try pulling it first')
        options = body.get("options") or {}
        try:
            keep_alive_s = keep_alive_seconds(body.get("keep_alive"))
            params = sampling(options)
            n_ctx = int(options.get("num_ctx", DEFAULT_NUM_CTX))
        except (TypeError, ValueError) as exc:
            return error(400, str(exc))
        if failure := state.take_fault(("http500",)):  # for a load too
            return error(500, failure.message)
        messages = _messages(body, kind)
        if not messages:
            return await load_or_unload(model, kind, n_ctx, keep_alive_s)

        def shape(text: str) -> dict[str, object]:
            chunk: dict[str, object] = {"model": model.name, "created_at": now_text()}
            if kind == "chat":
                chunk["message"] = {"role": "assistant", "content": text}
            else:
                chunk["response"] = text
            return chunk | {"done": False}

        job = Job(model, messages, params, n_ctx, keep_alive_s, shape)
        if body.get("stream", True) is False:
            return await whole(state, job)
        fault = state.take_fault(("drop", "malformed", "stall"))  # for streamed replies
        return StreamingResponse(generate(state, job, fault), media_type=NDJSON)

    async def load_or_unload(model: StoredModel, kind: str, n_ctx: int, keep_s: float) -> Response:
        async with state.lock:
            if keep_s == 0:
                if state.loaded is not None and state.loaded.model.name == model.name:
                    state.unload()
                reason = "unload"
            else:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, state.ensure_loaded, model, n_ctx)
                state.touch(keep_s)
                reason = "load"
        reply: dict[str, object] = {"model": model.name, "created_at": now_text()}
        reply |= (
            {"message": {"role": "assistant", "content": ""}}
            if kind == "chat"
            else {"response": ""}
        )
        return JSONResponse(reply | {"done": True, "done_reason": reason})

    @app.post("/api/chat")
    async def chat(request: Request) -> Response:
        return await run(request, "chat")

    @app.post("/api/generate")
    async def generate_route(request: Request) -> Response:
        return await run(request, "generate")

    @app.post("/api/pull")
    async def pull(request: Request) -> Response:
        body = await body_of(request)
        name = body.get("model") or body.get("name")
        if not isinstance(name, str) or not name:
            return error(400, "model is required")
        if body.get("stream", True) is False:
            if name not in state.pullable and name not in state.store:
                return error(500, "pull model manifest: file does not exist")
            async for _ in pull_steps(state, name):
                pass
            return JSONResponse({"status": "success"})
        return StreamingResponse(
            (line(s) async for s in pull_steps(state, name)), media_type=NDJSON
        )

    @app.post("/_test/fault")
    async def add_fault(request: Request) -> dict[str, str]:
        body = await body_of(request)
        fault = Fault(str(body["kind"]), int(body.get("after", 2)), float(body.get("seconds", 5)))
        if "message" in body:
            fault.message = str(body["message"])
        state.faults.append(fault)
        return {"status": "ok"}

    @app.post("/_test/reset")
    async def reset() -> dict[str, str]:
        state.reset()
        return {"status": "ok"}

    @app.post("/_test/version")
    async def set_version(request: Request) -> dict[str, str]:
        state.version = str((await body_of(request))["version"])
        return {"status": "ok"}

    @app.get("/_test/last_final")
    async def last_final() -> dict[str, object]:
        return {"final": state.last_final}

    @app.get("/_test/last_run")
    async def last_run() -> dict[str, object]:
        run = state.last_run
        return {
            "run": None if run is None else {"eval_count": run.eval_count, "reason": run.reason}
        }

    return app


class _Reject(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _messages(body: dict[str, Any], kind: str) -> list[ChatMessage]:
    if kind == "generate":
        prompt = body.get("prompt") or ""
        system = body.get("system") or ""
        head = [ChatMessage("system", system)] if system else []
        return [*head, ChatMessage("user", prompt)] if prompt else []
    messages = []
    for m in body.get("messages") or []:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise _Reject(400, f"invalid message: {json.dumps(m)[:80]}")
        messages.append(ChatMessage(m["role"], str(m.get("content") or "")))
    return messages


async def whole(state: ServerState, job: Job) -> Response:
    """A reply with `"stream": false`: one object, the text joined, the final figures."""
    text: list[str] = []
    final: dict[str, Any] = {}
    async for raw in generate(state, job, None):
        chunk = json.loads(raw)
        if "error" in chunk:
            return error(500, chunk["error"])
        final = chunk
        text.append(chunk.get("message", {}).get("content", "") or chunk.get("response", ""))
    key = "message" if "message" in final else "response"
    final[key] = (
        {"role": "assistant", "content": "".join(text)} if key == "message" else "".join(text)
    )
    return JSONResponse(final)


async def pull_steps(state: ServerState, name: str) -> AsyncIterator[dict[str, object]]:
    """Ollama's pull progress: manifest, each layer's bytes, verify, write, success."""
    yield {"status": "pulling manifest"}
    await asyncio.sleep(0.02)
    path = state.pullable.get(name) or (state.store[name].path if name in state.store else None)
    if path is None:
        yield {"error": "pull model manifest: file does not exist"}
        return
    layers = [(path.stat().st_size, "model"), (1_400, "template"), (96, "params")]
    for total, what in layers:
        digest = "sha256:" + hashlib.sha256(f"{name}|{what}".encode()).hexdigest()
        done = state.partial.get(digest, 0)
        first: dict[str, object] = {
            "status": f"pulling {digest[7:19]}",
            "digest": digest,
            "total": total,
        }
        yield first | ({"completed": done} if done else {})  # Ollama omits it at first
        step = math.ceil(total / 25)
        while done < total:
            await asyncio.sleep(0.02)
            done = min(total, done + step)
            state.partial[digest] = done
            yield first | {"completed": done}
    for status in ("verifying sha256 digest", "writing manifest", "removing any unused layers"):
        yield {"status": status}
    state.store[name] = StoredModel(name, path, read_header(path))
    yield {"status": "success"}


def main(argv: list[str] | None = None) -> int:
    """Serve until terminated."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="NAME=PATH to serve")
    parser.add_argument("--pullable", action="append", default=[], help="NAME=PATH to pull")
    parser.add_argument("--version", default="0.21.0")
    args = parser.parse_args(argv)

    def pairs(items: list[str]) -> dict[str, Path]:
        return {name: Path(path) for name, _, path in (item.partition("=") for item in items)}

    state = ServerState(pairs(args.model), pairs(args.pullable), args.version)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections wait in the backlog until uvicorn serves
    config = uvicorn.Config(
        create_app(state),
        log_level="warning",
        access_log=False,
        lifespan="off",
        http="h11",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
