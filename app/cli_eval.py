"""`llm-workbench eval`: score an eval set (JSONL/CSV) across models, one model at a time."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

from app.cli_chat import library_from_settings, registry_from_settings
from app.eval_report import EvalReport, ModelSummary
from app.eval_runner import EvalProgress, EvalRunner
from app.eval_store import EvalStore, source_path_of
from app.evals import load_cases
from app.model_session import LocalSessionOpener, SessionOpener
from app.paths import app_paths
from app.store import open_database
from runtimes.base import CancelToken, GenerationParams

EXIT_INTERRUPTED = 130


def add_eval_parser(sub: Any) -> None:
    """Register `eval` on the subcommand parsers."""
    ev = sub.add_parser(
        "eval",
        help="score an eval set (JSONL or CSV) on one or more models",
        description="Run every case of an eval set on each model in turn (load, all cases, "
        "unload), score the replies, save the run in the history, and print the scores.",
    )
    ev.add_argument("set", type=Path, help="the eval set: a .jsonl or .csv file")
    ev.add_argument(
        "--models",
        nargs="+",
        required=True,
        metavar="MODEL",
        help="models: a .gguf path, a library name, or <runtime>::<model> (ollama::llama3.2:1b)",
    )
    ev.add_argument("--json", action="store_true", help="machine-readable results on stdout")
    ev.add_argument("--csv", type=Path, metavar="OUT", help="also write one row per case and model")
    ev.add_argument("--max-tokens", type=int, default=256, help="reply length limit (256)")
    ev.add_argument("--seed", type=int, default=1, help="sampling seed (1)")
    ev.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (the default)")


def run_eval(
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    opener: SessionOpener | None = None,
) -> int:
    """Run the set on the models; exit code 0 whatever the scores.

    Raises:
        UserFacingError: a bad set file (the message names the line).
    """
    cases = load_cases(args.set)
    params = GenerationParams(
        temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed
    )
    database = open_database(app_paths().ensure().database)
    local: LocalSessionOpener | None = None
    if opener is None:
        local = LocalSessionOpener(registry_from_settings(), library_from_settings())
        opener = local
    try:
        store = EvalStore(database)
        eval_set = store.import_set(args.set.stem, cases, source_path_of(args.set))
        run = store.start_run(eval_set.id, list(args.models), params)
        err.write(
            f"Eval set {eval_set.name!r}: {len(cases)} cases × {len(args.models)} models "
            f"(run #{run.id})\n"
        )
        cancel = CancelToken()
        try:
            for progress in EvalRunner(opener, store).run(run.id, cancel):
                err.write(progress_line(progress) + "\n")
                err.flush()
        except KeyboardInterrupt:
            cancel.cancel()
            err.write(f"stopped; run #{run.id} is kept with the results so far\n")
            return EXIT_INTERRUPTED
        report = store.report(run.id)
        if args.csv is not None:
            store.export_csv(run.id, args.csv)
            err.write(f"wrote {args.csv}\n")
    finally:
        if local is not None:
            local.close_all()
        database.close()
    if args.json:
        json.dump(report.as_dict(), out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        write_table(report, out)
    return 0


def progress_line(p: EvalProgress) -> str:
    """One stderr line: "[3/20] SmolLM2 · case 3: pass (contains 'Paris') · ETA 0:42"."""
    head = f"[{p.done}/{p.total}] {p.model_name}"
    eta = f" · ETA {format_eta(p.eta_seconds)}" if p.eta_seconds is not None else ""
    if p.phase == "loading":
        return f"{head} · loading{eta}"
    if p.phase == "load_failed":
        return f"{head} · case {p.case_index + 1}: {p.message}"
    result = p.result
    if result is None:
        return head + eta
    verdict = {True: "pass", False: "fail", None: "to judge"}[result.passed]
    why = result.error or result.detail
    return f"{head} · case {p.case_index + 1}: {verdict} ({why}){eta}"


def format_eta(seconds: float) -> str:
    """Seconds as m:ss (or h:mm:ss)."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def write_table(report: EvalReport, out: TextIO) -> None:
    """The per-model scores as a small table."""
    out.write(f"{report.set_name} (run #{report.run_id}, {report.status})\n")
    for m in report.models:
        out.write(_table_row(m) + "\n")


def _table_row(m: ModelSummary) -> str:
    score = f"{m.score * 100:5.1f} %" if m.score is not None else "    – "
    speed = (
        f"{m.decode_tokens_per_second:7.1f} tok/s"
        if m.decode_tokens_per_second is not None
        else "      – tok/s"
    )
    memory = f"{m.peak_memory_bytes / 1e6:8,.0f} MB" if m.peak_memory_bytes else "       – MB"
    pending = m.total - m.judged
    note = f"  ({pending} to judge or not run)" if pending else ""
    errors = f"  {m.errors} errors" if m.errors else ""
    return f"{m.model_name:<40} {m.passed:>3}/{m.judged:<3} {score} {speed} {memory}{errors}{note}"
