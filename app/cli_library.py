"""Library commands for the command line: `rm MODEL`, and the rows of `models --json`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from app.cli_chat import library_from_settings
from app.errors import UserFacingError
from app.library import LocalModel


def add_library_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `rm MODEL [--yes]` on the top-level subcommands."""
    rm = sub.add_parser("rm", help="delete a model the workbench downloaded")
    rm.add_argument("model", help="a name from `llm-workbench models` or a path")
    rm.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")


def models_json(models: Sequence[LocalModel]) -> list[dict[str, Any]]:
    """The rows of `models --json`, one per model, in library order."""
    return [
        {
            "name": m.name,
            "path": str(m.path),
            "size_bytes": m.size_bytes,
            "source": m.source,
            "repo": m.repo,
            "owned": m.owned,
            "architecture": m.architecture,
            "parameters": m.parameters,
            "quant": m.quant,
            "context_length": m.context_length,
            "problem": m.problem,
        }
        for m in models
    ]


def run_rm(
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    stdin: TextIO | None = None,
) -> int:
    """Delete one owned model after confirmation; prints the bytes freed.

    On a terminal it asks first unless `--yes`; without a terminal it needs `--yes`.

    Raises:
        UserFacingError: no such model, not the workbench's to delete, or not confirmed.
    """
    stdin = sys.stdin if stdin is None else stdin
    library = library_from_settings()
    model = library.find(args.model)
    if not model.owned:
        library.delete(model)  # raises, saying where it lives and who owns it
    if not args.yes:
        if not stdin.isatty():
            raise UserFacingError(
                f"Not deleting {model.name} ({model.path}) without confirmation: "
                "add --yes to delete it from a script."
            )
        err.write(f"Delete {model.name} ({_size(model.size_bytes)}) at {model.path}? [y/N] ")
        err.flush()
        if stdin.readline().strip().casefold() not in ("y", "yes"):
            out.write("Nothing deleted.\n")
            return 1
    freed = library.delete(model)
    out.write(f"Deleted {model.name}: freed {freed:,} bytes ({_size(freed)}).\n")
    return 0


def _size(size: int) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:,.0f} MB"
