"""How the parent starts llama.cpp child processes, from source and in a frozen app.

From source a child is `python -m runtimes.llamacpp.worker`. In a PyInstaller bundle
`sys.executable` is the app itself and there is no `-m`, so the app takes a hidden first
argument instead: `llm-workbench --run-child runtimes.llamacpp.worker` (see `run_child`,
called by `ui.entry.main` before anything else is imported).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

CHILD_FLAG = "--run-child"
WORKER_MODULE = "runtimes.llamacpp.worker"
DRYRUN_MODULE = "runtimes.llamacpp.dryrun_child"
CHILD_MODULES = (WORKER_MODULE, DRYRUN_MODULE)


def is_frozen() -> bool:
    """Whether this process is a frozen (PyInstaller) app rather than a Python interpreter."""
    return bool(getattr(sys, "frozen", False))


def bundle_root() -> Path | None:
    """The frozen app's unpacked data folder (`sys._MEIPASS`); None when running from source."""
    root = getattr(sys, "_MEIPASS", None)
    return Path(root) if root else None


def child_command(module: str, args: Sequence[str] = ()) -> list[str]:
    """The command line that runs `module`'s main in a new process.

    Raises:
        ValueError: `module` is not one of `CHILD_MODULES`.
    """
    if module not in CHILD_MODULES:
        raise ValueError(f"not a child module: {module}")
    if is_frozen():
        return [sys.executable, CHILD_FLAG, module, *args]
    return [sys.executable, "-m", module, *args]


def run_child(argv: Sequence[str]) -> int:
    """Run the child named by `argv` (`[module, *args]`) in this process; its exit code.

    Imports only the child's own module: the worker must not load the parent's side (see
    `runtimes.llamacpp`'s docstring).
    """
    if not argv or argv[0] not in CHILD_MODULES:
        print(f"usage: {CHILD_FLAG} {{{','.join(CHILD_MODULES)}}} [ARGS]", file=sys.stderr)
        return 2
    if argv[0] == WORKER_MODULE:
        from runtimes.llamacpp.worker import main as worker_main

        worker_main()  # leaves with os._exit
        return 0
    from runtimes.llamacpp.dryrun_child import main as dryrun_main

    return dryrun_main(list(argv[1:]))
