"""Run a probe command with a timeout; a missing tool or a hang becomes a note, never an error."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from app.hardware.profile import FactLog

DEFAULT_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a probe command did.

    Attributes:
        ok: it ran and exited 0.
        stdout: its standard output ("" when it did not run).
        stderr: its standard error, or why it did not run ("not found", "timed out").
        returncode: its exit status; -1 when it did not run.
    """

    ok: bool
    stdout: str
    stderr: str
    returncode: int


def run_command(
    args: Sequence[str], log: FactLog, timeout_s: float = DEFAULT_TIMEOUT_S
) -> CommandResult:
    """Run `args` and capture its output; notes in `log` why it failed. Never raises.

    Args:
        args: the command line; args[0] is looked up on PATH.
        log: where a failure is noted (a missing tool is a fact about the machine).
        timeout_s: the process is killed after this many seconds.
    """
    tool = args[0]
    try:
        done = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError:
        log.note(f"{tool} not found")
        return CommandResult(False, "", "not found", -1)
    except subprocess.TimeoutExpired:
        log.note(f"{tool} did not answer within {timeout_s:g} s")
        return CommandResult(False, "", "timed out", -1)
    except OSError as exc:
        log.note(f"{tool} could not run: {exc.strerror or exc}")
        return CommandResult(False, "", str(exc), -1)
    return CommandResult(done.returncode == 0, done.stdout, done.stderr, done.returncode)


def first_line(text: str) -> str:
    """The first non-empty line of a tool's message, for notes."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")
