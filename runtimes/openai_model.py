"""A model served by an OpenAI-compatible server: streaming chat with figures measured here."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass

import openai
from openai import Stream
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from runtimes.base import (
    CancelToken,
    ChatMessage,
    ChatRequest,
    Done,
    GenerationStats,
    LoadedModelInfo,
    StopReason,
    StreamEvent,
    TextDelta,
)
from runtimes.errors import ExternalFailure, ModelNotLoaded, RuntimeBusy, UserFacingError
from runtimes.openai_errors import malformed_reply, translate_error
from runtimes.openai_stream import ChunkArrived, ChunkPump, StreamCancelled, StreamEnded


@dataclass(frozen=True, slots=True)
class ServerEndpoint:
    """How to reach the server: the SDK client and what the messages name.

    Attributes:
        client: the SDK client (base URL, key, timeout, no retries).
        base_url: the normalized base URL, for messages.
        timeout_s: the per-read timeout in effect, for messages.
        sampling_extras: send llama.cpp/vLLM sampling fields (`top_k`, `min_p`, ...) in the
            body; False for servers that reject unknown fields (api.openai.com).
    """

    client: openai.OpenAI
    base_url: str
    timeout_s: float
    sampling_extras: bool = True


CONTINUE_FIELDS: dict[str, object] = {
    "continue_final_message": True,
    "add_generation_prompt": False,
}
"""Body fields that make a server continue the final assistant message (vLLM's names).

vLLM (and SGLang, Aphrodite, lmdeploy) format the chat so that the final message stays open
when `continue_final_message` is true, which needs `add_generation_prompt` false. llama-server
continues a final assistant message by default ("prefill assistant", since mid-2025; off with
`--no-prefill-assistant`) and newer builds also read these two fields. llama-cpp-python's own
server ignores unknown fields and always adds a generation prompt: there the "continuation"
is a new assistant turn after the old text.
"""


class OpenAIModel:
    """A model on an OpenAI-compatible server, ready to chat. One reply at a time.

    Nothing is loaded on our side: the server holds the model; `unload()` only retires
    this handle.

    Args:
        endpoint: the server.
        model: the model id as the server lists it.
        info: what the "load" found.
    """

    def __init__(self, endpoint: ServerEndpoint, model: str, info: LoadedModelInfo) -> None:
        self._endpoint = endpoint
        self._model = model
        self._info = info
        self._busy = threading.Lock()
        self._unloaded = False
        self._pump: ChunkPump | None = None

    @property
    def info(self) -> LoadedModelInfo:
        """What the load found."""
        return self._info

    @property
    def model(self) -> str:
        """The model id sent with each request."""
        return self._model

    @property
    def alive(self) -> bool:
        """False once unloaded."""
        return not self._unloaded

    def unload(self) -> None:
        """Retire this handle (the server keeps its model); a running reply stops. Idempotent."""
        self._unloaded = True
        pump = self._pump
        if pump is not None:
            pump.stop()

    def count_tokens(self, messages: tuple[ChatMessage, ...]) -> None:
        """None: the server renders the prompt with its own template, so it cannot be counted here.

        (llama-server and vLLM offer `/tokenize`, but not the other servers, and not all of
        them apply the chat template there; an exact count comes with each reply's usage.)
        """
        del messages

    def chat(self, request: ChatRequest, cancel: CancelToken) -> Iterator[StreamEvent]:
        """Stream the reply: `TextDelta`s, then exactly one `Done`.

        With `request.continue_last`, the final assistant message goes to the server as it
        is, with `CONTINUE_FIELDS` in the body (see there for which servers honour them).

        TTFT and decode speed are measured here, on arrival of the chunks. A cancel (checked
        between chunks, and while a read waits on a slow server) ends the stream within
        tens of milliseconds with `Done(stop_reason="cancelled")`.

        Raises:
            ModelNotLoaded: the handle was unloaded (before or during the reply).
            RuntimeBusy: another reply of this model is still streaming.
            UserFacingError: the server refused the key (401/403), has no such model (404), or
                rejected the request (400/422).
            ExternalFailure: the server is down, failed (5xx), timed out, dropped the connection
                or sent a malformed reply. Text already yielded stays valid.
            UserFacingError: `continue_last` for a server that takes no extra fields
                (api.openai.com has no way to continue a message).
        """
        if self._unloaded:
            raise ModelNotLoaded("This model was unloaded. Load it again to chat.")
        if request.continue_last and not self._endpoint.sampling_extras:
            raise UserFacingError(
                f"The server at {self._endpoint.base_url} cannot continue a reply. "
                "Ask the model to go on in a new message instead."
            )
        if not self._busy.acquire(blocking=False):
            raise RuntimeBusy("The model is still answering. Wait for it or stop it first.")
        released = False
        pump = ChunkPump(lambda: self._open_stream(request))
        self._pump = pump
        tally = _ReplyTally(time.monotonic())
        try:
            pump.start()
            reason = yield from self._pump_events(pump, tally, cancel)
            stats = tally.stats(reason)
            self._busy.release()  # before the last yield: a consumer may stop at Done
            released = True
            yield Done(stats)
        finally:
            pump.stop()
            self._pump = None
            if not released:
                self._busy.release()

    def _pump_events(
        self, pump: ChunkPump, tally: _ReplyTally, cancel: CancelToken
    ) -> Generator[StreamEvent, None, StopReason]:
        """Yield the text of each chunk; return the stop reason."""
        while True:
            item = pump.next_item(cancel)
            if self._unloaded:
                raise ModelNotLoaded("The model was unloaded while it was answering.")
            if isinstance(item, StreamCancelled):
                return "cancelled"
            if isinstance(item, ChunkArrived):
                text = tally.take(item.chunk, item.at, self._endpoint.base_url)
                if text:
                    yield TextDelta(text)
                continue
            if isinstance(item, StreamEnded):
                if tally.finish_reason is None:
                    raise ExternalFailure(
                        f"The server at {self._endpoint.base_url} ended the reply before "
                        "finishing it (the connection may have dropped). The text so far is kept.",
                    )
                return tally.finish_reason
            error = item.error
            mapped = translate_error(
                error,
                base_url=self._endpoint.base_url,
                timeout_s=self._endpoint.timeout_s,
                model=self._model,
                mid_stream=item.opened,
            )
            if mapped is error and item.opened and isinstance(error, ValueError):
                # Only the SDK's decoding runs once the stream is open.
                mapped = malformed_reply(self._endpoint.base_url, str(error))
            if mapped is error:
                raise error
            raise mapped from error

    def _open_stream(self, request: ChatRequest) -> Stream[ChatCompletionChunk]:
        params = request.params
        messages = [_message_param(m) for m in request.messages]
        extra_body: dict[str, object] = {}
        if self._endpoint.sampling_extras:
            # llama.cpp's servers (llama-server, llama-cpp-python) and LM Studio read top_k,
            # min_p and repeat_penalty; vLLM reads top_k, min_p and repetition_penalty and
            # ignores the rest with a warning. api.openai.com rejects all of them.
            extra_body = {
                "top_k": params.top_k,
                "min_p": params.min_p,
                "repeat_penalty": params.repeat_penalty,
                "repetition_penalty": params.repeat_penalty,
            }
        if request.continue_last:
            extra_body.update(CONTINUE_FIELDS)
        return self._endpoint.client.chat.completions.create(
            model=self._model,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            seed=params.seed if params.seed is not None else openai.omit,
            stop=list(params.stop) if params.stop else openai.omit,
            extra_body=extra_body or None,
        )


def _message_param(message: ChatMessage) -> ChatCompletionMessageParam:
    if message.role == "system":
        return {"role": "system", "content": message.content}
    if message.role == "assistant":
        return {"role": "assistant", "content": message.content}
    return {"role": "user", "content": message.content}


class _ReplyTally:
    """Counts and times one reply as its chunks arrive."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.first_at: float | None = None
        self.last_at = started
        self.content_chunks = 0
        self.usage: tuple[int, int] | None = None
        self.finish_reason: StopReason | None = None

    def take(self, chunk: ChatCompletionChunk, at: float, base_url: str) -> str:
        """Record one chunk; the text it adds ("" for none)."""
        usage = getattr(chunk, "usage", None)
        prompt = getattr(usage, "prompt_tokens", None)
        completion = getattr(usage, "completion_tokens", None)
        if isinstance(prompt, int) and isinstance(completion, int):
            self.usage = (prompt, completion)
        choices = getattr(chunk, "choices", None)
        if not isinstance(choices, list):
            raise malformed_reply(base_url, f"a chunk without a list of choices: {chunk!r}")
        if not choices:
            return ""  # the usage chunk has no choices
        choice = choices[0]
        finish = getattr(choice, "finish_reason", None)
        if isinstance(finish, str):
            self.finish_reason = "length" if finish == "length" else "stop"
        text = getattr(getattr(choice, "delta", None), "content", None)
        if not isinstance(text, str) or not text:
            return ""
        if self.first_at is None:
            self.first_at = at
        self.last_at = at
        self.content_chunks += 1
        return text

    def stats(self, reason: StopReason) -> GenerationStats:
        """The reply's figures; token counts from the server's usage when it sent one."""
        now = time.monotonic()
        if self.usage is not None:
            prompt_tokens, completion_tokens = self.usage
        else:
            # No usage chunk (llama-cpp-python's server ignores stream_options): count
            # content chunks. Servers that stream one token per chunk (llama.cpp's, vLLM's)
            # make this exact; one that batches tokens makes it an undercount. The prompt's
            # size is then unknown (0).
            prompt_tokens, completion_tokens = 0, self.content_chunks
        ttft = self.first_at - self.started if self.first_at is not None else 0.0
        decode_time = self.last_at - self.first_at if self.first_at is not None else 0.0
        decode_tps = (
            (completion_tokens - 1) / decode_time
            if completion_tokens > 1 and (decode_time > 0)
            else 0.0
        )
        return GenerationStats(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            load_time_s=0.0,
            ttft_s=ttft,
            decode_tps=decode_tps,
            total_time_s=now - self.started,
            stop_reason=reason,
        )
