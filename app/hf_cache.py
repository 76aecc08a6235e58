"""Hugging Face hub cache layout, safe names, the token, and a file's metadata from the Hub.

The layout is the one `huggingface_hub` writes and reads (its `file_download.py`), so files we
download are found by every other tool that uses the cache (llama-cpp-python's
`Llama.from_pretrained`, transformers, `hf` itself)::

    <cache>/models--{org}--{name}/
        blobs/<sha256>                  the bytes (named by the LFS sha256, the file's ETag)
        blobs/<sha256>.incomplete       our partial download, resumed across runs
        refs/<revision>                 the commit the revision resolved to
        snapshots/<commit>/<filename> -> ../../blobs/<sha256>   (relative symlink)
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import httpx2
import keyring
import keyring.errors
from huggingface_hub import constants, get_hf_file_metadata, get_token, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from app.errors import ExternalFailure, UserFacingError
from app.secrets import SERVICE

__all__ = [
    "DISK_MARGIN_BYTES",
    "HF_TOKEN_KEY",
    "DiskFull",
    "GatedRepo",
    "InvalidRepoId",
    "RemoteFile",
    "RemoteFileNotFound",
    "UnsafeFileName",
    "blob_path",
    "check_disk_space",
    "check_filename",
    "check_repo_id",
    "default_cache_dir",
    "fetch_remote_file",
    "hf_endpoint",
    "hf_token",
    "link_snapshot",
    "partial_path",
    "repo_folder",
    "snapshot_path",
    "write_ref",
]

log = logging.getLogger(__name__)

#: The keyring user name (service "llm-workbench") that holds the Hugging Face token.
HF_TOKEN_KEY = "huggingface"
PARTIAL_SUFFIX = ".incomplete"
#: Free space kept on top of the bytes still missing (file systems need some room too).
DISK_MARGIN_BYTES = 64 * 1024 * 1024

_REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")


class UnsafeFileName(UserFacingError):
    """A repository file name that would land outside the models folder."""

    def __init__(self, filename: str, reason: str) -> None:
        super().__init__(
            f"Refusing to download {filename!r}: {reason}. A model file name must be a "
            "relative path inside the repository, without '..' parts."
        )
        self.filename = filename


class InvalidRepoId(UserFacingError):
    """Text that is not a Hugging Face repository id ("org/name")."""

    def __init__(self, repo_id: str) -> None:
        super().__init__(
            f"{repo_id!r} is not a Hugging Face repository id. Use the form org/name, "
            "for example bartowski/Llama-3.2-1B-Instruct-GGUF."
        )
        self.repo_id = repo_id


class GatedRepo(UserFacingError):
    """A gated (or private) repository: a token with granted access is needed.

    Attributes:
        license_url: the model page where the user accepts the license / asks for access.
    """

    def __init__(self, repo_id: str, endpoint: str, *, has_token: bool) -> None:
        self.license_url = f"{endpoint.rstrip('/')}/{repo_id}"
        if has_token:
            what = (
                "your Hugging Face token has not been granted access to it. Open "
                f"{self.license_url}, accept the license (request access), wait for approval, "
                "and try again."
            )
        else:
            what = (
                "a Hugging Face token is needed. Open "
                f"{self.license_url}, accept the license (request access), then add your "
                "token (Settings, or the HF_TOKEN environment variable) and try again."
            )
        super().__init__(f"{repo_id} is a gated repository: {what}")
        self.repo_id = repo_id


class DiskFull(ExternalFailure):
    """Not enough free disk for a download (checked before, or ENOSPC while writing)."""


class RemoteFileNotFound(UserFacingError):
    """The repository, revision or file does not exist on the Hub."""


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """What the Hub says about one file, before downloading it.

    Attributes:
        repo_id: "org/name".
        filename: path inside the repository.
        revision: the branch, tag or commit asked for.
        commit: the commit the revision resolved to (40 hex).
        sha256: the ETag: the sha256 for LFS files (a git blob sha1 for small files).
        size: bytes.
        url: where the bytes are (after the Hub's own redirects; may be a CDN).
        endpoint: the Hub's base URL (a token is only sent to it).
    """

    repo_id: str
    filename: str
    revision: str
    commit: str
    sha256: str
    size: int
    url: str
    endpoint: str


def hf_endpoint(endpoint: str | None = None) -> str:
    """The Hub's base URL: `endpoint`, else `$HF_ENDPOINT` (read now), else huggingface.co."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def fetch_remote_file(
    repo_id: str,
    filename: str,
    *,
    revision: str = "main",
    token: str | None,
    endpoint: str | None = None,
    retry: bool = True,
) -> RemoteFile:
    """Ask the Hub (HEAD on the resolve URL) for a file's commit, sha256 and size.

    Args:
        token: sent as `Authorization: Bearer`; None for anonymous (no stored token is used).
        retry: let `huggingface_hub` retry 429/5xx/timeouts with its backoff.

    Raises:
        UnsafeFileName, InvalidRepoId: before any request.
        GatedRepo: 401/403 (gated, private, or a token without access).
        RemoteFileNotFound: unknown repository, revision or file.
        ExternalFailure: the Hub cannot be reached or answered something unusable.
    """
    check_repo_id(repo_id)
    check_filename(filename)
    base = hf_endpoint(endpoint)
    url = hf_hub_url(repo_id, filename, revision=revision, endpoint=base)
    try:
        meta = get_hf_file_metadata(url, token=token or False, endpoint=base, retry_on_errors=retry)
    except HfHubHTTPError as exc:
        raise _hub_error(exc, repo_id, filename, revision, base, token) from exc
    except (httpx2.HTTPError, OSError) as exc:
        raise ExternalFailure(
            f"Cannot reach {base} ({type(exc).__name__}). Check the network and try again.",
            details=str(exc),
        ) from exc
    etag, commit, size = meta.etag or "", meta.commit_hash or "", meta.size
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", etag) or not commit or size is None:
        raise ExternalFailure(
            f"{base} gave no usable checksum, commit or size for {filename}; "
            "it may not be a Hugging Face endpoint.",
            details=f"etag={meta.etag!r} commit={meta.commit_hash!r} size={meta.size!r}",
        )
    return RemoteFile(repo_id, filename, revision, commit, etag, size, meta.location, base)


def _hub_error(
    exc: HfHubHTTPError, repo_id: str, filename: str, revision: str, base: str, token: str | None
) -> UserFacingError | ExternalFailure:
    status = exc.response.status_code if exc.response is not None else 0
    if isinstance(exc, GatedRepoError) or status in (401, 403):
        return GatedRepo(repo_id, base, has_token=bool(token))
    if isinstance(exc, RevisionNotFoundError):
        return RemoteFileNotFound(
            f"{repo_id} has no revision {revision!r}. Use a branch, tag or commit it has "
            "(usually main)."
        )
    if isinstance(exc, EntryNotFoundError):
        return RemoteFileNotFound(
            f"{repo_id} has no file {filename!r} at {revision}. Check the name against the "
            "repository's file list."
        )
    if isinstance(exc, RepositoryNotFoundError):
        return RemoteFileNotFound(
            f"There is no repository {repo_id} on {base}. Check the name (org/name)."
        )
    return ExternalFailure(
        f"{base} answered {status or 'an error'} for {repo_id}/{filename}; try again later.",
        details=str(exc),
    )


def check_filename(filename: str) -> PurePosixPath:
    """The file name as a safe relative POSIX path.

    Raises:
        UnsafeFileName: empty, absolute (also `C:` or a backslash), or with `..`, `.` or
            empty segments.
    """
    if not filename:
        raise UnsafeFileName(filename, "the name is empty")
    if filename.startswith("/") or "\\" in filename or re.match(r"^[A-Za-z]:", filename):
        raise UnsafeFileName(filename, "the name is an absolute path")
    parts = filename.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafeFileName(filename, "the name has '..', '.' or empty parts")
    return PurePosixPath(filename)


def check_repo_id(repo_id: str) -> str:
    """The repository id, checked.

    Raises:
        InvalidRepoId: not `name` or `org/name` of letters, digits, `-`, `_`, `.`, or
            with `..` or `--` (which the cache folder name could not tell apart).
    """
    if not _REPO_ID.match(repo_id) or ".." in repo_id or "--" in repo_id:
        raise InvalidRepoId(repo_id)
    return repo_id


def default_cache_dir() -> Path:
    """The hub cache other tools use: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else ~/.cache/..."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


def repo_folder(cache_dir: Path, repo_id: str) -> Path:
    """`<cache>/models--org--name`."""
    return cache_dir / ("models--" + check_repo_id(repo_id).replace("/", "--"))


def blob_path(folder: Path, etag: str) -> Path:
    """Where a finished file's bytes live."""
    return folder / "blobs" / etag


def partial_path(folder: Path, etag: str) -> Path:
    """Where a download in progress grows (kept on pause and failure, resumed later)."""
    return folder / "blobs" / (etag + PARTIAL_SUFFIX)


def snapshot_path(folder: Path, commit: str, filename: str) -> Path:
    """The path a file has in a commit's snapshot (what callers open)."""
    return folder / "snapshots" / commit / check_filename(filename)


def link_snapshot(folder: Path, commit: str, filename: str, etag: str) -> Path:
    """Point `snapshots/<commit>/<filename>` at the blob with a relative symlink.

    Where symlinks are not allowed (Windows without Developer Mode) the blob is moved
    there instead, as `huggingface_hub` does.

    Returns:
        The snapshot path.
    """
    link = snapshot_path(folder, commit, filename)
    link.parent.mkdir(parents=True, exist_ok=True)
    blob = blob_path(folder, etag)
    target = os.path.relpath(blob, link.parent)
    if link.is_symlink() or link.exists():
        link.unlink()
    try:
        os.symlink(target, link)
    except OSError:  # no symlinks here: keep a real file, like huggingface_hub's fallback
        os.replace(blob, link)
    return link


def write_ref(folder: Path, revision: str, commit: str) -> None:
    """Record which commit a branch or tag resolved to (`refs/<revision>`)."""
    if revision == commit:
        return
    ref = folder / "refs" / check_filename(revision)
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(commit)


def hf_token() -> str | None:
    """The Hugging Face token to use, None when the user has none.

    Looked up in order: `HF_TOKEN` (or `HUGGING_FACE_HUB_TOKEN`), the keyring entry
    "huggingface" of the workbench's keyring service, then the token `hf auth login` saved
    (`$HF_HOME/token`). An unusable keyring counts as "no token there".
    """
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        if os.environ.get(name):
            return os.environ[name]
    try:
        stored = keyring.get_password(SERVICE, HF_TOKEN_KEY)
    except keyring.errors.KeyringError as exc:
        log.warning("keyring unavailable, looking elsewhere for a Hugging Face token: %s", exc)
        stored = None
    return stored or get_token() or None


def missing_bytes(folder: Path, remote: RemoteFile) -> int:
    """Bytes of a file not yet on disk (0 when its blob exists; less a partial file's size)."""
    if blob_path(folder, remote.sha256).exists():
        return 0
    partial = partial_path(folder, remote.sha256)
    have = partial.stat().st_size if partial.exists() else 0
    return remote.size - have if have <= remote.size else remote.size


def check_disk_space(folder: Path, remotes: Sequence[RemoteFile]) -> None:
    """Refuse to start when the bytes still missing plus a margin do not fit.

    Raises:
        DiskFull: naming the folder, what is needed and what is free.
    """
    needed = sum(missing_bytes(folder, remote) for remote in remotes)
    if needed == 0:
        return
    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed + DISK_MARGIN_BYTES:
        raise DiskFull(
            f"Not enough free disk for this download: it needs {_gb(needed)} plus "
            f"{_gb(DISK_MARGIN_BYTES)} of room, and {probe} has {_gb(free)} free. "
            "Free some space (or set HF_HUB_CACHE to a bigger disk) and try again."
        )


def _gb(size: int) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 1e8 else f"{size / 1e6:.1f} MB"
