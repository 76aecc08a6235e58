"""`LlamaCppRuntime`: loads GGUF models into worker processes, one process per model."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

from runtimes.base import CancelToken, LoadedModelInfo, LoadOptions, LoadProgress, ProgressCallback
from runtimes.errors import ExternalFailure, LoadCancelled, ModelLoadFailed
from runtimes.gguf_header import GGUFHeader, has_token, validate_gguf
from runtimes.llamacpp import protocol
from runtimes.llamacpp.loadlog import LoadFacts, load_notices
from runtimes.llamacpp.model import LlamaCppModel
from runtimes.llamacpp.options import WorkerLoad, resolve_load
from runtimes.llamacpp.process import WorkerExited, WorkerProcess
from runtimes.llamacpp.protocol import Message, ProtocolError
from runtimes.llamacpp.system import default_threads
from runtimes.llamacpp.templates import (
    GGUF_TEMPLATE_KEY,
    TemplateChoice,
    choose_template,
    fallback_by_source,
)

_POLL_S = 0.025
_MARKER_WAIT_S = 2.0
_LOAD_ERROR = re.compile(r"error loading model: (.+)|llama_init_from_model: (.+)")


class LlamaCppRuntime:
    """llama.cpp through llama-cpp-python, each loaded model in its own worker process.

    Args:
        start_timeout_s: how long a new worker may take to start Python and say hello.
        worker_command: the command that starts a worker, when `python -m
            runtimes.llamacpp.worker` cannot (a frozen app); it must speak `protocol`.
    """

    name = "llamacpp"

    def __init__(
        self, start_timeout_s: float = 60.0, worker_command: Sequence[str] | None = None
    ) -> None:
        self._start_timeout_s = start_timeout_s
        self._worker_command = tuple(worker_command) if worker_command is not None else None

    def load(
        self,
        model_path: str,
        options: LoadOptions,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> LlamaCppModel:
        """Validate the file, start a worker, load the model there, and return its handle.

        Progress reaches `on_progress` in the calling thread. `cancel` kills the worker.

        A quantized KV cache turns flash attention on (llama.cpp needs it; see `options`).

        Raises:
            InvalidModelFile: the file is not a usable GGUF (no worker is started).
            KVCacheTypeUnsupported: the KV cache type cannot hold this model's attention
                heads (no worker is started).
            ModelLoadFailed: llama.cpp refused the model (`details` holds its log's end).
            LoadCancelled: `cancel` was set before the load finished.
            RuntimeCrashed: the worker died while loading.
        """
        path = os.path.abspath(os.fspath(model_path))
        header = validate_gguf(path)
        choice = choose_template(
            header.architecture,
            isinstance(header.metadata.get(GGUF_TEMPLATE_KEY), str),
            lambda token: has_token(header, token),
        )
        request = resolve_load(options, header, options.n_threads or default_threads())
        report = on_progress or (lambda _progress: None)
        report(LoadProgress(0.0, "starting worker"))
        started = time.perf_counter()
        worker = WorkerProcess.spawn(self._worker_command)
        try:
            worker.send(request.to_wire(path, choice.source))
            loaded = self._await_loaded(
                worker, path, header, report, cancel=cancel, started=started
            )
            worker.load_marker_seen.wait(_MARKER_WAIT_S)  # the offload line is read by then
            elapsed = time.perf_counter() - started
            info = _build_info(
                worker.load_facts, loaded, header, request, choice, load_time_s=elapsed
            )
        except WorkerExited:
            raise worker.crash_error() from None
        except BaseException:
            worker.kill()
            raise
        report(LoadProgress(1.0, "ready"))
        return LlamaCppModel(worker, info, path)

    def _await_loaded(
        self,
        worker: WorkerProcess,
        path: str,
        header: GGUFHeader,
        report: ProgressCallback,
        *,
        cancel: CancelToken | None,
        started: float,
    ) -> Message:
        """Pump the worker's messages until "loaded"; raise on error, cancel, or no start."""
        hello = False
        while True:
            if cancel is not None and cancel.cancelled:
                raise LoadCancelled(path)
            event = worker.next_event(_POLL_S)
            if event is None:
                if not hello and time.perf_counter() - started > self._start_timeout_s:
                    raise ExternalFailure(
                        f"The model worker process did not start within "
                        f"{self._start_timeout_s:.0f} s. Try again; if it persists, check "
                        "the workbench's Python environment.",
                        details=worker.stderr_tail(),
                    )
                continue
            kind = event["ev"]
            if kind == "hello":
                hello = True
            elif kind == "progress":
                fraction = min(1.0, max(0.0, protocol.get_float(event, "fraction")))
                report(LoadProgress(fraction, protocol.get_str(event, "stage")))
            elif kind == "loaded":
                return event
            elif kind == "error":
                raise _load_failed(worker, path, header, event)


def _load_failed(
    worker: WorkerProcess, path: str, header: GGUFHeader, event: Message
) -> ModelLoadFailed:
    """The error for a worker that reported a failed load (the worker is ended here)."""
    worker.stop(grace_s=1.0)
    arch = header.architecture or "unknown"
    tail = worker.stderr_tail()
    found = [a or b for a, b in _LOAD_ERROR.findall(tail)]
    reason = found[-1].strip() if found else str(event.get("message", "")) or "no reason given"
    return ModelLoadFailed(
        f"llama.cpp could not load {Path(path).name} ({reason}). The file may be damaged, or "
        f"its architecture ({arch}) may be newer than this llama.cpp build; the details show "
        "llama.cpp's log.",
        details=tail,
    )


def _build_info(
    facts: LoadFacts,
    loaded: Message,
    header: GGUFHeader,
    request: WorkerLoad,
    choice: TemplateChoice,
    *,
    load_time_s: float,
) -> LoadedModelInfo:
    """What the load produced, from the worker's report, its log, and the file's header.

    `choice` is the prompt format planned from the header; the worker's report overrides it
    when the file's own template proved unusable there.
    """
    choice = _template_used(loaded, choice)
    n_layers = header.arch_int("block_count") or 0
    gpu_build = loaded.get("gpu_offload") is True
    if facts.offloaded is not None:
        # llama.cpp's own count ("offloaded 31/31 layers to GPU") includes the output layer,
        # so the pair comes from the log together: never mix it with block_count.
        gpu_layers, n_layers = facts.offloaded
    elif gpu_build:
        wanted = n_layers if request.n_gpu_layers < 0 else request.n_gpu_layers
        gpu_layers = min(wanted, n_layers) if n_layers else wanted
    else:
        gpu_layers = 0
    notices = [choice.notice] if choice.notice else []
    if request.n_gpu_layers != 0 and not gpu_build:
        notices.append("This llama.cpp build has no GPU support, so the model runs on the CPU.")
    notices.extend(load_notices(facts, request))
    return LoadedModelInfo(
        backend=protocol.get_str(loaded, "backend") if gpu_layers > 0 else "CPU",
        n_ctx=protocol.get_int(loaded, "n_ctx"),
        n_gpu_layers=gpu_layers,
        n_layers=n_layers,
        n_threads=protocol.get_int(loaded, "n_threads"),
        architecture=header.architecture,
        chat_template=choice.source,
        notice=" ".join(notices),
        load_time_s=load_time_s,
    )


def _template_used(loaded: Message, planned: TemplateChoice) -> TemplateChoice:
    """The prompt format the worker says it used (a worker that says nothing used `planned`)."""
    source = loaded.get("template")
    if source is None or source == planned.source:
        return planned
    if not isinstance(source, str):
        raise ProtocolError("field 'template' is not a string")
    try:
        fallback = fallback_by_source(source)
    except KeyError:
        raise ProtocolError(f"unknown prompt format {source!r}") from None
    notice = loaded.get("template_notice", "")
    return TemplateChoice(source, fallback, notice if isinstance(notice, str) else "")
