"""Export a conversation to Markdown or JSON, and import a JSON export as a new conversation."""

from __future__ import annotations

import errno
import itertools
import json
import math
import os
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeGuard

from sqlalchemy import select

from app.chat import ConversationService, MessageView
from app.errors import ExternalFailure, UserFacingError
from app.store.database import Database
from app.store.models import MESSAGE_ROLES, MESSAGE_STATUSES, Conversation, Message, utc_now

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "InvalidConversationExport",
    "export_json",
    "export_markdown",
    "import_json",
    "write_export",
]

EXPORT_FORMAT = "llm-workbench.conversation"
EXPORT_VERSION = 1
"""The JSON format this code writes and the newest it reads.

Version 1, one JSON object::

    {"format": "llm-workbench.conversation", "version": 1,
     "title": str, "created_at": ISO 8601 str, "model_name": str, "model_path": str,
     "runtime": str,
     "messages": [{"role": "system" | "user" | "assistant", "content": str,
                   "status": "complete" | "partial" | "interrupted" | "error",
                   "model_name": str, "runtime": str, "params": object,
                   "stats": {"prompt_tokens": int, "completion_tokens": int,
                             "load_time_s": float, "ttft_s": float, "decode_tps": float,
                             "total_time_s": float,
                             "stop_reason": "stop" | "length" | "cancelled" | "error"} | null,
                   "error": str, "created_at": ISO 8601 str}]}

Required on import: format, version, title, messages, and each message's role and content;
the other keys default ("complete", "", {}, null, now) but must have their type when present.
Unknown keys are ignored.
"""

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_MESSAGES = 100_000
MAX_CONTENT_CHARS = 4_000_000
MAX_TITLE_CHARS = 1_000
MAX_NAME_CHARS = 4_096
STOP_REASONS = ("stop", "length", "cancelled", "error")
_INT_STATS = ("prompt_tokens", "completion_tokens")
_FLOAT_STATS = ("load_time_s", "ttft_s", "decode_tps", "total_time_s")
_STATUS_MARKS = {"partial": "partial", "interrupted": "interrupted", "error": "failed"}


class InvalidConversationExport(UserFacingError):
    """A file (or data) that is not a conversation export this workbench can import."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(
            f"{source} cannot be imported: {problem}. Nothing was imported; "
            "choose a file made with File ▸ Export Conversation… (JSON).",
        )
        self.problem = problem


# ------------------------------------------------------------------ export


def export_markdown(service: ConversationService, conversation_id: int) -> str:
    """A conversation as Markdown: its title, then each message under its role.

    Content is copied verbatim (a code fence a cut-off reply left open is closed, so the
    next heading is not swallowed). Replies carry a metrics line; unfinished ones are marked.

    Raises:
        ConversationNotFound: no such conversation.
    """
    summary = service.get(conversation_id)
    lines = [f"# {summary.title}", ""]
    for view in service.messages(conversation_id):
        mark = _STATUS_MARKS.get(view.status, "")
        lines += [f"## {view.role.capitalize()}{f' ({mark})' if mark else ''}", ""]
        lines += [view.content.rstrip("\n"), *_closing_fence(view.content), ""]
        if view.role == "assistant":
            metrics = metrics_line(view)
            if metrics:
                lines += [f"*{metrics}*", ""]
            if view.error:
                lines += [f"> {view.error}", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def metrics_line(view: MessageView) -> str:
    """ "model · 55.5 tok/s · TTFT 0.08 s · 12 in / 34 out tokens" (what is known of it)."""
    parts = [view.model_name] if view.model_name else []
    if view.stats is not None:
        stats = view.stats
        parts += [
            f"{stats.decode_tps:.1f} tok/s",
            f"TTFT {stats.ttft_s:.2f} s",
            f"{stats.prompt_tokens} in / {stats.completion_tokens} out tokens",
        ]
    return " · ".join(parts)


def _closing_fence(content: str) -> list[str]:
    """The fence that closes a code block still open at the end of `content`, if any."""
    open_fence = ""
    for line in content.splitlines():
        stripped = line.strip()
        if not open_fence:
            if stripped.startswith(("```", "~~~")):
                char = stripped[0]
                open_fence = char * (len(stripped) - len(stripped.lstrip(char)))
        elif stripped.startswith(open_fence) and not stripped.lstrip(open_fence[0]):
            open_fence = ""
    return [open_fence] if open_fence else []


def export_json(service: ConversationService, conversation_id: int) -> dict[str, Any]:
    """A conversation in the versioned JSON format (see `EXPORT_VERSION`).

    Raises:
        ConversationNotFound: no such conversation.
    """
    summary = service.get(conversation_id)
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "title": summary.title,
        "created_at": summary.created_at.isoformat(),
        "model_name": summary.model_name,
        "model_path": summary.model_path,
        "runtime": summary.runtime,
        "messages": [
            {
                "role": view.role,
                "content": view.content,
                "status": view.status,
                "model_name": view.model_name,
                "runtime": view.runtime,
                "params": view.params,
                "stats": view.stats.as_dict() if view.stats is not None else None,
                "error": view.error,
                "created_at": view.created_at.isoformat(),
            }
            for view in service.messages(conversation_id)
        ],
    }


def write_export(path: Path, service: ConversationService, conversation_id: int) -> None:
    """Write a conversation to `path`: Markdown for .md, JSON for .json, atomically.

    Raises:
        UserFacingError: the suffix is neither .md nor .json.
        ConversationNotFound: no such conversation.
        ExternalFailure: the file cannot be written (folder missing, no permission, disk full).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".md", ".markdown"):
        text = export_markdown(service, conversation_id)
    elif suffix == ".json":
        text = json.dumps(export_json(service, conversation_id), ensure_ascii=False, indent=2)
        text += "\n"
    else:
        raise UserFacingError(
            f"Cannot export to {path.name}: name the file .md (Markdown) or .json (JSON)."
        )
    try:
        _write_atomically(path, text.encode("utf-8"))
    except OSError as exc:
        raise ExternalFailure(_describe_write_error(path, exc), details=str(exc)) from exc


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename it over `path`."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _describe_write_error(path: Path, exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        why = "the disk is full; free some space and export again"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "the folder is not writable; choose another folder"
    else:
        why = f"{exc.strerror or exc}; choose another folder"
    return f"Could not write the export {path}: {why}."


# ------------------------------------------------------------------ import


class _Problem(Exception):
    """A validation failure; becomes an `InvalidConversationExport` naming the source."""


def import_json(db: Database, source: Path | str | Mapping[str, Any]) -> int:
    """Import a JSON export (a file, or its parsed data) as a new conversation.

    Everything is validated before anything is written, and written in one transaction,
    so a bad file creates nothing. The title gets " (imported)" when a conversation with
    that title exists already.

    Returns:
        The new conversation's id.

    Raises:
        InvalidConversationExport: the file or data is not a valid export (says why).
        ExternalFailure: the file cannot be read.
        DatabaseUnavailable: the history database cannot be written.
    """
    name = "The data" if isinstance(source, Mapping) else str(source)
    try:
        data = source if isinstance(source, Mapping) else _read_json(Path(source))
        conversation, messages = _conversation(data)
    except _Problem as exc:
        raise InvalidConversationExport(name, str(exc)) from None
    return _store(db, conversation, messages)


def _read_json(path: Path) -> Any:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ExternalFailure(
            f"Could not read {path}: {exc.strerror or exc}. Check the file and try again.",
            details=str(exc),
        ) from exc
    if len(raw) > MAX_FILE_BYTES:
        raise _Problem(f"it is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _Problem("not a conversation export (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise _Problem(
            f"not a conversation export (not JSON: {exc.msg} at line {exc.lineno})"
        ) from None


def _conversation(data: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The conversation's and its messages' column values, validated."""
    if not isinstance(data, Mapping):
        raise _Problem(f"not a conversation export (the JSON is {_kind(data)}, not an object)")
    if data.get("format") != EXPORT_FORMAT:
        raise _Problem(f"not a conversation export (format is not '{EXPORT_FORMAT}')")
    version = data.get("version")
    if not _is_int(version):
        raise _Problem("the version is missing or not a whole number")
    if version > EXPORT_VERSION:
        raise _Problem(
            f"version {version} is newer than this app reads ({EXPORT_VERSION}); "
            "update LLM Workbench"
        )
    if version < 1:
        raise _Problem(f"version {version} is not a version this app knows")
    if "messages" not in data:
        raise _Problem("it has no 'messages'")
    messages = data["messages"]
    if not isinstance(messages, list):
        raise _Problem(f"'messages' is {_kind(messages)}, not a list")
    if len(messages) > MAX_MESSAGES:
        raise _Problem(f"it has {len(messages)} messages, more than {MAX_MESSAGES}")
    title = _text(data, "title", MAX_TITLE_CHARS, "", required=True).strip()
    conversation = {
        "title": " ".join(title.split()) or "Imported chat",
        "created_at": _time(data, ""),
        "model_name": _text(data, "model_name", MAX_NAME_CHARS, ""),
        "model_path": _text(data, "model_path", MAX_NAME_CHARS, ""),
        "runtime": _text(data, "runtime", MAX_NAME_CHARS, ""),
    }
    return conversation, [_message(item, n) for n, item in enumerate(messages, start=1)]


def _message(item: Any, number: int) -> dict[str, Any]:
    where = f"message {number}: "
    if not isinstance(item, Mapping):
        raise _Problem(f"{where}{_kind(item)}, not an object")
    role = item.get("role")
    if role not in MESSAGE_ROLES:
        raise _Problem(f"{where}role {role!r} is not user/assistant/system")
    status = item.get("status", "complete")
    if status not in MESSAGE_STATUSES:
        raise _Problem(f"{where}status {status!r} is not one of {'/'.join(MESSAGE_STATUSES)}")
    params = item.get("params", {})
    if not isinstance(params, Mapping):
        raise _Problem(f"{where}'params' is {_kind(params)}, not an object")
    try:
        params = json.loads(json.dumps(params, allow_nan=False))
    except (TypeError, ValueError):
        raise _Problem(f"{where}'params' holds values JSON cannot store") from None
    return {
        "role": role,
        "content": _text(item, "content", MAX_CONTENT_CHARS, where, required=True),
        "status": status,
        "model_name": _text(item, "model_name", MAX_NAME_CHARS, where),
        "runtime": _text(item, "runtime", MAX_NAME_CHARS, where),
        "params": params,
        "error": _text(item, "error", MAX_CONTENT_CHARS, where),
        "created_at": _time(item, where),
        **_stats(item.get("stats"), where),
    }


def _stats(value: Any, where: str) -> dict[str, Any]:
    """The stats columns (none for null stats), validated."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _Problem(f"{where}'stats' is {_kind(value)}, not an object or null")
    stats: dict[str, Any] = {}
    for key in _INT_STATS:
        number = value.get(key)
        if not _is_int(number) or number < 0:
            raise _Problem(f"{where}stats '{key}' is not a whole number ≥ 0")
        stats[key] = number
    for key in _FLOAT_STATS:
        number = value.get(key)
        if not _is_number(number) or not math.isfinite(number) or number < 0:
            raise _Problem(f"{where}stats '{key}' is not a number ≥ 0")
        stats[key] = float(number)
    if value.get("stop_reason") not in STOP_REASONS:
        raise _Problem(f"{where}stats 'stop_reason' is not one of {'/'.join(STOP_REASONS)}")
    stats["stop_reason"] = value["stop_reason"]
    return stats


def _text(data: Mapping[str, Any], key: str, limit: int, where: str, required: bool = False) -> str:
    if key not in data:
        if required:
            raise _Problem(f"{where}'{key}' is missing")
        return ""
    value = data[key]
    if not isinstance(value, str):
        raise _Problem(f"{where}'{key}' is {_kind(value)}, not text")
    if len(value) > limit:
        raise _Problem(f"{where}'{key}' is longer than {limit} characters")
    return value


def _time(data: Mapping[str, Any], where: str) -> datetime:
    value = data.get("created_at")
    if value is None:
        return utc_now()
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise _Problem(f"{where}'created_at' is not an ISO 8601 time")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    """What a JSON value is, with its article: "an object", "a list", "null"."""
    kinds = {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null"}
    return kinds.get(type(value), "a number" if _is_number(value) else type(value).__name__)


def _store(db: Database, conversation: dict[str, Any], messages: list[dict[str, Any]]) -> int:
    """Write the validated conversation and its messages in one transaction."""
    with db.session() as session:
        title = conversation["title"]
        taken = session.scalar(select(Conversation.id).where(Conversation.title == title).limit(1))
        if taken is not None:
            conversation["title"] = f"{title} (imported)"
        now = utc_now()
        # The import is the latest activity, so it lists first.
        row = Conversation(**conversation, title_is_auto=False, updated_at=now)
        session.add(row)
        session.flush()
        rows = [Message(**fields, conversation_id=row.id, updated_at=now) for fields in messages]
        session.add_all(rows)
        session.flush()  # inserted in order: ids ascend as the messages did
        for previous, message in itertools.pairwise(rows):
            message.parent_id = previous.id
        return row.id
