"""The download queue: what the user asked to download, kept in a JSON file across restarts.

The bytes themselves resume from the `.incomplete` files in the hub cache (`app.downloads`);
this only remembers what was asked for and how it stands.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from app.errors import ExternalFailure
from app.hf_cache import check_filename, check_repo_id

QueueState = Literal["queued", "paused", "done", "failed"]


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One queued download (a file, or a split set downloaded together).

    Attributes:
        repo_id: the repository.
        files: the file names, downloaded in this order.
        revision: branch, tag or commit.
        state: "queued", "paused", "done" or "failed".
        error: the failure's message when failed, else "".
    """

    repo_id: str
    files: tuple[str, ...]
    revision: str = "main"
    state: QueueState = "queued"
    error: str = ""

    @property
    def key(self) -> tuple[str, tuple[str, ...], str]:
        """What identifies an entry: repository, files, revision."""
        return self.repo_id, self.files, self.revision


@dataclass
class DownloadQueue:
    """Downloads to do, kept in a JSON file so an app restart picks them up again.

    The bytes themselves resume from the `.incomplete` files; this only remembers what was
    asked for. Every change is written at once (atomically).
    """

    path: Path
    entries: list[QueueEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.path.exists():
            self.entries = _read_queue(self.path)

    def add(self, repo_id: str, files: Sequence[str], revision: str = "main") -> QueueEntry:
        """Queue a download (names checked now); an existing same entry is queued again."""
        check_repo_id(repo_id)
        for name in files:
            check_filename(name)
        entry = QueueEntry(repo_id, tuple(files), revision)
        self.entries = [e for e in self.entries if e.key != entry.key] + [entry]
        self._save()
        return entry

    def set_state(self, entry: QueueEntry, state: QueueState, error: str = "") -> QueueEntry:
        """Record a new state for an entry (matched by repository, files and revision)."""
        updated = QueueEntry(entry.repo_id, entry.files, entry.revision, state, error)
        self.entries = [updated if e.key == entry.key else e for e in self.entries]
        self._save()
        return updated

    def remove(self, entry: QueueEntry) -> None:
        """Forget an entry (its partial files stay in the cache)."""
        self.entries = [e for e in self.entries if e.key != entry.key]
        self._save()

    def pending(self) -> list[QueueEntry]:
        """Entries still to download (queued or paused), oldest first."""
        return [e for e in self.entries if e.state in ("queued", "paused")]

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        document = {"version": 1, "downloads": [asdict(e) for e in self.entries]}
        temporary.write_text(json.dumps(document, indent=2))
        os.replace(temporary, self.path)


def _read_queue(path: Path) -> list[QueueEntry]:
    """The entries of a queue file; a damaged file is a clear error, never an empty queue."""
    try:
        document = json.loads(path.read_text())
        return [
            QueueEntry(
                str(item["repo_id"]),
                tuple(str(name) for name in item["files"]),
                str(item["revision"]),
                item["state"] if item["state"] in _QUEUE_STATES else "queued",
                str(item.get("error", "")),
            )
            for item in document["downloads"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExternalFailure(
            f"The download queue {path} cannot be read ({exc}). Delete it to start with an "
            "empty queue; partially downloaded files are kept in the model cache.",
            details=str(exc),
        ) from exc


_QUEUE_STATES = ("queued", "paused", "done", "failed")
