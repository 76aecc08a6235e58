"""`LlamaCppModel`: the handle of a model loaded in a worker process."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from runtimes.base import (
    CancelToken,
    ChatMessage,
    ChatRequest,
    Done,
    LoadedModelInfo,
    StreamEvent,
    TextDelta,
)
from runtimes.errors import (
    ChatTemplateFailed,
    ExternalFailure,
    ModelNotLoaded,
    RuntimeBusy,
    UserFacingError,
    WorkbenchError,
)
from runtimes.llamacpp import protocol
from runtimes.llamacpp.process import WorkerExited, WorkerProcess
from runtimes.llamacpp.protocol import Message, ProtocolError

_log = logging.getLogger(__name__)

_POLL_S = 0.02
"""How often a waiting caller looks at its cancel token (bounds cancel latency)."""
_DRAIN_S = 5.0
_CANCEL_GRACE_S = 30.0
"""How long a cancelled reply may take to stop (a prompt batch in flight) before the kill."""
_RENDER_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """The exact prompt the worker would feed the model for a conversation.

    Attributes:
        text: the text given to the tokenizer (a BOS the tokenizer adds is not in it).
        tokens: the token ids, BOS included.
        bos_id: the vocabulary's BOS id (-1 when it has none).
        stop_ids: token ids that end the reply besides llama.cpp's end-of-generation set.
        stop_texts: strings that end the reply.
    """

    text: str
    tokens: tuple[int, ...]
    bos_id: int
    stop_ids: tuple[int, ...]
    stop_texts: tuple[str, ...]


class LlamaCppModel:
    """A model loaded in its own worker process. One reply at a time.

    Args:
        worker: the process that holds the model.
        info: what the load produced.
        path: the model file.
    """

    def __init__(self, worker: WorkerProcess, info: LoadedModelInfo, path: str) -> None:
        self._worker = worker
        self._info = info
        self.path = path
        self._busy = threading.Lock()
        self._ids = itertools.count(1)
        self._unloaded = False
        self._broken = False

    @property
    def info(self) -> LoadedModelInfo:
        """What the load produced."""
        return self._info

    @property
    def pid(self) -> int:
        """The worker process's id (for tests and the resource strip)."""
        return self._worker.pid

    @property
    def alive(self) -> bool:
        """False once unloaded, crashed, or ended after a protocol error."""
        return not (self._unloaded or self._broken) and self._worker.running

    def stderr_tail(self) -> str:
        """The last lines of the worker's stderr (llama.cpp's log)."""
        return self._worker.stderr_tail()

    def chat(self, request: ChatRequest, cancel: CancelToken) -> Iterator[StreamEvent]:
        """Stream the reply: `TextDelta`s, then exactly one `Done`.

        A cancel ends the stream with `Done(stop_reason="cancelled")` and keeps the model.

        Raises:
            ModelNotLoaded: the model was unloaded (before or during the reply).
            RuntimeBusy: another reply of this model is still streaming.
            RuntimeCrashed: the worker died; text already yielded stays valid.
            ChatTemplateFailed: the model's chat template rejected the conversation.
            UserFacingError: the conversation does not fit the model's context.
            ExternalFailure: llama.cpp failed, the worker hit an unexpected error (it keeps
                the model), or the worker broke the protocol.
        """
        self._check_alive()
        if not self._busy.acquire(blocking=False):
            raise RuntimeBusy("The model is still answering. Wait for it or stop it first.")
        request_id = next(self._ids)
        finished = released = False
        try:
            self._send(
                {
                    "op": "chat",
                    "id": request_id,
                    "messages": protocol.messages_to_wire(request.messages),
                    "params": request.params.as_dict(),
                    "continue_last": request.continue_last,
                }
            )
            cancel_sent_at: float | None = None
            while True:
                if cancel.cancelled and cancel_sent_at is None:
                    self._send({"op": "cancel", "id": request_id})
                    cancel_sent_at = time.monotonic()
                event = self._next_event(_POLL_S, request_id)
                if event is None:
                    if cancel_sent_at is not None and time.monotonic() - cancel_sent_at > (
                        _CANCEL_GRACE_S
                    ):
                        raise self._unresponsive()
                    continue
                kind = event["ev"]
                if kind == "text":
                    yield TextDelta(protocol.get_str(event, "text"))
                elif kind == "done":
                    finished = True
                    stats = protocol.stats_from_wire(protocol.get_dict(event, "stats"))
                    self._busy.release()  # before the last yield: a consumer may stop at Done
                    released = True
                    yield Done(stats)
                    return
                elif kind == "error":
                    finished = True
                    raise self._request_error(event)
        finally:
            if not finished and self.alive:
                self._abandon(request_id)
            if not released:
                self._busy.release()

    def render_prompt(
        self, messages: Sequence[ChatMessage], *, continue_last: bool = False
    ) -> RenderedPrompt:
        """The exact prompt text and token ids the model would get (for tests and debugging).

        Args:
            messages: the conversation.
            continue_last: render it as `ChatRequest(continue_last=True)` would.

        Raises:
            ModelNotLoaded, RuntimeBusy, RuntimeCrashed, UserFacingError, ExternalFailure:
                as `chat`.
        """
        payload: Message = {
            "messages": protocol.messages_to_wire(tuple(messages)),
            "continue_last": continue_last,
        }
        return _rendered_from_wire(self._ask("render", payload))

    def count_tokens(self, messages: tuple[ChatMessage, ...]) -> int:
        """The prompt tokens `messages` take as a new reply's prompt (BOS included).

        The worker renders and tokenizes the conversation exactly as for `chat` (same
        template, same generation prompt), without generating: the figure equals the
        `prompt_tokens` a reply to the same messages reports. It may exceed the context.
        The worker serves one request at a time, so this is for an idle model: while a
        reply streams it raises `RuntimeBusy` rather than wait.

        Raises:
            ModelNotLoaded, RuntimeBusy, RuntimeCrashed, ExternalFailure: as `chat`.
            ChatTemplateFailed: the model's chat template rejected the conversation.
        """
        event = self._ask("count", {"messages": protocol.messages_to_wire(messages)})
        return protocol.get_int(event, "tokens")

    def _ask(self, op: str, payload: Message) -> Message:
        """Send a quick request (no generation) and return its answer.

        Raises:
            as `render_prompt`.
        """
        self._check_alive()
        if not self._busy.acquire(blocking=False):
            raise RuntimeBusy("The model is still answering. Wait for it or stop it first.")
        try:
            request_id = next(self._ids)
            self._send({"op": op, "id": request_id, **payload})
            deadline = time.monotonic() + _RENDER_TIMEOUT_S
            while time.monotonic() < deadline:
                event = self._next_event(_POLL_S, request_id)
                if event is None:
                    continue
                if event["ev"] == "error":
                    raise self._request_error(event)
                return event
            raise self._unresponsive()
        finally:
            self._busy.release()

    def unload(self) -> None:
        """End the worker process (its memory returns to the system). Idempotent."""
        self._unloaded = True
        self._worker.stop()

    def _check_alive(self) -> None:
        if self._unloaded:
            raise ModelNotLoaded("The model was unloaded. Load it again to chat.")
        if not self.alive:
            raise ModelNotLoaded("The model's worker is no longer running. Load it again.")

    def _send(self, message: Message) -> None:
        try:
            self._worker.send(message)
        except WorkerExited:
            raise self._exited_error() from None

    def _next_event(self, timeout: float, request_id: int) -> Message | None:
        """The next message for `request_id`; older requests' leftovers are skipped."""
        try:
            event = self._worker.next_event(timeout)
        except WorkerExited:
            raise self._exited_error() from None
        except ProtocolError:
            self._break_worker()
            raise
        if event is None:
            return None
        if event.get("id") == request_id or (event["ev"] == "error" and "id" not in event):
            return event  # an error without id: the worker could not even read the request
        return None

    def _exited_error(self) -> WorkbenchError:
        if self._unloaded:
            return ModelNotLoaded("The model was unloaded while it was answering.")
        self._broken = True
        return self._worker.crash_error()

    def _unresponsive(self) -> ExternalFailure:
        """End a worker that stopped answering; the error to raise."""
        self._break_worker()
        return ExternalFailure(
            "The model's worker stopped responding and was ended. Load the model again.",
            details=self._worker.stderr_tail(),
        )

    def _break_worker(self) -> None:
        self._broken = True
        self._worker.kill()

    def _request_error(self, event: Message) -> WorkbenchError:
        message = str(event.get("message", ""))
        kind = event.get("kind")
        if kind == "template":
            return ChatTemplateFailed(message)
        if kind == "request":
            return UserFacingError(f"The model cannot take this conversation: {message}.")
        if kind == "internal":
            return ExternalFailure(
                f"The model's worker process hit an unexpected error ({message}). Try again; "
                "if it keeps happening, reload the model and report it with the details.",
                details=self._worker.stderr_tail(),
            )
        return ExternalFailure(
            f"llama.cpp failed while answering ({message}). Try again or reload the model.",
            details=self._worker.stderr_tail(),
        )

    def _abandon(self, request_id: int) -> None:
        """The consumer left mid-reply: stop the generation and drain it, or end the worker."""
        try:
            self._worker.send({"op": "cancel", "id": request_id})
            deadline = time.monotonic() + _DRAIN_S
            while time.monotonic() < deadline:
                event = self._worker.next_event(_POLL_S)
                if (
                    event is not None
                    and event.get("id") == request_id
                    and event["ev"]
                    in (
                        "done",
                        "error",
                    )
                ):
                    return
        except (WorkerExited, ProtocolError) as exc:
            _log.debug("worker unusable while draining an abandoned reply: %s", exc)
        self._break_worker()


def _int_list(event: Message, key: str) -> tuple[int, ...]:
    value = event.get(key)
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise ProtocolError(f"field {key!r} is not a list of integers")
    return tuple(value)


def _rendered_from_wire(event: Message) -> RenderedPrompt:
    texts = event.get("stop_texts")
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ProtocolError("field 'stop_texts' is not a list of strings")
    return RenderedPrompt(
        text=protocol.get_str(event, "text"),
        tokens=_int_list(event, "tokens"),
        bos_id=protocol.get_int(event, "bos_id"),
        stop_ids=_int_list(event, "stop_ids"),
        stop_texts=tuple(texts),
    )
