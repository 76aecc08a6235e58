"""Logging setup: a rotating file in the log folder, warnings to stderr."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(log_dir: Path, verbose: bool = False) -> Path:
    """Send the workbench's logs to `log_dir/workbench.log` (rotated at 2 MB, 3 kept).

    Safe to call more than once: handlers are installed only the first time.

    Returns:
        The log file's path (shown in crash dialogs and Help ▸ Open logs folder).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / "workbench.log"
    root = logging.getLogger()
    if not any(getattr(h, "_workbench", False) for h in root.handlers):
        file_handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=2_000_000, backupCount=3, encoding="utf-8"
        )
        file_handler.setFormatter(logging.Formatter(_FORMAT))
        file_handler._workbench = True  # type: ignore[attr-defined]
        root.addHandler(file_handler)
        console = logging.StreamHandler()
        console.setLevel(logging.DEBUG if verbose else logging.WARNING)
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        console._workbench = True  # type: ignore[attr-defined]
        root.addHandler(console)
        root.setLevel(logging.DEBUG)
    return log_file
