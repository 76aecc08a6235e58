"""`llm-workbench compare`: one prompt through several models, replies and figures side by side."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from typing import Any, TextIO

from app.chat import auto_title
from app.choices import LLAMACPP, SEPARATOR, split_choice
from app.cli_chat import library_from_settings, registry_from_settings
from app.compare import CompareService
from app.compare_plan import MemoryPlan, RequestedMode, pane_needs, plan_memory
from app.compare_runner import STOPPED, CompareRunner, PaneEvent, PaneSpec
from app.errors import UserFacingError
from app.hardware import HardwareProfile
from app.library import ModelLibrary
from app.model_session import LocalSessionOpener, RunFigures
from app.paths import app_paths
from app.store import open_database
from runtimes.base import CancelToken, ChatMessage, GenerationParams
from runtimes.llamacpp import wheel_backend

EXIT_PANE_FAILED = 3
EXIT_INTERRUPTED = 130
MIB = 1024**2


def add_compare_parser(sub: Any) -> None:
    """Add `compare` to the CLI's subcommands."""
    compare = sub.add_parser(
        "compare", help="send one prompt to several models and compare replies and speed"
    )
    compare.add_argument(
        "models",
        nargs="+",
        metavar="MODEL",
        help="a .gguf path, a name from `llm-workbench models`, or RUNTIME::NAME "
        "(ollama::llama3.2:1b, openai:<saved endpoint>::<model>)",
    )
    compare.add_argument("--prompt", required=True, help="the message sent to every model")
    modes = compare.add_mutually_exclusive_group()
    modes.add_argument(
        "--sequential", action="store_true", help="load, run and unload one model at a time"
    )
    modes.add_argument(
        "--parallel", action="store_true", help="run all at once (refused if they do not fit)"
    )
    compare.add_argument("--json", action="store_true", help="machine-readable output")
    compare.add_argument("--max-tokens", type=int, default=256, help="reply length limit (256)")
    compare.add_argument("--seed", type=int, default=1, help="sampling seed, the same for all (1)")
    compare.add_argument("--temperature", type=float, default=0.7, help="0 = greedy (0.7)")
    compare.add_argument("--system", default="", help="a system prompt for every model")
    compare.add_argument("--no-save", action="store_true", help="do not save the comparison")


@dataclass
class _PaneResult:
    """What one pane produced, gathered from its events."""

    text: list[str] = field(default_factory=list)
    figures: RunFigures | None = None
    error: str = ""
    finished: bool = False

    @property
    def status(self) -> str:
        if self.error == STOPPED:
            return "interrupted"
        return "error" if self.error else "complete"


def _resolve(models: list[str], library: ModelLibrary) -> list[PaneSpec]:
    """Each MODEL as a pane: a server choice as it is, else a library model (name or path)."""
    panes = []
    for model in models:
        if SEPARATOR in model:
            panes.append(PaneSpec(model, split_choice(model)[1]))
        else:
            found = library.find(model)
            panes.append(PaneSpec(str(found.path), found.name))
    return panes


def _profile(panes: list[PaneSpec]) -> HardwareProfile | None:
    """The hardware, probed only where GPU offload needs planning (else RAM is read live)."""
    local = any(split_choice(p.choice)[0] == LLAMACPP for p in panes)
    if local and wheel_backend() in ("Metal", "CUDA"):
        from app.hardware import probe_hardware

        return probe_hardware()
    return None


def _requested(args: argparse.Namespace) -> RequestedMode:
    if args.sequential:
        return "sequential"
    return "parallel" if args.parallel else "auto"


def run_compare(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Plan memory, run the prompt through every model, print and save; returns exit code."""
    library = library_from_settings()
    panes = _resolve(args.models, library)
    profile = _profile(panes)
    requested = _requested(args)
    needs = pane_needs([(p.choice, p.load) for p in panes], profile, library)
    plan = plan_memory(needs, profile, requested)
    if not plan.runnable:
        raise UserFacingError(plan.reason)
    err.write(plan.reason + "\n")
    params = GenerationParams(
        temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed
    )
    history: tuple[ChatMessage, ...] = (ChatMessage("user", args.prompt),)
    if args.system:
        history = (ChatMessage("system", args.system), *history)
    opener = LocalSessionOpener(registry_from_settings(), library, profile)
    results = _run(CompareRunner(opener), panes, history, plan, params, err)
    run_id = None if args.no_save else _save(args, panes, plan, params, results)
    if args.json:
        json.dump(_as_json(args, panes, plan, results, run_id), out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        _print_human(panes, results, plan, out)
    if any(r.error == STOPPED for r in results):
        return EXIT_INTERRUPTED
    return EXIT_PANE_FAILED if any(r.error for r in results) else 0


def _run(
    runner: CompareRunner,
    panes: list[PaneSpec],
    history: tuple[ChatMessage, ...],
    plan: MemoryPlan,
    params: GenerationParams,
    err: TextIO,
) -> list[_PaneResult]:
    results = [_PaneResult() for _ in panes]
    cancel = CancelToken()
    events = runner.run_turn(panes, [history] * len(panes), plan.mode, params, cancel)
    try:
        for event in events:
            _take(event, panes, results, err)
    except KeyboardInterrupt:
        cancel.cancel()
        err.write("\nstopping…\n")
        for event in events:
            _take(event, panes, results, err)
    finally:
        runner.close()
    return results


def _take(event: PaneEvent, panes: list[PaneSpec], results: list[_PaneResult], err: TextIO) -> None:
    result, name = results[event.pane], panes[event.pane].name
    if event.kind == "text":
        result.text.append(event.text)
    elif event.kind == "loading":
        err.write(f"[{event.pane + 1}] loading {name}\n")
    elif event.kind == "done":
        result.figures, result.finished = event.figures, True
        err.write(f"[{event.pane + 1}] done\n")
    elif event.kind == "failed":
        result.error, result.figures = event.text, event.figures
        err.write(f"[{event.pane + 1}] failed: {event.text}\n")
    err.flush()


def _save(
    args: argparse.Namespace,
    panes: list[PaneSpec],
    plan: MemoryPlan,
    params: GenerationParams,
    results: list[_PaneResult],
) -> int:
    database = open_database(app_paths().database)
    try:
        service = CompareService(database)
        title = auto_title(args.prompt)
        run = service.create_run(title, panes, _requested(args), args.system, params)
        turn = service.add_turn(run.id, args.prompt, plan.mode)
        for pane, result in zip(run.panes, results, strict=True):
            service.save_reply(
                turn.id, pane.id, "".join(result.text), result.status, result.error, result.figures
            )
        return run.id
    finally:
        database.close()


def _pane_json(model: str, pane: PaneSpec, result: _PaneResult) -> dict[str, Any]:
    f = result.figures
    return {
        "model": model,
        "name": pane.name,
        "choice": pane.choice,
        "runtime": split_choice(pane.choice)[0],
        "status": result.status,
        "text": "".join(result.text),
        "load_seconds": f.load_seconds if f else None,
        "ttft_ms": f.ttft_ms if f else None,
        "decode_tokens_per_second": f.decode_tps if f else None,
        "prompt_tokens_per_second": f.prompt_tps if f else None,
        "prompt_tokens": f.prompt_tokens if f else None,
        "completion_tokens": f.completion_tokens if f else None,
        "total_seconds": f.total_seconds if f else None,
        "peak_memory_bytes": f.peak_memory_bytes if f else None,
        "error": result.error or None,
    }


def _as_json(
    args: argparse.Namespace,
    panes: list[PaneSpec],
    plan: MemoryPlan,
    results: list[_PaneResult],
    run_id: int | None,
) -> dict[str, Any]:
    return {
        "mode": plan.mode,
        "plan": plan.as_dict(),
        "run_id": run_id,
        "panes": [
            _pane_json(model, pane, result)
            for model, pane, result in zip(args.models, panes, results, strict=True)
        ],
    }


def _cell(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _print_human(
    panes: list[PaneSpec], results: list[_PaneResult], plan: MemoryPlan, out: TextIO
) -> None:
    for index, (pane, result) in enumerate(zip(panes, results, strict=True), start=1):
        out.write(f"── [{index}] {pane.name} ──\n")
        text = "".join(result.text).strip()
        out.write((text or "(no reply)") + "\n")
        if result.error:
            out.write(f"error: {result.error}\n")
        out.write("\n")
    header = (
        "model",
        "load s",
        "TTFT ms",
        "tok/s",
        "prompt tok/s",
        "tokens",
        "total s",
        "peak MiB",
    )
    rows = [header]
    for index, (pane, result) in enumerate(zip(panes, results, strict=True), start=1):
        f = result.figures
        memory = f.peak_memory_bytes / MIB if f and f.peak_memory_bytes is not None else None
        rows.append(
            (
                f"[{index}] {pane.name}",
                _cell(f.load_seconds if f else None, ".2f"),
                _cell(f.ttft_ms if f else None, ".0f"),
                _cell(f.decode_tps if f else None, ".1f"),
                _cell(f.prompt_tps if f else None, ".0f"),
                str(f.completion_tokens) if f else "—",
                _cell(f.total_seconds if f else None, ".2f"),
                _cell(memory, ".0f"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        out.write("  ".join(cells).rstrip() + "\n")
    shared = " (figures share the machine)" if plan.mode == "parallel" and len(panes) > 1 else ""
    out.write(f"\nmode: {plan.mode}{shared}\n")
