"""The worker process that owns one llama.cpp model: `python -m runtimes.llamacpp.worker`.

The protocol (see `protocol`) runs over stdin and a private duplicate of the original
stdout; fd 1 itself is pointed at stderr first, so llama.cpp's or anybody's prints can never
corrupt a protocol line. stderr carries llama.cpp's log for the parent to keep.
"""

from __future__ import annotations

import faulthandler
import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Mapping
from typing import BinaryIO

from runtimes.llamacpp import protocol
from runtimes.llamacpp.protocol import LOAD_FINISHED_MARKER, Message, ProtocolError

_PROGRESS_STEP = 0.01
_EXIT: Message = {"op": "exit"}


class Channel:
    """The protocol's output side: whole lines, written under a lock."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, message: Mapping[str, object]) -> None:
        """Write one message; exits quietly when the parent is gone."""
        data = protocol.encode(message)
        with self._lock:
            try:
                self._stream.write(data)
                self._stream.flush()
            except BrokenPipeError:
                os._exit(0)  # the parent went away: nobody to report to


def take_protocol_stdout() -> Channel:
    """Move the protocol to a private copy of fd 1 and point fd 1 at stderr."""
    sys.stdout.flush()
    private = os.dup(1)
    os.dup2(2, 1)
    return Channel(os.fdopen(private, "wb", buffering=1 << 16))


class Worker:
    """Reads requests, runs them one at a time, and listens for cancels meanwhile.

    Args:
        channel: where events go.
        requests: where request lines come from; the process's stdin when None.
    """

    def __init__(self, channel: Channel, requests: Iterable[bytes] | None = None) -> None:
        self._out = channel
        self._requests = requests
        self._inbox: queue.Queue[Message] = queue.Queue()
        self._cancelled_ids: set[int] = set()
        self._leaving = threading.Event()
        self._engine: object | None = None

    def run(self) -> int:
        """Serve until an exit request or the end of stdin; return the exit status."""
        threading.Thread(target=self._read_stdin, name="stdin-reader", daemon=True).start()
        self._out.send({"ev": "hello", "pid": os.getpid(), "protocol": protocol.PROTOCOL_VERSION})
        while True:
            message = self._inbox.get()
            op = str(message["op"])
            if op == "exit":
                return 0
            try:
                self._dispatch(op, message)
            except ProtocolError as exc:
                self._send_internal_error(message, exc.problem)
            # A bug met while serving one request must not take the loaded model down with
            # it: the parent gets the error for that request, the traceback goes to the log.
            except Exception as exc:  # noqa: BLE001
                print(f"llm-workbench worker: {op} request failed:", file=sys.stderr)
                traceback.print_exc(file=sys.stderr)
                sys.stderr.flush()
                first_line = next(iter(str(exc).splitlines()), "")  # the rest is in the log
                self._send_internal_error(message, f"{type(exc).__name__}: {first_line}")

    def _send_internal_error(self, request: Message, problem: str) -> None:
        reply: Message = {"ev": "error", "kind": "internal", "message": problem}
        if isinstance(request.get("id"), int):
            reply["id"] = request["id"]
        self._out.send(reply)

    def _read_stdin(self) -> None:
        lines = self._requests if self._requests is not None else sys.stdin.buffer
        for line in lines:
            try:
                message = protocol.decode(line, "op")
            except ProtocolError as exc:
                print(f"llm-workbench worker: ignored bad request: {exc.problem}", file=sys.stderr)
                continue
            if message["op"] == "cancel":
                request_id = message.get("id")
                if isinstance(request_id, int):
                    self._cancelled_ids.add(request_id)
                continue
            if message["op"] == "exit":
                self._leaving.set()  # stop a running generation now: the model is unloading
            self._inbox.put(message)
        self._leaving.set()  # the parent is gone: stop any generation, then leave
        self._inbox.put(_EXIT)

    def _dispatch(self, op: str, message: Message) -> None:
        if op == "load":
            self._load(message)
        elif op in ("chat", "render", "count"):
            self._request(op, message)
        else:
            raise ProtocolError(f"unknown op {op!r}")

    def _load(self, message: Message) -> None:
        if self._engine is not None:
            raise ProtocolError("a model is already loaded")
        started = time.perf_counter()
        last = [-1.0]

        def progress(fraction: float, stage: str) -> None:
            if fraction - last[0] >= _PROGRESS_STEP or fraction >= 1.0:
                last[0] = fraction
                self._out.send({"ev": "progress", "fraction": fraction, "stage": stage})

        def weights(fraction: float) -> None:
            if fraction >= 1.0:
                progress(0.92, "creating context")
            else:
                progress(0.1 + 0.8 * fraction, "loading weights")

        progress(0.05, "starting llama.cpp")
        from runtimes.llamacpp.engine import Engine
        from runtimes.llamacpp.settings import load_settings_from_wire
        from runtimes.llamacpp.system import loaded_backend

        try:
            engine = Engine.load(
                protocol.get_str(message, "path"),
                load_settings_from_wire(message),
                template_source=protocol.get_str(message, "template"),
                report=weights,
            )
        except (ValueError, RuntimeError, OSError, KeyError) as exc:
            self._out.send({"ev": "error", "kind": "load", "message": str(exc)})
            return
        import llama_cpp

        self._engine = engine
        if engine.template.notice:
            print(f"llm-workbench worker: {engine.template.notice}", file=sys.stderr)
        print(LOAD_FINISHED_MARKER, file=sys.stderr, flush=True)
        self._out.send(
            {
                "ev": "loaded",
                "n_ctx": int(engine.llama.n_ctx()),
                "n_threads": int(engine.llama.n_threads),
                "backend": loaded_backend(),
                "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
                "load_s": time.perf_counter() - started,
                "template": engine.template.source,
                "template_notice": engine.template.notice,
            }
        )

    def _request(self, op: str, message: Message) -> None:
        from runtimes.llamacpp.chat_template import TemplateRenderError
        from runtimes.llamacpp.engine import Engine, PromptError
        from runtimes.llamacpp.textstream import TextBatcher

        started = time.perf_counter()
        request_id = protocol.get_int(message, "id")
        engine = self._engine
        if not isinstance(engine, Engine):
            raise ProtocolError("no model is loaded")
        messages = protocol.messages_from_wire(message.get("messages"))
        continue_last = protocol.get_flag(message, "continue_last")
        if continue_last and (not messages or messages[-1].role != "assistant"):
            raise ProtocolError("continue_last without an assistant message at the end")
        try:
            if op == "count":
                counted = engine.render(messages)
                self._out.send({"ev": "counted", "id": request_id, "tokens": len(counted.tokens)})
                return
            if op == "render":
                rendered = engine.render(messages, continue_last=continue_last)
                self._out.send(
                    {
                        "ev": "rendered",
                        "id": request_id,
                        "text": rendered.text,
                        "tokens": list(rendered.tokens),
                        "bos_id": engine.bos_id,
                        "stop_ids": sorted(rendered.stop_ids),
                        "stop_texts": list(rendered.stop_texts),
                    }
                )
                return
            params = protocol.params_from_wire(protocol.get_dict(message, "params"))
            prompt = engine.render(messages, params.stop, continue_last=continue_last)
            batcher = TextBatcher(
                lambda text: self._out.send({"ev": "text", "id": request_id, "text": text})
            )
            stats = engine.generate(
                prompt,
                params,
                started=started,
                cancelled=lambda: request_id in self._cancelled_ids or self._leaving.is_set(),
                on_text=batcher.add,
            )
            batcher.flush()
        except TemplateRenderError as exc:
            self._out.send(
                {"ev": "error", "id": request_id, "kind": "template", "message": str(exc)}
            )
            return
        except PromptError as exc:
            self._out.send(
                {"ev": "error", "id": request_id, "kind": "request", "message": str(exc)}
            )
            return
        except (RuntimeError, ValueError) as exc:  # llama_decode failed, or similar
            self._out.send({"ev": "error", "id": request_id, "kind": "engine", "message": str(exc)})
            return
        finally:
            self._cancelled_ids.discard(request_id)
        self._out.send({"ev": "done", "id": request_id, "stats": stats.as_dict()})


def _no_core_dumps() -> None:
    """A crashing worker should report fast, not spend seconds writing a core file."""
    try:
        import resource
    except ImportError:  # Windows
        return
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main() -> None:
    """Entry point of the worker process; never returns.

    Leaves with `os._exit`: a normal interpreter shutdown would wait on the stdin reader
    thread's buffer lock and abort; the operating system frees the model anyway.
    """
    channel = take_protocol_stdout()
    faulthandler.enable()  # a crash leaves a Python traceback in the stderr tail
    _no_core_dumps()
    code = Worker(channel).run()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
