"""Discover GGUF models on Hugging Face: search, a repository's files grouped by quantization.

Talks to the Hub through `huggingface_hub.HfApi` (reference/fit.md §7.1): search with
`filter=gguf`, repository listings with file sizes and LFS sha256 (`files_metadata=True`).
Split sets (`name-00001-of-00003.gguf`) are one entry with the total size; projector files
(`mmproj-*`) are not models. A fit verdict per quantization comes from the real header of one
file (fetched with HTTP Range, `app.gguf_remote`), scaled to each file's size. Every failure is
a `UserFacingError` (gated, missing) or `ExternalFailure` (network) with one clear sentence.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from app.errors import ExternalFailure, UserFacingError
from app.fit_types import FitRequest, FitVerdict
from app.hardware import HardwareProfile
from app.model_shape import ModelShape

if TYPE_CHECKING:
    from huggingface_hub import HfApi

SORTS = ("downloads", "likes", "last_modified", "trending_score")
_QUANT = re.compile(
    r"(?:^|[._-])((?:UD-)?(?:I?Q\d(?:_[A-Z0-9]+)*|TQ\d_\d|MXFP4(?:_MOE)?|BF16|F16|FP16|F32))"
    r"(?=[._-]|$)",
    re.IGNORECASE,
)
_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class HubModel:
    """One search hit.

    Attributes:
        repo_id: "org/name".
        downloads: downloads in the last month (as the Hub reports).
        likes: likes.
        last_modified: ISO date ("" when not given).
        gated: "auto"/"manual" when the repository needs access approval, else "".
        tags: the repository's tags.
    """

    repo_id: str
    downloads: int
    likes: int
    last_modified: str
    gated: str
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HubQuantFile:
    """One model file of a repository (a split set counts once).

    Attributes:
        quant: "Q4_K_M", "F16", ...; "" when the name does not say.
        files: the file(s), first part first.
        size_bytes: all parts together.
        sha256: the LFS sha256 of each part (None where the Hub did not give one).
    """

    quant: str
    files: tuple[str, ...]
    size_bytes: int
    sha256: tuple[str | None, ...]


@dataclass(frozen=True, slots=True)
class HubRepoInfo:
    """A repository's GGUF files and what the Hub says about the model.

    Attributes:
        repo_id: "org/name".
        revision: the commit sha listed.
        gated: "auto"/"manual" or "".
        license: from the model card ("" when none).
        quants: the GGUF model files, smallest first.
        architecture: from the Hub's GGUF summary (`expand=gguf`), "" when not given.
        parameters: total parameters from that summary (None when not given).
        context_length: trained context from that summary (None when not given).
    """

    repo_id: str
    revision: str
    gated: str
    license: str
    quants: tuple[HubQuantFile, ...]
    architecture: str = ""
    parameters: int | None = None
    context_length: int | None = None

    @property
    def summary(self) -> str:
        """One line for the model card: architecture, parameters, context, license."""
        parts = [self.architecture] if self.architecture else []
        if self.parameters:
            parts.append(f"{self.parameters / 1e9:.1f}B parameters" if self.parameters >= 1e9
                         else f"{self.parameters / 1e6:.0f}M parameters")  # fmt: skip
        if self.context_length:
            parts.append(f"{self.context_length:,} context")
        parts.append(self.license or "no license given")
        if self.gated:
            parts.append(f"gated ({self.gated})")
        return " · ".join(parts)


def quant_of(filename: str) -> str:
    """The quantization a file name states ("Qwen2.5-7B-Instruct-Q4_K_M.gguf" → "Q4_K_M")."""
    stem = filename.rsplit("/", 1)[-1]
    stem = _SPLIT.sub(lambda m: m.group("stem") + ".gguf", stem)
    stem = re.sub(r"\.gguf$", "", stem, flags=re.IGNORECASE)
    found = _QUANT.findall(stem)
    return found[-1].upper().replace("FP16", "F16") if found else ""


def group_gguf_files(
    entries: Iterable[tuple[str, int, str | None]],
) -> tuple[HubQuantFile, ...]:
    """Group (path, size, sha256) listings into model files: split sets become one entry,
    projector (`mmproj`) and non-GGUF files are left out; sorted by size."""
    singles: list[HubQuantFile] = []
    sets: dict[str, list[tuple[int, str, int, str | None]]] = {}
    for path, size, sha in entries:
        name = path.rsplit("/", 1)[-1]
        if not name.lower().endswith(".gguf") or name.lower().startswith("mmproj"):
            continue
        match = _SPLIT.match(path)
        if match:
            sets.setdefault(match.group("stem"), []).append(
                (int(match.group("no")), path, size, sha)
            )
        else:
            singles.append(HubQuantFile(quant_of(path), (path,), size, (sha,)))
    for parts in sets.values():
        parts.sort()
        first = parts[0][1]
        singles.append(
            HubQuantFile(
                quant_of(first),
                tuple(p[1] for p in parts),
                sum(p[2] for p in parts),
                tuple(p[3] for p in parts),
            )
        )
    return tuple(sorted(singles, key=lambda q: (q.size_bytes, q.files)))


def search_hub(
    query: str,
    *,
    sort: str = "downloads",
    limit: int = 30,
    token: str | None = None,
    endpoint: str | None = None,
) -> list[HubModel]:
    """GGUF repositories matching `query`, most downloaded first (or by `sort`).

    Raises:
        UserFacingError: an unknown sort key.
        ExternalFailure: the Hub cannot be reached or answered with an error.
    """
    if sort not in SORTS:
        raise UserFacingError(f"Sort by one of {', '.join(SORTS)}, not {sort!r}.")
    api = _api(endpoint, token)
    try:
        hits = api.list_models(search=query or None, filter="gguf", sort=sort, limit=limit)  # type: ignore[arg-type]
        return [_hub_model(hit) for hit in hits]
    except _hub_errors() as exc:
        raise _hub_error(exc, query or "the Hub") from exc


def repo_files(
    repo_id: str,
    *,
    revision: str = "main",
    token: str | None = None,
    endpoint: str | None = None,
) -> HubRepoInfo:
    """A repository's GGUF files grouped by quantization, with sizes and sha256.

    Raises:
        UserFacingError: the repository does not exist, or is gated (what to do is said).
        ExternalFailure: the Hub cannot be reached.
    """
    api = _api(endpoint, token)
    try:
        info = api.model_info(repo_id, revision=revision, files_metadata=True)
    except _hub_errors() as exc:
        raise _hub_error(exc, repo_id) from exc
    entries = [
        (s.rfilename, int(s.size or 0), (s.lfs.sha256 if s.lfs is not None else None))
        for s in info.siblings or ()
    ]
    card = info.card_data
    license_name = str(getattr(card, "license", "") or "") if card is not None else ""
    gguf = _gguf_summary(api, repo_id, revision)
    return HubRepoInfo(
        repo_id=info.id or repo_id,
        revision=info.sha or revision,
        gated=_gated(info.gated),
        license=license_name,
        quants=group_gguf_files(entries),
        architecture=str(gguf.get("architecture") or ""),
        parameters=_int(gguf.get("total")),
        context_length=_int(gguf.get("context_length")),
    )


def _gguf_summary(api: HfApi, repo_id: str, revision: str) -> dict[str, object]:
    """The Hub's GGUF summary of a repository (`expand=gguf`; it cannot be asked together
    with file sizes); {} when the Hub has none or the request fails (it is decoration)."""
    try:
        info = api.model_info(repo_id, revision=revision, expand=["gguf"])
    except _hub_errors():
        return {}
    summary = getattr(info, "gguf", None)
    return dict(summary) if isinstance(summary, dict) else {}


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def with_quant(info: HubRepoInfo, quant: str) -> HubQuantFile:
    """The file of `quant` in a listing (case-insensitive).

    Raises:
        UserFacingError: the repository has no such quantization (the ones it has are named).
    """
    for entry in info.quants:
        if entry.quant.upper() == quant.upper():
            return entry
    have = ", ".join(q.quant or q.files[0] for q in info.quants) or "no GGUF files"
    raise UserFacingError(f"{info.repo_id} has no {quant} file; it has {have}.")


def _api(endpoint: str | None, token: str | None) -> HfApi:
    """The client, after a quick check that the Hub's host answers at all: huggingface_hub
    retries a refused connection for about 25 s before giving up."""
    from huggingface_hub import HfApi, constants

    _check_reachable(endpoint or constants.ENDPOINT)
    return HfApi(endpoint=endpoint, token=token)


def _check_reachable(endpoint: str, timeout: float = 5.0) -> None:
    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "", port), timeout=timeout).close()
    except OSError as exc:
        raise ExternalFailure(
            f"Could not reach Hugging Face at {endpoint}: {exc.strerror or exc}. Check the "
            "network connection (or HF_ENDPOINT)."
        ) from exc


def _hub_model(hit: object) -> HubModel:
    modified = getattr(hit, "last_modified", None)
    return HubModel(
        repo_id=str(getattr(hit, "id", "")),
        downloads=int(getattr(hit, "downloads", 0) or 0),
        likes=int(getattr(hit, "likes", 0) or 0),
        last_modified=modified.isoformat() if modified is not None else "",
        gated=_gated(getattr(hit, "gated", None)),
        tags=tuple(getattr(hit, "tags", None) or ()),
    )


def _hub_errors() -> tuple[type[Exception], ...]:
    """What huggingface_hub raises for Hub answers and network trouble."""
    import httpx
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    errors: list[type[Exception]] = [HfHubHTTPError, OfflineModeIsEnabled, httpx.HTTPError]
    try:  # huggingface_hub 2.x talks through httpx2, whose errors are its own classes
        import httpx2

        errors.append(httpx2.HTTPError)
    except ImportError:
        pass
    return (*errors, OSError, ValueError)


def _gated(value: object) -> str:
    return str(value) if value not in (None, False, "false", "False") else ""


def _hub_error(exc: Exception, what: str) -> Exception:
    """Our error for a huggingface_hub / network exception."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, GatedRepoError):
        return UserFacingError(
            f"{what} is gated: accept its license on the model page and add a Hugging Face "
            "token (Settings), then try again."
        )
    if isinstance(exc, RepositoryNotFoundError):
        return UserFacingError(
            f"There is no repository {what} on Hugging Face (or it is private: add a token)."
        )
    if isinstance(exc, RevisionNotFoundError | EntryNotFoundError):
        return UserFacingError(f"{what}: that revision or file does not exist.")
    return ExternalFailure(
        f"Could not reach Hugging Face for {what}: {exc.__class__.__name__}: "
        f"{str(exc).splitlines()[0] if str(exc) else 'no answer'}",
    )


def scale_shape_to(shape: ModelShape, size_bytes: int) -> ModelShape:
    """A model shape with its weights scaled to another quantization's file size (same
    architecture; every tensor assumed to shrink alike — an estimate until that file's own
    header is read)."""
    if shape.file_size <= 0:
        return shape
    ratio = size_bytes / shape.file_size
    return replace(
        shape,
        layer_bytes=tuple(int(b * ratio) for b in shape.layer_bytes),
        layer_expert_bytes=tuple(int(b * ratio) for b in shape.layer_expert_bytes),
        layer_repack_bytes=tuple(int(b * ratio) for b in shape.layer_repack_bytes),
        input_bytes=int(shape.input_bytes * ratio),
        output_bytes=int(shape.output_bytes * ratio),
        weights_bytes=int(shape.weights_bytes * ratio),
        file_size=size_bytes,
    )


def fit_quants(
    info: HubRepoInfo,
    profile: HardwareProfile | None,
    request: FitRequest,
    *,
    token: str | None = None,
    endpoint: str | None = None,
    revision: str = "main",
) -> dict[str, FitVerdict]:
    """A fit verdict per file of a repository, from the header of its smallest file.

    The smallest file's header is read with HTTP Range (a few MB); the other quantizations
    share its architecture, so their shapes are scaled to their sizes. A header that cannot
    be read gives every file an "unknown" verdict with the reason.
    """
    from app.fit import fit_shape, machine_budget
    from app.fit_service import installed_backend
    from app.fit_types import unknown_verdict
    from app.gguf_remote import fetch_remote_model, hf_resolve_url
    from runtimes.errors import WorkbenchError

    if not info.quants:
        return {}
    smallest = info.quants[0]
    url = hf_resolve_url(info.repo_id, smallest.files[0], revision, endpoint)
    try:
        header = fetch_remote_model(url, token=token).header
        base = ModelShape.from_header(header)
    except (WorkbenchError, ValueError, OSError) as exc:
        reason = getattr(exc, "message", "") or str(exc)
        return {q.files[0]: unknown_verdict(reason, request) for q in info.quants}
    budget = machine_budget(profile, installed_backend())
    out: dict[str, FitVerdict] = {}
    for entry in info.quants:
        shape = scale_shape_to(base, entry.size_bytes)
        out[entry.files[0]] = fit_shape(shape, budget, request, profile=profile)
    return out


def describe(quants: Sequence[HubQuantFile]) -> list[str]:
    """One line per file for the CLI: quant, size, name (and parts)."""
    lines = []
    for q in quants:
        parts = f" ({len(q.files)} parts)" if len(q.files) > 1 else ""
        lines.append(f"{q.quant or '?':<10} {q.size_bytes / 1e9:7.2f} GB  {q.files[0]}{parts}")
    return lines
