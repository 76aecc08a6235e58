"""The runtime protocol: requests, generation parameters, stream events, loaded-model handles.

Every inference engine (llama.cpp in a worker process, Ollama, an OpenAI-compatible server)
implements `Runtime`. Generation streams as a plain synchronous generator of small frozen
events, checking a `CancelToken` between chunks; no Qt here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]
StopReason = Literal["stop", "length", "cancelled", "error"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn of a conversation as the runtime sees it."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """Sampling options. `seed=None` means random; temperature 0 means greedy."""

    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    max_tokens: int = 512
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """Plain JSON-able form, for storing with a message."""
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "repeat_penalty": self.repeat_penalty,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "stop": list(self.stop),
        }


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A whole conversation to continue, and how to sample the reply.

    Attributes:
        messages: the conversation, oldest first.
        params: how to sample the reply.
        continue_last: the last message is an assistant message whose text the model must
            continue, with no new turn (a reply cut by `max_tokens`, or one the user began):
            the prompt ends with that text verbatim, and the stream carries only the new text,
            to be appended to it. A stop string that straddles the old text and the new is not
            seen. Runtimes that cannot continue raise `UserFacingError`.

    Raises:
        ValueError: `continue_last` without an assistant message at the end.
    """

    messages: tuple[ChatMessage, ...]
    params: GenerationParams = field(default_factory=GenerationParams)
    continue_last: bool = False

    def __post_init__(self) -> None:
        if self.continue_last and (not self.messages or self.messages[-1].role != "assistant"):
            raise ValueError("continue_last needs an assistant message at the end")


KVCacheType = Literal["f16", "q8_0", "q4_0"]


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """How to load a model. `n_gpu_layers=-1` means every layer; `n_threads=None` means auto.

    Runtimes that load on a server (Ollama, OpenAI-compatible) use what they can (Ollama:
    `num_ctx`, `num_gpu`, `num_thread`, `keep_alive`) and ignore the rest.

    Attributes:
        n_ctx: context length in tokens.
        n_gpu_layers: layers on the GPU (-1 all, 0 none).
        n_threads: CPU threads for decoding (None: physical performance cores).
        n_batch: prompt-processing batch size.
        flash_attn: use flash attention (needed for a quantized V cache).
        kv_cache_type: type of the K and V cache ("f16", "q8_0", "q4_0").
        use_mmap: map the file instead of reading it into memory.
        use_mlock: pin the model's pages in RAM.
        keep_alive_s: unload after this many idle seconds (None: never; the app applies it).
    """

    n_ctx: int = 4096
    n_gpu_layers: int = 0
    n_threads: int | None = None
    n_batch: int = 512
    flash_attn: bool = False
    kv_cache_type: KVCacheType = "f16"
    use_mmap: bool = True
    use_mlock: bool = False
    keep_alive_s: float | None = None


@dataclass(frozen=True, slots=True)
class LoadProgress:
    """How far a load has come: `fraction` in [0, 1] and a short stage label."""

    fraction: float
    stage: str


@dataclass(frozen=True, slots=True)
class LoadedModelInfo:
    """What a load really produced, to show the user.

    Attributes:
        backend: what the engine runs on ("CPU", "Metal", "CUDA", or a server name).
        n_ctx: the context length in effect.
        n_gpu_layers: layers really offloaded to the GPU (0 on CPU).
        n_layers: layers the model has (0 when unknown).
        n_threads: CPU threads used for decoding.
        architecture: `general.architecture` of the model, "" when unknown.
        chat_template: where the prompt format comes from ("gguf", or "fallback:<name>").
        notice: a sentence for the user when something was chosen for them, else "".
        load_time_s: seconds from spawn to ready.
    """

    backend: str
    n_ctx: int
    n_gpu_layers: int
    n_layers: int
    n_threads: int
    architecture: str
    chat_template: str
    notice: str
    load_time_s: float


@dataclass(frozen=True, slots=True)
class GenerationStats:
    """Figures of one reply. Times in seconds; rates in tokens per second."""

    prompt_tokens: int
    completion_tokens: int
    load_time_s: float
    ttft_s: float
    decode_tps: float
    total_time_s: float
    stop_reason: StopReason

    def as_dict(self) -> dict[str, object]:
        """Plain JSON-able form."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "load_time_s": self.load_time_s,
            "ttft_s": self.ttft_s,
            "decode_tps": self.decode_tps,
            "total_time_s": self.total_time_s,
            "stop_reason": self.stop_reason,
        }


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the reply's text, in order."""

    text: str


@dataclass(frozen=True, slots=True)
class Done:
    """The reply is over (finished, hit its limit, or cancelled); always the last event."""

    stats: GenerationStats


StreamEvent = TextDelta | Done

RuntimeState = Literal["available", "not_found", "error"]


@dataclass(frozen=True, slots=True)
class RuntimeStatus:
    """Whether a runtime can be used now, and what to do when it cannot.

    Attributes:
        state: "available", "not_found" (not installed / server not running) or "error".
        endpoint: where it was looked for ("" for in-process runtimes).
        version: the engine's or server's version ("" when unknown).
        detail: one sentence: what was found, or why not and what to do.
        warnings: things the user should know even when it works (e.g. listens beyond loopback).
    """

    state: RuntimeState
    endpoint: str
    version: str
    detail: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RemoteModel:
    """A model a server offers (Ollama's tags, an OpenAI-compatible `/v1/models`).

    Attributes:
        name: the name to pass to `Runtime.load` (e.g. "llama3.2:3b").
        size_bytes: size on the server's disk (0 when the server does not say).
        family: model family ("llama", "qwen2", …) or "".
        parameter_size: e.g. "7.6B" or "".
        quantization: e.g. "Q4_K_M" or "".
        context_length: trained context when known, else 0.
    """

    name: str
    size_bytes: int = 0
    family: str = ""
    parameter_size: str = ""
    quantization: str = ""
    context_length: int = 0


class CancelToken:
    """A flag a consumer sets to stop a stream; runtimes check it between chunks."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the stream to stop as soon as possible."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether `cancel()` was called."""
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds for a cancel; True if cancelled."""
        return self._event.wait(timeout)


ProgressCallback = Callable[[LoadProgress], None]


class LoadedModel(Protocol):
    """A model ready to generate. One reply at a time."""

    @property
    def info(self) -> LoadedModelInfo:
        """What the load produced."""
        ...

    @property
    def alive(self) -> bool:
        """False once unloaded or crashed."""
        ...

    def chat(self, request: ChatRequest, cancel: CancelToken) -> Iterator[StreamEvent]:
        """Stream the assistant's reply to `request`; ends with exactly one `Done`.

        Raises:
            RuntimeCrashed: the engine died mid-way (text already yielded stays valid).
            ModelNotLoaded: the model was unloaded.
        """
        ...

    def count_tokens(self, messages: tuple[ChatMessage, ...]) -> int | None:
        """How many prompt tokens `messages` would take as a new reply's prompt, or None.

        The conversation is rendered with the same template and generation prompt as
        `chat` uses (BOS included), so the figure equals the `prompt_tokens` that `chat`
        reports for the same messages. None: this runtime cannot tell (a server that
        renders prompts itself). Meant for an idle model: a runtime that serves one request
        at a time raises `RuntimeBusy` while a reply streams.

        Raises:
            ModelNotLoaded: the model was unloaded.
            RuntimeBusy: a reply of this model is still streaming.
            ChatTemplateFailed: the model's chat template rejected the conversation.
        """
        ...

    def unload(self) -> None:
        """Free the model's memory (ends its worker process). Idempotent."""
        ...


class Runtime(Protocol):
    """An inference engine that can load models."""

    name: str

    def load(
        self,
        model_path: str,
        options: LoadOptions,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> LoadedModel:
        """Load a model and return its handle.

        Raises:
            InvalidModelFile: the file is not a usable GGUF (checked before any load).
            ModelLoadFailed: the engine refused the model.
            RuntimeCrashed: the engine died while loading.
        """
        ...


class ServerRuntime(Runtime, Protocol):
    """A runtime that talks to a server holding its own models (Ollama, OpenAI-compatible)."""

    def status(self, timeout_s: float = 2.0) -> RuntimeStatus:
        """Ask the server whether it is there (never raises, never waits past `timeout_s`)."""
        ...

    def list_models(self) -> list[RemoteModel]:
        """The models the server offers.

        Raises:
            ExternalFailure: the server is down, answered an error, or sent something malformed.
        """
        ...


def join_text(events: Sequence[StreamEvent]) -> str:
    """The reply text of a list of events (for tests and the CLI)."""
    return "".join(e.text for e in events if isinstance(e, TextDelta))
