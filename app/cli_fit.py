"""`llm-workbench fit` and `llm-workbench recommend`: fit verdicts on the command line.

`fit` takes a local file, a library model name, a URL (`https://…/x.gguf`, `hf://org/repo/x.gguf`,
`org/repo/x.gguf`: only the header is read, with HTTP Range) or a catalog model (`--quant`).
The `--json` outputs are a stable interface documented in docs/cli.md; sizes are bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
from pathlib import Path
from typing import TextIO

from app.catalog import CatalogModel, find_model, load_catalog
from app.errors import UserFacingError
from app.fit import context_label, gib
from app.fit_service import fit_file, fit_url, installed_backend
from app.fit_types import SIZE_CLASS_LABELS, FitRequest, FitVerdict, Recommendation
from app.hardware import HardwareProfile, probe_hardware, summary_line
from app.paths import app_paths
from app.speed import Calibration

EXIT_UNKNOWN = 4
KV_TYPES = ("f16", "q8_0", "q4_0")


def add_fit_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `fit` and `recommend`."""
    fit = sub.add_parser("fit", help="will a model fit this machine, and how fast")
    fit.add_argument("model", help="a .gguf path, a library name, a URL, or a catalog model")
    fit.add_argument("--quant", default="", help="quantization of a catalog model (Q4_K_M)")
    _request_arguments(fit, default_ctx=0)
    fit.add_argument("--gpu-layers", type=int, default=None, help="layers on the GPU (-1 all)")
    fit.add_argument("--json", action="store_true", help="machine-readable output")
    fit.add_argument("--no-dry-run", action="store_true", help="formulas only, no llama.cpp")
    rec = sub.add_parser("recommend", help="catalog models ranked for this machine")
    _request_arguments(rec, default_ctx=8192)
    rec.add_argument("--all", action="store_true", help="every quantization, not the best")
    rec.add_argument("--json", action="store_true", help="machine-readable output")


def _request_arguments(parser: argparse.ArgumentParser, default_ctx: int) -> None:
    what = "the model's trained context" if default_ctx == 0 else str(default_ctx)
    parser.add_argument("--ctx", type=int, default=default_ctx, help=f"context length ({what})")
    parser.add_argument("--kv-type", choices=KV_TYPES, default="f16", help="KV cache type")
    parser.add_argument("--flash-attn", action="store_true", help="assume flash attention")


def _request(args: argparse.Namespace) -> FitRequest:
    if args.ctx < 0:
        raise UserFacingError("--ctx must be 0 (trained context) or a positive length.")
    return FitRequest(
        n_ctx=args.ctx,
        kv_cache_type=args.kv_type,
        flash_attn=args.flash_attn or args.kv_type != "f16",
        n_gpu_layers=getattr(args, "gpu_layers", None),
    )


def _calibration() -> Calibration | None:
    """This machine's measured runs; None when the history database cannot be read."""
    from app.measurements import MeasurementStore
    from app.store import open_database

    try:
        with contextlib.closing(open_database(app_paths().database)) as db:
            return MeasurementStore(db).calibration()
    except Exception:  # noqa: BLE001 - a missing or locked database only loses calibration
        return None


def run_fit(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`fit`: print the verdict; exit 0 when known (even "won't fit"), 4 when unknown."""
    request = _request(args)
    profile = probe_hardware(app_paths().models_dir)
    calibration = _calibration()
    described, verdict = _judge(args, profile, request, calibration)
    if args.json:
        document = {"model": described, **verdict_json(verdict), "backend": installed_backend()}
        json.dump(document, out, indent=2, ensure_ascii=False)
        out.write("\n")
    elif verdict.verdict != "unknown":
        _print_verdict(described, verdict, out)
    if verdict.verdict == "unknown":
        print(f"unknown: {verdict.reason}", file=err)
        return EXIT_UNKNOWN
    return 0


def _judge(
    args: argparse.Namespace,
    profile: HardwareProfile,
    request: FitRequest,
    calibration: Calibration | None,
) -> tuple[dict[str, object], FitVerdict]:
    text = args.model.strip()
    dry = not args.no_dry_run
    path = Path(text).expanduser()
    if path.is_file():
        return {"path": str(path)}, fit_file(
            path, profile, request, calibration=calibration, use_dry_run=dry
        )
    if "://" in text or (text.count("/") >= 2 and text.endswith(".gguf")):
        from app.gguf_remote import parse_model_ref

        url = parse_model_ref(text)
        return {"url": url}, fit_url(
            url, profile, request, calibration=calibration, use_dry_run=dry
        )
    model = find_model(load_catalog(), text)
    if model is not None:
        return _judge_catalog(model, args.quant, profile, request, calibration, dry)
    from app.cli_chat import library_from_settings

    local = library_from_settings().find(text)  # ModelNotFound explains what exists
    return {"path": str(local.path), "name": local.name}, fit_file(
        local.path, profile, request, calibration=calibration, use_dry_run=dry
    )


def _judge_catalog(
    model: CatalogModel,
    quant_name: str,
    profile: HardwareProfile,
    request: FitRequest,
    calibration: Calibration | None,
    dry: bool,
) -> tuple[dict[str, object], FitVerdict]:
    """A catalog model: llama.cpp dry-runs a synthetic header of the file (same tensors and
    metadata, no weights) when it is installed; the formulas otherwise."""
    from app.fit import machine_budget
    from app.recommend import judge_quant
    from app.synth_gguf import ArchConfig, write_sparse_gguf

    names = [q.quant for q in model.quants]
    chosen = quant_name.upper() or ("Q4_K_M" if "Q4_K_M" in names else names[0])
    quant = model.quant(chosen)
    if quant is None:
        raise UserFacingError(
            f"{model.name} has no {chosen} file in the catalog; choose one of {', '.join(names)}."
        )
    described: dict[str, object] = {
        "catalog_id": model.id,
        "name": model.name,
        "quant": quant.quant,
        "repo": model.repo,
        "files": list(quant.files),
        "file_size_bytes": quant.size_bytes,
    }
    if not dry:
        budget = machine_budget(profile, installed_backend())
        return described, judge_quant(model, quant, budget, request, profile, calibration)
    with tempfile.TemporaryDirectory(prefix="workbench-synth-") as folder:
        sparse = write_sparse_gguf(
            ArchConfig.from_dict(model.arch), quant.quant, Path(folder) / quant.files[0]
        )
        return described, fit_file(sparse, profile, request, calibration=calibration)


def verdict_json(verdict: FitVerdict) -> dict[str, object]:
    """The documented JSON form of a verdict (docs/cli.md)."""
    memory = verdict.memory
    speed = verdict.speed
    return {
        "verdict": verdict.verdict,
        "badge": verdict.badge,
        "gpu_layers": verdict.gpu_layers,
        "n_layers": verdict.n_layers,
        "context_length": verdict.context_length,
        "kv_cache_type": verdict.kv_cache_type,
        "flash_attn": verdict.flash_attn,
        "memory": None
        if memory is None
        else {
            "weights_bytes": memory.weights_bytes,
            "kv_cache_bytes": memory.kv_cache_bytes,
            "compute_bytes": memory.compute_bytes,
            "overhead_bytes": memory.overhead_bytes + memory.output_bytes,
            "gpu_bytes": memory.gpu_bytes,
            "host_bytes": memory.host_bytes,
            "total_bytes": memory.total_bytes,
            "resident_bytes": memory.resident_bytes or None,
            "source": memory.source,
        },
        "budget_bytes": verdict.budget_bytes,
        "headroom_bytes": verdict.headroom_bytes,
        "tight": verdict.tight,
        "max_context": verdict.max_context,
        "decode_tokens_per_second": speed.decode_tokens_per_second if speed else None,
        "prompt_tokens_per_second": speed.prompt_tokens_per_second if speed else None,
        "speed_basis": speed.basis if speed else None,
        "speed_detail": speed.detail if speed else "",
        "explanation": verdict.explanation,
        "reason": verdict.reason,
    }


def _print_verdict(described: dict[str, object], verdict: FitVerdict, out: TextIO) -> None:
    name = described.get("name") or described.get("path") or described.get("url")
    quant = f" {described['quant']}" if "quant" in described else ""
    out.write(f"{name}{quant}: {verdict.badge}\n  {verdict.explanation}\n")
    memory = verdict.memory
    if memory is not None:
        out.write(
            f"  weights {gib(memory.weights_bytes)} GiB · KV cache {gib(memory.kv_cache_bytes)} "
            f"GiB ({verdict.kv_cache_type}, {context_label(verdict.context_length)}) · compute "
            f"{gib(memory.compute_bytes)} GiB · overhead "
            f"{gib(memory.overhead_bytes + memory.output_bytes)} GiB · from {memory.source}\n"
        )
    speed = verdict.speed
    if verdict.verdict != "wont_fit" and speed is not None and speed.decode_tokens_per_second:
        out.write(
            f"  ~{speed.decode_tokens_per_second:.0f} tok/s ({speed.basis}: {speed.detail})\n"
        )
    if verdict.max_context:
        out.write(f"  largest context with this placement: {verdict.max_context}\n")


def run_recommend(args: argparse.Namespace, out: TextIO) -> int:
    """`recommend`: the catalog ranked for this machine."""
    from app.recommend import recommend

    request = _request(args)
    profile = probe_hardware(app_paths().models_dir)
    rows = recommend(profile, request, calibration=_calibration(), local_files=_local_files())
    if args.json:
        document = {
            "hardware": summary_line(profile),
            "backend": installed_backend(),
            "context_length": request.n_ctx,
            "kv_cache_type": request.kv_cache_type,
            "recommendations": [_recommendation_json(r) for r in rows if args.all or r.best],
        }
        json.dump(document, out, indent=2, ensure_ascii=False)
        out.write("\n")
        return 0
    out.write(f"{summary_line(profile)} · {installed_backend()} build\n")
    out.write(f"context {context_label(request.n_ctx)} · KV cache {request.kv_cache_type}\n")
    current = ""
    for row in rows:
        if not (args.all or row.best):
            continue
        if row.size_class != current:
            current = row.size_class
            out.write(f"\n{SIZE_CLASS_LABELS[current]}\n")
        speed = row.verdict.speed
        tps = (
            f"{speed.decode_tokens_per_second:5.0f} tok/s"
            if speed and speed.decode_tokens_per_second
            else ""
        )
        need = row.verdict.memory.total_bytes if row.verdict.memory else 0
        mark = "★" if row.best else " "
        out.write(
            f" {mark} {row.model_name:<38} {row.quant:<7} {row.file_size_bytes / 1e9:6.1f} GB  "
            f"{row.verdict.badge:<16} needs {gib(need):>5} GiB  {tps}\n"
        )
    if not any(r.best for r in rows):
        out.write("\nNothing in the catalog fits this machine at this context.\n")
    return 0


def _recommendation_json(row: Recommendation) -> dict[str, object]:
    return {
        "model_id": row.model_id,
        "model_name": row.model_name,
        "size_class": row.size_class,
        "parameters": row.parameters_label,
        "quant": row.quant,
        "repo": row.repo,
        "file_name": row.file_name,
        "file_size_bytes": row.file_size_bytes,
        "best": row.best,
        "local_path": row.local_path or None,
        "quality": row.quality_note,
        **verdict_json(row.verdict),
    }


def _local_files() -> dict[str, str]:
    from app.cli_chat import library_from_settings

    try:
        return {Path(m.path).name: str(m.path) for m in library_from_settings().scan()}
    except OSError:
        return {}
