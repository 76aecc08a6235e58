"""Headless entry points: `hw`, `models`, `chat` (the GUI is launched by `ui.entry`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from app import __version__
from app.chat import ConversationService
from app.engine import ModelHost, gpu_budget_bytes, plan_load
from app.errors import ExternalFailure, UserFacingError, WorkbenchError
from app.hardware import as_dict, probe_hardware, summary_line
from app.library import LocalModel, ModelLibrary
from app.logs import setup_logging
from app.paths import app_paths
from app.settings import Settings
from app.store import open_database
from runtimes.base import (
    CancelToken,
    ChatMessage,
    ChatRequest,
    Done,
    GenerationParams,
    LoadProgress,
    TextDelta,
)
from runtimes.llamacpp import wheel_backend

EXIT_USER_ERROR = 2
EXIT_EXTERNAL = 3


def build_parser() -> argparse.ArgumentParser:
    """The command-line grammar (no subcommand opens the GUI)."""
    parser = argparse.ArgumentParser(
        prog="llm-workbench",
        description="Run open-weight LLMs on your own machine. No command opens the window.",
    )
    parser.add_argument("--version", action="version", version=f"llm-workbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    hw = sub.add_parser("hw", help="print this machine's hardware summary")
    hw.add_argument("--json", action="store_true", help="machine-readable output")

    models = sub.add_parser("models", help="list local models")
    models.add_argument("--json", action="store_true", help="machine-readable output")

    chat = sub.add_parser("chat", help="stream one reply from a local model")
    chat.add_argument("model", help="a path to a .gguf file or a name from `llm-workbench models`")
    chat.add_argument("prompt", help="the message to send")
    chat.add_argument("--max-tokens", type=int, default=256, help="reply length limit (256)")
    chat.add_argument("--seed", type=int, default=None, help="sampling seed (random if unset)")
    chat.add_argument("--temperature", type=float, default=0.7, help="0 = greedy (0.7)")
    chat.add_argument("--system", default="", help="a system prompt")
    chat.add_argument("--ctx", type=int, default=2048, help="context length (2048)")
    chat.add_argument("--no-history", action="store_true", help="do not save the exchange")
    return parser


def run(argv: Sequence[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run a headless command; returns the process exit code."""
    args = build_parser().parse_args(list(argv))
    setup_logging(app_paths().ensure().log_dir, verbose=False)
    try:
        if args.command == "hw":
            return _cmd_hw(args, out)
        if args.command == "models":
            return _cmd_models(args, out)
        if args.command == "chat":
            return _cmd_chat(args, out, err)
    except UserFacingError as exc:
        print(f"error: {exc.message}", file=err)
        return EXIT_USER_ERROR
    except ExternalFailure as exc:
        print(f"error: {exc.message}", file=err)
        if exc.details:
            print(exc.details, file=err)
        return EXIT_EXTERNAL
    print("no command given", file=err)
    return EXIT_USER_ERROR


def _cmd_hw(args: argparse.Namespace, out: TextIO) -> int:
    profile = probe_hardware(app_paths().models_dir)
    if args.json:
        json.dump(as_dict(profile), out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        out.write(summary_line(profile) + "\n")
    return 0


def _library() -> ModelLibrary:
    paths = app_paths().ensure()
    settings = Settings.load(paths.settings_file)
    return ModelLibrary(paths, extra_files=[Path(p) for p in settings.opened_model_files])


def _cmd_models(args: argparse.Namespace, out: TextIO) -> int:
    models = _library().scan()
    if args.json:
        rows = [
            {"name": m.name, "path": str(m.path), "size_bytes": m.size_bytes, "source": m.source}
            for m in models
        ]
        json.dump(rows, out, indent=2, ensure_ascii=False)
        out.write("\n")
        return 0
    if not models:
        out.write("No local models. Run ./workbench.sh to install the demo model.\n")
    for m in models:
        size = f"{m.size_bytes / 1e6:,.0f} MB"
        out.write(f"{m.name:<48} {size:>10}  {m.source:<14} {m.path}\n")
    return 0


def _cmd_chat(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    library = _library()
    model = library.find(args.model)
    gpu_build = wheel_backend() in ("Metal", "CUDA")
    plan = plan_load(
        model.context_length or 0,
        n_ctx=args.ctx,
        file_size=model.size_bytes,
        n_layers=library.metadata(model).block_count or 0,
        gpu_budget=gpu_budget_bytes(probe_hardware()) if gpu_build else None,
    )
    err.write(f"Loading {model.name} ({plan.explanation})\n")
    host = ModelHost()

    stages: list[str] = []
    tty = err.isatty()

    def on_progress(p: LoadProgress) -> None:
        if tty:
            err.write(f"\r  {p.stage:<20} {p.fraction * 100:3.0f}%")
        elif not stages or stages[-1] != p.stage:
            err.write(f"  {p.stage}\n")
        stages.append(p.stage)
        err.flush()

    loaded = host.load(model.path, plan, on_progress)
    if tty:
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
        return _stream_chat(args, model, host, ChatRequest(tuple(messages), params), out, err)
    finally:
        host.unload()


def _stream_chat(
    args: argparse.Namespace,
    model: LocalModel,
    host: ModelHost,
    request: ChatRequest,
    out: TextIO,
    err: TextIO,
) -> int:
    loaded = host.current
    if loaded is None:
        raise ExternalFailure("The model was unloaded before the reply started.")
    recorder = None
    if not args.no_history:
        service = ConversationService(open_database(app_paths().database))
        conversation = service.create(str(model.path), model.name, host.runtime_name)
        service.add_user_message(conversation.id, args.prompt)
        recorder = service.start_reply(
            conversation.id, model.name, host.runtime_name, request.params
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
