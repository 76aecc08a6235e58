"""`llm-workbench chat`: one reply from a local model or a server, streamed to stdout."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from app.chat import ConversationService
from app.engine import LoadPlan, ModelHost, gpu_budget_bytes, plan_load
from app.errors import ExternalFailure, UserFacingError, WorkbenchError
from app.hardware import probe_hardware
from app.library import ModelLibrary
from app.measurements import MeasurementRecorder, MeasurementStore
from app.paths import app_paths
from app.runtimes import RuntimeRegistry, ollama_runtime, openai_runtime, registry_for
from app.settings import Settings
from app.store import open_database
from runtimes.base import (
    CancelToken,
    ChatMessage,
    ChatRequest,
    Done,
    GenerationParams,
    LoadOptions,
    LoadProgress,
    Runtime,
    TextDelta,
)
from runtimes.llamacpp import wheel_backend


@dataclass(frozen=True, slots=True)
class ChatTarget:
    """What to load and where: the runtime, the model's path or server name, and the plan."""

    runtime: Runtime
    runtime_key: str
    model: str
    model_name: str
    plan: LoadPlan


def _settings() -> Settings:
    return Settings.load(app_paths().ensure().settings_file)


def library_from_settings() -> ModelLibrary:
    """The local model library, with the files the user opened in the window."""
    paths = app_paths().ensure()
    settings = _settings()
    extra = [Path(p) for p in settings.opened_model_files]
    folders = tuple(Path(p) for p in settings.model_folders)
    return ModelLibrary(paths, extra_files=extra, folders=folders)


def registry_from_settings() -> RuntimeRegistry:
    """The runtimes, with the OpenAI-compatible endpoints saved in the settings."""
    return registry_for(_settings())


def _local_target(args: argparse.Namespace) -> ChatTarget:
    library = library_from_settings()
    model = library.find(args.model)
    gpu_build = wheel_backend() in ("Metal", "CUDA")
    profile = probe_hardware() if gpu_build else None
    plan = plan_load(
        model.context_length or 0,
        n_ctx=args.ctx,
        file_size=model.size_bytes,
        n_layers=library.metadata(model).block_count or 0,
        gpu_budget=gpu_budget_bytes(profile),
        path=str(model.path),
        profile=profile,
    )
    runtime = registry_from_settings().get("llamacpp")
    return ChatTarget(runtime, "llamacpp", str(model.path), model.name, plan)


def _server_target(args: argparse.Namespace) -> ChatTarget:
    kind = args.runtime
    if kind == "ollama":
        runtime: Runtime = ollama_runtime(args.base_url or None)
    elif kind == "openai":
        if not args.base_url:
            raise UserFacingError(
                "--runtime openai needs --base-url (e.g. http://127.0.0.1:8000/v1), "
                "or use --runtime openai:<saved endpoint name>."
            )
        key = args.api_key or os.environ.get("OPENAI_API_KEY", "")
        runtime = openai_runtime(args.base_url, key)
    else:
        runtime = registry_from_settings().get(kind)
    options = LoadOptions(n_ctx=args.ctx)
    endpoint = str(getattr(runtime, "endpoint", args.base_url))
    plan = LoadPlan(options=options, backend=kind, explanation=f"{kind} at {endpoint}")
    return ChatTarget(runtime, kind, args.model, args.model, plan)


def run_chat(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Load the model (locally or on a server), stream one reply, save it; returns exit code."""
    target = _local_target(args) if args.runtime == "llamacpp" else _server_target(args)
    err.write(f"Loading {target.model_name} ({target.plan.explanation})\n")
    host = ModelHost(target.runtime)
    loaded = host.load(Path(target.model), target.plan, _progress_printer(err))
    if err.isatty():
        err.write("\n")
    if loaded.info.notice:
        err.write(f"note: {loaded.info.notice}\n")
    params = GenerationParams(
        temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed
    )
    messages: list[ChatMessage] = []
    if args.system:
        messages.append(ChatMessage("system", args.system))
    messages.append(ChatMessage("user", args.prompt))
    try:
        return _stream_chat(args, target, host, ChatRequest(tuple(messages), params), out, err)
    finally:
        host.unload()


def _progress_printer(err: TextIO) -> Callable[[LoadProgress], None]:
    stages: list[str] = []
    tty = err.isatty()

    def on_progress(p: LoadProgress) -> None:
        if tty:
            err.write(f"\r  {p.stage:<20} {p.fraction * 100:3.0f}%")
        elif not stages or stages[-1] != p.stage:
            err.write(f"  {p.stage}\n")
        stages.append(p.stage)
        err.flush()

    return on_progress


def _stream_chat(
    args: argparse.Namespace,
    target: ChatTarget,
    host: ModelHost,
    request: ChatRequest,
    out: TextIO,
    err: TextIO,
) -> int:
    loaded = host.current
    if loaded is None:
        raise ExternalFailure("The model was unloaded before the reply started.")
    recorder = None
    measurements = MeasurementRecorder(None)
    if not args.no_history:
        database = open_database(app_paths().database)
        measurements = MeasurementRecorder(MeasurementStore(database))
        measurements.loaded(loaded, host.current_sample)
        service = ConversationService(database)
        conversation = service.create(target.model, target.model_name, target.runtime_key)
        service.add_user_message(conversation.id, args.prompt)
        recorder = service.start_reply(
            conversation.id, target.model_name, target.runtime_key, request.params
        )
    cancel = CancelToken()
    try:
        for event in loaded.chat(request, cancel):
            if isinstance(event, TextDelta):
                out.write(event.text)
                out.flush()
                if recorder is not None:
                    recorder.append(event.text)
            elif isinstance(event, Done):
                if recorder is not None:
                    recorder.finish(event.stats)
                measurements.generated(loaded, event.stats)
                _print_stats(event, loaded.info.load_time_s, err)
    except KeyboardInterrupt:
        cancel.cancel()
        if recorder is not None:
            recorder.interrupt("Stopped with Ctrl+C.")
        err.write("\nstopped\n")
        return 130
    except WorkbenchError as exc:
        if recorder is not None:
            recorder.interrupt(exc.message)
        raise
    return 0


def _print_stats(event: Done, load_time_s: float, err: TextIO) -> None:
    s = event.stats
    err.write(
        f"\n\n{s.completion_tokens} tokens · {s.decode_tps:.1f} tok/s · "
        f"TTFT {s.ttft_s * 1000:.0f} ms · prompt {s.prompt_tokens} tokens · "
        f"load {load_time_s:.2f} s · total {s.total_time_s:.2f} s · stop: {s.stop_reason}\n"
    )
