"""A model opened for a comparison or an eval: load it, generate with figures, unload it.

`LocalSessionOpener` loads through `app.model_host.ModelHost` (one host per runtime, so the
host's fit check counts every model this opener holds) with the runtime from a
`RuntimeRegistry`. A session's figures come from the runtime's `GenerationStats`, the wall
time of the load, and for llama.cpp the worker's peak resident memory (`VmHWM`) plus its NVML
GPU memory.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil

from app.choices import LLAMACPP, runtime_label, split_choice
from app.engine import DEFAULT_CONTEXT, LoadPlan, ModelHost, gpu_budget_bytes, plan_load
from app.errors import ModelNotLoaded
from app.gguf import read_model_metadata
from app.hardware import HardwareProfile
from app.library import ModelLibrary, friendly_name
from app.measurements import gpu_memory_of, process_memory
from app.model_options import model_key
from app.runtimes import RuntimeRegistry
from runtimes.base import (
    CancelToken,
    ChatMessage,
    ChatRequest,
    Done,
    GenerationStats,
    LoadedModel,
    LoadOptions,
    TextDelta,
)
from runtimes.llamacpp import wheel_backend

log = logging.getLogger(__name__)

TextCallback = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class RunFigures:
    """What one reply measured.

    Attributes:
        load_seconds: wall time of the load this reply needed; None when the model was
            already loaded (a later turn of a kept session).
        ttft_ms: time to the first token.
        decode_tps: generated tokens per second after the first.
        prompt_tps: prompt tokens per second (prompt tokens / TTFT); None when unknown.
        prompt_tokens: tokens of the prompt.
        completion_tokens: tokens generated.
        total_seconds: from the request to the last token (load excluded).
        peak_memory_bytes: the model's own memory: the llama.cpp worker's peak resident
            memory (VmHWM) plus its NVIDIA GPU memory; None for servers or where unknown.
    """

    load_seconds: float | None
    ttft_ms: float
    decode_tps: float
    prompt_tps: float | None
    prompt_tokens: int
    completion_tokens: int
    total_seconds: float
    peak_memory_bytes: int | None


class ModelSession(Protocol):
    """A loaded model that generates with figures; `close()` unloads it."""

    choice: str
    name: str
    runtime: str
    load_seconds: float | None

    def generate(
        self, request: ChatRequest, cancel: CancelToken, on_text: TextCallback | None = None
    ) -> tuple[str, RunFigures]:
        """Generate the reply to `request`, calling `on_text` (on this thread) with each
        piece; a cancel returns the text so far.

        Raises:
            RuntimeCrashed, ModelNotLoaded, ...: `WorkbenchError`s from the runtime.
        """
        ...

    def count_tokens(self, messages: tuple[ChatMessage, ...]) -> int | None:
        """Prompt tokens of `messages` (None: the runtime cannot tell)."""
        ...

    def close(self) -> None:
        """Unload the model (ends its worker process). Idempotent."""
        ...


class SessionOpener(Protocol):
    """Opens (loads) model sessions by choice."""

    def open(
        self, choice: str, load: LoadOptions | None = None, cancel: CancelToken | None = None
    ) -> ModelSession:
        """Load `choice` now and return its session.

        Raises:
            WontFit, ModelNotFound, InvalidModelFile, ModelLoadFailed, RuntimeCrashed, ...
        """
        ...


@dataclass(frozen=True, slots=True)
class LocalTarget:
    """A local GGUF model resolved for loading: its file, display name and load plan."""

    path: Path
    name: str
    plan: LoadPlan


def local_target(
    model: str,
    library: ModelLibrary | None,
    load: LoadOptions | None,
    profile: HardwareProfile | None,
) -> LocalTarget:
    """Resolve a llama.cpp model (a path, or a library name when `library` is given) and plan
    its load as `llm-workbench chat` does; `load` options are used as saved options.

    Raises:
        ModelNotFound: no such model in the library.
        InvalidModelFile: the file is not a usable GGUF.
    """
    if library is not None:
        found = library.find(model)
        path, name, size = found.path, found.name, found.size_bytes
        meta = library.metadata(found)
    else:
        path = Path(model).expanduser()
        meta = read_model_metadata(path)
        name, size = friendly_name(path, meta), meta.file_size
    plan = plan_load(
        meta.context_length or 0,
        n_ctx=load.n_ctx if load is not None else DEFAULT_CONTEXT,
        file_size=size,
        n_layers=meta.block_count or 0,
        gpu_budget=gpu_budget_bytes(profile),
        saved=load,
        path=str(path),
        profile=profile,
    )
    return LocalTarget(path, name, plan)


def figures_from(
    stats: GenerationStats, load_seconds: float | None, peak_memory_bytes: int | None
) -> RunFigures:
    """RunFigures from a reply's stats; prompt tok/s is prompt tokens over the TTFT."""
    prompt_tps = (
        stats.prompt_tokens / stats.ttft_s if stats.ttft_s > 0 and stats.prompt_tokens else None
    )
    return RunFigures(
        load_seconds=load_seconds,
        ttft_ms=stats.ttft_s * 1000,
        decode_tps=stats.decode_tps,
        prompt_tps=prompt_tps,
        prompt_tokens=stats.prompt_tokens,
        completion_tokens=stats.completion_tokens,
        total_seconds=stats.total_time_s,
        peak_memory_bytes=peak_memory_bytes,
    )


def model_memory(model: LoadedModel) -> int | None:
    """Peak memory of a llama.cpp worker: VmHWM (else RSS) plus its NVML GPU memory; None
    for a model with no local process (a server's)."""
    pid = getattr(model, "pid", None)
    if not isinstance(pid, int):
        return None
    try:
        memory = process_memory(pid)
    except psutil.Error:
        return None
    total = memory.peak_rss_bytes or memory.rss_bytes
    if model.info.backend == "CUDA":
        total += gpu_memory_of(pid) or 0
    return total


class LoadedSession:
    """A model loaded in a `ModelHost` under its own key; the session unloads it on close."""

    def __init__(
        self,
        choice: str,
        name: str,
        runtime: str,
        host: ModelHost,
        key: str,
        load_seconds: float,
    ) -> None:
        self.choice = choice
        self.name = name
        self.runtime = runtime
        self.load_seconds: float | None = load_seconds
        self._host = host
        self._key = key
        self._load_pending = True
        self._closed = False

    def _model(self) -> LoadedModel:
        model = None if self._closed else self._host.get(self._key)
        if model is None:
            raise ModelNotLoaded(f"{self.name} is no longer loaded. Load it again.")
        return model

    def generate(
        self, request: ChatRequest, cancel: CancelToken, on_text: TextCallback | None = None
    ) -> tuple[str, RunFigures]:
        """Stream the reply; the first reply after the load carries the load time."""
        model = self._model()
        pieces: list[str] = []
        stats: GenerationStats | None = None
        started = time.perf_counter()
        first: float | None = None
        with self._host.using(self._key):
            for event in model.chat(request, cancel):
                if isinstance(event, TextDelta):
                    if first is None:
                        first = time.perf_counter()
                    pieces.append(event.text)
                    if on_text is not None:
                        on_text(event.text)
                elif isinstance(event, Done):
                    stats = event.stats
        if stats is None:  # a runtime always ends with Done; keep figures honest if not
            elapsed = time.perf_counter() - started
            ttft = (first - started) if first is not None else elapsed
            stats = GenerationStats(0, len(pieces), 0.0, ttft, 0.0, elapsed, "cancelled")
        load_seconds = self.load_seconds if self._load_pending else None
        self._load_pending = False
        return "".join(pieces), figures_from(stats, load_seconds, model_memory(model))

    def count_tokens(self, messages: tuple[ChatMessage, ...]) -> int | None:
        """Prompt tokens of `messages`, as the runtime counts them."""
        return self._model().count_tokens(messages)

    def close(self) -> None:
        """Unload (ends the worker process). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._host.unload(self._key)


class LocalSessionOpener:
    """Opens sessions on this machine's runtimes (llama.cpp workers, Ollama, saved servers).

    Thread-safe: the parallel compare mode opens panes from several threads.

    Args:
        registry: the runtimes by key.
        library: resolves llama.cpp model names (None: choices must be paths).
        hardware: the probed hardware for GPU offload planning; None probes it once when
            the installed llama.cpp is a GPU build.
    """

    def __init__(
        self,
        registry: RuntimeRegistry,
        library: ModelLibrary | None = None,
        hardware: HardwareProfile | None = None,
    ) -> None:
        self._registry = registry
        self._library = library
        self._hardware = hardware
        self._lock = threading.Lock()
        self._hosts: dict[str, ModelHost] = {}
        self._serial = itertools.count(1)

    def _profile(self) -> HardwareProfile | None:
        if self._hardware is None and wheel_backend() in ("Metal", "CUDA"):
            from app.hardware import probe_hardware

            self._hardware = probe_hardware()
        return self._hardware

    def _host(self, runtime_key: str) -> ModelHost:
        with self._lock:
            host = self._hosts.get(runtime_key)
            if host is None:
                host = ModelHost(self._registry.get(runtime_key))
                self._hosts[runtime_key] = host
            return host

    def open(
        self, choice: str, load: LoadOptions | None = None, cancel: CancelToken | None = None
    ) -> LoadedSession:
        """Load `choice` now, beside whatever this opener already holds."""
        runtime_key, model = split_choice(choice)
        if runtime_key == LLAMACPP:
            with self._lock:
                profile = self._profile()
            target = local_target(model, self._library, load, profile)
            name, where, plan = target.name, str(target.path), target.plan
        else:
            name, where = model, model
            options = load or LoadOptions(n_ctx=DEFAULT_CONTEXT)
            label = runtime_label(runtime_key)
            plan = LoadPlan(options=options, backend=runtime_key, explanation=f"on {label}")
        host = self._host(runtime_key)
        key = f"{model_key(runtime_key, where)}#{next(self._serial)}"
        log.info("opening %s (%s)", name, plan.explanation)
        started = time.perf_counter()
        host.load_model(key, where, plan, cancel=cancel)
        load_seconds = time.perf_counter() - started
        return LoadedSession(choice, name, runtime_key, host, key, load_seconds)

    def close_all(self) -> None:
        """Unload every model this opener loaded. Idempotent."""
        with self._lock:
            hosts = list(self._hosts.values())
        for host in hosts:
            host.unload_all()
