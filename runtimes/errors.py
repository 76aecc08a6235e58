"""The error hierarchy shared by every floor: what the user sees, what failed outside, and bugs.

`UserFacingError` messages are shown as they are and say what to do next.
`ExternalFailure` is something outside our code that failed (disk full, server down, a worker
process that died); its message is shown too, with details behind "Show details".
Anything else that escapes is a bug: logged with its traceback and shown in a crash dialog.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base of every error the workbench raises on purpose.

    Args:
        message: one or two sentences for the user: what happened and what to do next.
        details: optional longer text (log lines, paths) shown behind "Show details".
    """

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class UserFacingError(WorkbenchError):
    """A problem the user can fix: a bad file, a wrong name, an option out of range."""


class ExternalFailure(WorkbenchError):
    """Something outside the workbench failed: disk, network, a server, a worker process."""


class InvalidModelFile(UserFacingError):
    """A file that is not a usable GGUF model (bad magic, truncated, absurd counts)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(
            f"{path} is not a usable GGUF model: {reason}. "
            "Download it again or choose another file.",
        )
        self.path = path
        self.reason = reason


class ModelLoadFailed(ExternalFailure):
    """llama.cpp (or a server) refused to load a model; `details` holds its log."""


class LoadCancelled(ModelLoadFailed):
    """The user cancelled a load; nothing failed, so callers may show nothing.

    A `ModelLoadFailed` so that code that only knows that class still stops cleanly.
    """

    def __init__(self, path: str) -> None:
        super().__init__(f"Loading {path} was cancelled.")
        self.path = path


class RuntimeCrashed(ExternalFailure):
    """A worker process died while loading or generating.

    Attributes:
        exit_code: the process's exit status (negative: killed by that signal number).
        stderr_tail: the last lines the worker wrote to stderr before it died.
    """

    def __init__(self, exit_code: int | None, stderr_tail: str) -> None:
        how = _describe_exit(exit_code)
        super().__init__(
            f"The model's worker process stopped unexpectedly ({how}). "
            "The reply so far is kept; load the model again to continue.",
            details=stderr_tail,
        )
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail


class ChatTemplateFailed(UserFacingError):
    """The model's own chat template rejected a conversation (the model stays loaded).

    Args:
        reason: the template's own words, e.g. "Conversation roles must alternate".
    """

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"This model's chat template failed on this conversation: {reason}. "
            "Change the conversation (many templates want user and assistant turns to "
            "alternate, or no system prompt) or use another file of this model."
        )
        self.reason = reason


class RuntimeBusy(UserFacingError):
    """A request arrived while the model was already generating."""


class ModelNotLoaded(UserFacingError):
    """A request for a model that is not (or no longer) loaded."""


def _describe_exit(exit_code: int | None) -> str:
    if exit_code is None:
        return "exit status unknown"
    if exit_code < 0:
        import signal

        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        return f"killed by {name}, exit code {exit_code}"
    return f"exit code {exit_code}"
