"""The error hierarchy, re-exported for the app floor, plus the app's own failures."""

from __future__ import annotations

from runtimes.errors import (
    ExternalFailure,
    InvalidModelFile,
    LoadCancelled,
    ModelLoadFailed,
    ModelNotLoaded,
    RuntimeBusy,
    RuntimeCrashed,
    UserFacingError,
    WorkbenchError,
)

__all__ = [
    "DatabaseUnavailable",
    "ExternalFailure",
    "InvalidModelFile",
    "LoadCancelled",
    "ModelLoadFailed",
    "ModelNotFound",
    "ModelNotLoaded",
    "RuntimeBusy",
    "RuntimeCrashed",
    "UserFacingError",
    "WorkbenchError",
]


class DatabaseUnavailable(ExternalFailure):
    """The history database could not be written (locked, disk full, read-only)."""


class ModelNotFound(UserFacingError):
    """A model name or path that matches nothing in the local library."""
