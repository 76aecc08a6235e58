"""`llm-workbench --self-test [--model PATH]`: the app floor's checks plus Qt's, one line each.

Exits 0 when every check passed, 1 otherwise. Runs headless (`QT_QPA_PLATFORM=offscreen`
works); the Qt check proves the bundled platform, image-format and icon-engine plugins load.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from app import __version__
from app.logs import setup_logging
from app.paths import app_paths, resources_dir
from app.self_test import Check, default_checks, describe_build, run_checks


def check_qt() -> str:
    """A QApplication starts on this platform and renders the SVG app icon."""
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(["llm-workbench"])
    pixmap = QIcon(str(resources_dir() / "icon.svg")).pixmap(64, 64)
    if pixmap.isNull():
        raise RuntimeError("the SVG icon did not render (iconengines/imageformats plugin?)")
    return f"platform {QApplication.platformName()}, icon rendered {pixmap.width()} px" + (
        "" if isinstance(app, QApplication) else " (existing application)"
    )


def run_self_test(argv: Sequence[str], out: TextIO = sys.stdout) -> int:
    """Run every check, print one line each and a summary; the exit code."""
    parser = argparse.ArgumentParser(prog="llm-workbench --self-test")
    parser.add_argument("--model", type=Path, default=None, help="a GGUF instead of the demo")
    parser.add_argument("--no-qt", action="store_true", help="skip the Qt check")
    args = parser.parse_args(list(argv))
    log_file = setup_logging(app_paths().ensure().log_dir)
    out.write(f"llm-workbench {__version__} self-test ({describe_build()}, {sys.platform})\n")
    checks: list[Check] = default_checks(args.model)
    if not args.no_qt:
        checks.append(("qt", check_qt))
    failed = 0
    for result in run_checks(checks):
        out.write(result.line() + "\n")
        out.flush()
        failed += not result.ok
    if failed:
        out.write(f"self-test FAILED: {failed} of {len(checks)} checks (log: {log_file})\n")
        return 1
    out.write(f"self-test passed: {len(checks)} checks\n")
    return 0
