"""Headless entry points: `hw`, `models`, `chat`, `fit`, `recommend`, `runtimes`, `search`,
`pull`, `rm`, `compare`, `eval` (the GUI is launched by `ui.entry`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from app import __version__
from app.cli_chat import library_from_settings, registry_from_settings, run_chat
from app.cli_compare import add_compare_parser, run_compare
from app.cli_download import add_download_parsers, run_pull
from app.cli_eval import add_eval_parser, run_eval
from app.cli_fit import add_fit_parsers, run_fit, run_recommend
from app.cli_library import add_library_parsers, models_json, run_rm
from app.cli_search import add_search_parser, run_search
from app.errors import ExternalFailure, UserFacingError
from app.hardware import as_dict, probe_hardware, summary_line
from app.logs import setup_logging
from app.paths import app_paths

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
    chat.add_argument(
        "--runtime",
        default="llamacpp",
        help="llamacpp (default), ollama, openai, or openai:<saved endpoint name>",
    )
    chat.add_argument(
        "--base-url", default="", help="server URL (Ollama, or OpenAI-compatible /v1)"
    )
    chat.add_argument(
        "--api-key", default="", help="OpenAI-compatible API key (default: $OPENAI_API_KEY)"
    )

    add_fit_parsers(sub)
    add_search_parser(sub)
    add_library_parsers(sub)
    add_download_parsers(sub)
    add_compare_parser(sub)
    add_eval_parser(sub)

    runtimes = sub.add_parser("runtimes", help="the state of each runtime")
    runtimes.add_argument("--json", action="store_true", help="machine-readable output")
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
            return run_chat(args, out, err)
        if args.command == "runtimes":
            return _cmd_runtimes(args, out)
        if args.command == "fit":
            return run_fit(args, out, err)
        if args.command == "recommend":
            return run_recommend(args, out)
        if args.command == "search":
            return run_search(args, out)
        if args.command == "rm":
            return run_rm(args, out, err)
        if args.command == "pull":
            return run_pull(args, out, err)
        if args.command == "compare":
            return run_compare(args, out, err)
        if args.command == "eval":
            return run_eval(args, out, err)
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


def _cmd_models(args: argparse.Namespace, out: TextIO) -> int:
    models = library_from_settings().scan()
    if args.json:
        json.dump(models_json(models), out, indent=2, ensure_ascii=False)
        out.write("\n")
        return 0
    if not models:
        out.write("No local models. Run ./workbench.sh to install the demo model.\n")
    for m in models:
        size = f"{m.size_bytes / 1e6:,.0f} MB"
        out.write(f"{m.name:<48} {size:>10}  {m.source:<14} {m.path}\n")
    return 0


def _cmd_runtimes(args: argparse.Namespace, out: TextIO) -> int:
    entries = registry_from_settings().statuses()
    if args.json:
        rows = [
            {
                "key": e.key,
                "kind": e.kind,
                "label": e.label,
                "state": e.status.state,
                "endpoint": e.status.endpoint,
                "version": e.status.version,
                "detail": e.status.detail,
                "warnings": list(e.status.warnings),
            }
            for e in entries
        ]
        json.dump(rows, out, indent=2, ensure_ascii=False)
        out.write("\n")
        return 0
    marks = {"available": "●", "not_found": "○", "error": "✕"}
    for e in entries:
        where = f" {e.status.endpoint}" if e.status.endpoint else ""
        version = f" {e.status.version}" if e.status.version else ""
        out.write(f"{marks[e.status.state]} {e.label}{version}{where}: {e.status.detail}\n")
        for warning in e.status.warnings:
            out.write(f"    warning: {warning}\n")
    return 0
