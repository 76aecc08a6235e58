"""`OllamaModel`: the handle of a model an Ollama server holds; chats stream from `/api/chat`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping

from runtimes.base import (
    CancelToken,
    ChatMessage,
    ChatRequest,
    Done,
    GenerationParams,
    GenerationStats,
    LoadedModelInfo,
    StopReason,
    StreamEvent,
    TextDelta,
)
from runtimes.errors import ModelNotLoaded, RuntimeBusy, WorkbenchError
from runtimes.ollama_errors import dropped, malformed
from runtimes.ollama_stream import Chunk, OllamaConnection

_log = logging.getLogger(__name__)

_NS = 1e9


def keep_alive_value(keep_alive_s: float | None) -> int | None:
    """Ollama's `keep_alive` for an idle time in seconds; None leaves the server's default.

    The server's default (`OLLAMA_KEEP_ALIVE`, 5 minutes unless set) is right for a server the
    user may share: a model unloaded by it is loaded again by the next chat on its own.
    """
    return None if keep_alive_s is None else max(0, round(keep_alive_s))


def chat_options(params: GenerationParams, load: Mapping[str, object]) -> dict[str, object]:
    """Ollama's `options` for a reply: the load's options again, then the sampling ones.

    Ollama reloads a model whose load options (`num_ctx`, `num_gpu`, ...) differ from the
    request's, and fills what a request leaves out with its defaults; so every request repeats
    the load's options.
    """
    options: dict[str, object] = {
        **load,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k,
        "min_p": params.min_p,
        "repeat_penalty": params.repeat_penalty,
        # -2: fill the context, Ollama's meaning of "no limit" that still ends.
        "num_predict": params.max_tokens if params.max_tokens > 0 else -2,
    }
    if params.seed is not None:
        options["seed"] = params.seed
    if params.stop:
        options["stop"] = list(params.stop)
    return options


def _count(chunk: Chunk, key: str) -> int:
    """A non-negative integer field of the final chunk (absent: 0)."""
    value = chunk.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise malformed(f"field {key!r} is {value!r}")
    return value


def stats_from_final(chunk: Chunk) -> GenerationStats:
    """The reply's figures from the server's own final chunk (durations in nanoseconds).

    ttft is the server's load plus prompt-evaluation time: it excludes the network and any
    wait in the server's queue, which our own clock would include.
    """
    eval_count = _count(chunk, "eval_count")
    eval_ns = _count(chunk, "eval_duration")
    load_ns = _count(chunk, "load_duration")
    reason = chunk.get("done_reason")
    stop_reason: StopReason = "length" if reason == "length" else "stop"
    return GenerationStats(
        prompt_tokens=_count(chunk, "prompt_eval_count"),
        completion_tokens=eval_count,
        load_time_s=load_ns / _NS,
        ttft_s=(load_ns + _count(chunk, "prompt_eval_duration")) / _NS,
        decode_tps=eval_count / eval_ns * _NS if eval_ns > 0 else 0.0,
        total_time_s=_count(chunk, "total_duration") / _NS,
        stop_reason=stop_reason,
    )


def message_text(chunk: Chunk) -> str:
    """The assistant text of a `/api/chat` chunk ("" when it carries none)."""
    message = chunk.get("message")
    if message is None:
        return ""
    if not isinstance(message, dict):
        raise malformed(f"field 'message' is {message!r}")
    content = message.get("content")
    if content is None:
        return ""
    if not isinstance(content, str):
        raise malformed(f"field 'message.content' is {content!r}")
    return content


class _Clock:
    """Our own measurement of a reply, for a reply that never gets the server's figures."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.first: float | None = None
        self.last = 0.0
        self.pieces = 0

    def tick(self) -> None:
        self.last = time.perf_counter()
        if self.first is None:
            self.first = self.last
        self.pieces += 1

    def stats(self, reason: StopReason) -> GenerationStats:
        end = time.perf_counter()
        first = self.first if self.first is not None else end
        span = self.last - first
        return GenerationStats(
            prompt_tokens=0,
            completion_tokens=self.pieces,  # Ollama sends one chunk per token
            load_time_s=0.0,
            ttft_s=first - self.started,
            decode_tps=(self.pieces - 1) / span if self.pieces > 1 and span > 0 else 0.0,
            total_time_s=end - self.started,
            stop_reason=reason,
        )


class OllamaModel:
    """A model loaded in an Ollama server. One reply at a time.

    Args:
        connection: the server.
        name: the model's name on the server (e.g. "llama3.2:3b").
        info: what the load produced.
        load_options: the load's Ollama options, repeated in every request.
        keep_alive: Ollama's `keep_alive` to send (None: the server's default).
        unload: how to unload `name` from the server (the runtime's `unload`).
    """

    def __init__(
        self,
        connection: OllamaConnection,
        name: str,
        info: LoadedModelInfo,
        *,
        load_options: Mapping[str, object],
        keep_alive: int | None,
        unload: Callable[[str], None],
    ) -> None:
        self._connection = connection
        self.name = name
        self._info = info
        self._load_options = dict(load_options)
        self._keep_alive = keep_alive
        self._unload = unload
        self._busy = threading.Lock()
        self._unloaded = False

    @property
    def info(self) -> LoadedModelInfo:
        """What the load produced."""
        return self._info

    @property
    def alive(self) -> bool:
        """False once unloaded (the server may still reload it on its own for others)."""
        return not self._unloaded

    def count_tokens(self, messages: tuple[ChatMessage, ...]) -> None:
        """None: Ollama renders prompts with its own template and has no counting endpoint.

        The exact count comes with each reply (`prompt_eval_count`).
        """
        del messages

    def chat_body(self, request: ChatRequest) -> dict[str, object]:
        """The `/api/chat` request for `request`.

        `continue_last` needs nothing extra: Ollama continues a final assistant message
        (ollama/ollama#6778). Its legacy templates are cut right after `{{ .Response }}`
        (`template.Execute`), and the library's `.Messages` templates leave the last
        assistant turn open (`{{ if not $last }}<end-of-turn>{{ end }}`); only a custom
        template without that clause starts a new turn instead.
        """
        body: dict[str, object] = {
            "model": self.name,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": True,
            "options": chat_options(request.params, self._load_options),
        }
        if self._keep_alive is not None:
            body["keep_alive"] = self._keep_alive
        return body

    def chat(self, request: ChatRequest, cancel: CancelToken) -> Iterator[StreamEvent]:
        """Stream the reply: `TextDelta`s, then exactly one `Done` with the server's figures.

        A cancel ends the stream within a poll interval (the socket is shut down, even when
        the server is silent) with `Done(stop_reason="cancelled")` and our own figures.

        Raises:
            ModelNotLoaded: the handle was unloaded.
            RuntimeBusy: another reply of this handle is still streaming.
            UserFacingError: the server has no such model (any more), or refused the request.
            ExternalFailure: not running, timed out, connection dropped, malformed reply, or
                a server error; text already yielded stays valid.
        """
        if self._unloaded:
            raise ModelNotLoaded("The model was unloaded. Load it again to chat.")
        if not self._busy.acquire(blocking=False):
            raise RuntimeBusy("The model is still answering. Wait for it or stop it first.")
        released = False
        try:
            clock = _Clock()
            final: Chunk | None = None
            with self._connection.stream(
                "/api/chat", self.chat_body(request), model=self.name
            ) as s:
                for chunk in s.chunks(cancel):
                    text = message_text(chunk)
                    if text:
                        clock.tick()
                        yield TextDelta(text)
                    if chunk.get("done") is True:
                        final = chunk
                        break
            if final is None and not cancel.cancelled:
                raise dropped(self._connection.url, "the reply ended without its final chunk")
            done = Done(clock.stats("cancelled") if final is None else stats_from_final(final))
            self._busy.release()  # before the last yield: a consumer may stop at Done
            released = True
            yield done
        finally:
            if not released:
                self._busy.release()

    def unload(self) -> None:
        """Ask the server to unload the model now (`keep_alive: 0`). Idempotent, never raises.

        A server that cannot be reached unloads it by itself when its keep-alive runs out.
        """
        if self._unloaded:
            return
        self._unloaded = True
        try:
            self._unload(self.name)
        except WorkbenchError as exc:
            _log.warning("could not unload %s from Ollama: %s", self.name, exc)
