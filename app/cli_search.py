"""`llm-workbench search`: find GGUF repositories on Hugging Face, or list one's files with fit.

    llm-workbench search qwen coder [--sort downloads|likes|last_modified] [--limit N] [--json]
    llm-workbench search --repo bartowski/Qwen2.5-7B-Instruct-GGUF [--ctx N] [--json]

Honours `HF_ENDPOINT` and `HF_TOKEN` as huggingface_hub does.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import TextIO

from app.fit_types import FitRequest
from app.hub_search import SORTS, describe, fit_quants, repo_files, search_hub


def add_search_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `search`."""
    search = sub.add_parser("search", help="find GGUF models on Hugging Face")
    search.add_argument("query", nargs="*", help="words to search for")
    search.add_argument("--repo", default="", help="list this repository's files with fit")
    search.add_argument("--sort", choices=SORTS, default="downloads", help="order (downloads)")
    search.add_argument("--limit", type=int, default=20, help="how many results (20)")
    search.add_argument("--ctx", type=int, default=8192, help="context for the fit (8192)")
    search.add_argument("--json", action="store_true", help="machine-readable output")


def run_search(args: argparse.Namespace, out: TextIO) -> int:
    """Print search hits, or a repository's files with their fit badges."""
    token = os.environ.get("HF_TOKEN") or None
    if args.repo:
        return _list_repo(args, out, token)
    hits = search_hub(" ".join(args.query), sort=args.sort, limit=args.limit, token=token)
    if args.json:
        rows = [
            {
                "repo_id": h.repo_id,
                "downloads": h.downloads,
                "likes": h.likes,
                "last_modified": h.last_modified,
                "gated": h.gated or None,
                "tags": list(h.tags),
            }
            for h in hits
        ]
        json.dump(rows, out, indent=2)
        out.write("\n")
        return 0
    if not hits:
        out.write("No GGUF repositories match.\n")
    for h in hits:
        gated = "  (gated)" if h.gated else ""
        out.write(f"{h.repo_id:<60} {h.downloads:>10,} downloads {h.likes:>6,} likes{gated}\n")
    return 0


def _list_repo(args: argparse.Namespace, out: TextIO, token: str | None) -> int:
    from app.hardware import probe_hardware

    info = repo_files(args.repo, token=token)
    verdicts = fit_quants(info, probe_hardware(), FitRequest(n_ctx=args.ctx), token=token)
    if args.json:
        document = {
            "repo_id": info.repo_id,
            "revision": info.revision,
            "gated": info.gated or None,
            "license": info.license or None,
            "architecture": info.architecture or None,
            "parameters": info.parameters,
            "context_length": info.context_length,
            "files": [
                {
                    "quant": q.quant,
                    "files": list(q.files),
                    "size_bytes": q.size_bytes,
                    "sha256": list(q.sha256),
                    "verdict": verdicts[q.files[0]].verdict if q.files[0] in verdicts else None,
                    "badge": verdicts[q.files[0]].badge if q.files[0] in verdicts else None,
                }
                for q in info.quants
            ],
        }
        json.dump(document, out, indent=2)
        out.write("\n")
        return 0
    out.write(f"{info.repo_id} · {info.summary}\n")
    for line, entry in zip(describe(info.quants), info.quants, strict=True):
        verdict = verdicts.get(entry.files[0])
        out.write(f"  {line}  {verdict.badge if verdict else ''}\n")
    if not info.quants:
        out.write("  (no GGUF model files)\n")
    return 0
