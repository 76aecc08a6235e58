"""The `llm-workbench` console script: no command opens the window, commands run headless."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

STARTED = time.monotonic()  # for the "window shown after" figure in the log


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to the GUI (no arguments) or to the headless CLI."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "--run-child":  # a llama.cpp child of a frozen app: import no more
        from runtimes.llamacpp.launch import run_child

        return run_child(args[1:])
    if args and args[0] == "--self-test":
        from ui.self_test import run_self_test

        return run_self_test(args[1:])
    if not args or args[0] in ("gui", "--gui") or args[0].lower().endswith(".gguf"):
        from ui.main import run_gui

        return run_gui(args if args and args[0].lower().endswith(".gguf") else args[1:])
    from app.cli import run

    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
