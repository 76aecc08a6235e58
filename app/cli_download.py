"""`llm-workbench pull REPO[:QUANT|FILE]`: download GGUF files into the Hugging Face cache."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from app.downloads import DownloadProgress, download_model
from app.errors import ExternalFailure, UserFacingError
from app.gguf_split import split_part_names
from app.hf_cache import RemoteFileNotFound, default_cache_dir, hf_endpoint, hf_token
from app.hub_search import quant_of

__all__ = ["FileChoice", "add_download_parsers", "choose_files", "main", "run_pull"]

EXIT_USER_ERROR = 2
EXIT_EXTERNAL = 3


@dataclass(frozen=True, slots=True)
class FileChoice:
    """One downloadable model in a repository: a GGUF file or a whole split set.

    Attributes:
        quant: the quantization named in the file name ("" when none is).
        files: the file names (the parts in order for a split set).
    """

    quant: str
    files: tuple[str, ...]

    def label(self) -> str:
        """ "Q8_0 (2 parts): Q8_0/m-00001-of-00002.gguf" or "Q4_K_M: m-Q4_K_M.gguf"."""
        parts = f" ({len(self.files)} parts)" if len(self.files) > 1 else ""
        return f"{self.quant or '?'}{parts}: {self.files[0]}"


class AmbiguousChoice(UserFacingError):
    """Several models match; `choices` lists them."""

    def __init__(self, repo_id: str, choices: Sequence[FileChoice]) -> None:
        lines = "\n".join(f"  {choice.label()}" for choice in choices)
        super().__init__(
            f"{repo_id} has several GGUF models; name one as {repo_id}:QUANT or "
            f"{repo_id}:FILE.gguf:\n{lines}"
        )
        self.choices = tuple(choices)


def group_choices(filenames: Sequence[str]) -> list[FileChoice]:
    """The repository's GGUF models: single files, and split sets as one entry each."""
    choices: list[FileChoice] = []
    seen: set[str] = set()
    for name in sorted(n for n in filenames if n.endswith(".gguf")):
        if name in seen:
            continue
        parts = split_part_names(name)
        files = tuple(parts) if parts is not None and set(parts) <= set(filenames) else (name,)
        seen.update(files)
        choices.append(FileChoice(quant_of(files[0]), files))
    return choices


def choose_files(repo_id: str, filenames: Sequence[str], wanted: str) -> FileChoice:
    """The model `wanted` names: a file (any part of a set), a quant, or "" (the only one).

    Raises:
        RemoteFileNotFound: nothing matches (the message lists what there is).
        AmbiguousChoice: several models match.
    """
    choices = group_choices(filenames)
    if wanted.lower().endswith(".gguf"):
        matches = [c for c in choices if any(wanted in (f, f.rsplit("/", 1)[-1]) for f in c.files)]
    elif wanted:
        matches = [c for c in choices if c.quant == wanted.upper()]
    else:
        matches = choices
    if len(matches) == 1:
        return matches[0]
    if not matches:
        listing = "\n".join(f"  {c.label()}" for c in choices) or "  (no GGUF files)"
        raise RemoteFileNotFound(
            f"{repo_id} has no GGUF model matching {wanted!r}. It has:\n{listing}"
        )
    raise AmbiguousChoice(repo_id, matches)


def add_download_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `pull`."""
    pull = sub.add_parser("pull", help="download a GGUF model from Hugging Face")
    pull.add_argument("model", help="REPO, REPO:QUANT (Q4_K_M) or REPO:FILE.gguf")
    pull.add_argument("--revision", default="main", help="branch, tag or commit (main)")


def run_pull(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Download the model `args.model` names; print its path (the first part) on `out`.

    Returns 0, 2 for a user error (ambiguous, unknown, gated: the message says what to do),
    3 for an external failure.
    """
    repo_id, _, wanted = str(args.model).partition(":")
    try:
        token, endpoint = hf_token(), hf_endpoint()
        choice = choose_files(repo_id, _repo_files(repo_id, args.revision, token, endpoint), wanted)
        results = download_model(
            repo_id,
            choice.files,
            revision=args.revision,
            cache_dir=default_cache_dir(),
            token=token,
            endpoint=endpoint,
            progress=ProgressBar(err),
        )
    except UserFacingError as exc:
        err.write(f"\nerror: {exc}\n")
        return EXIT_USER_ERROR
    except ExternalFailure as exc:
        err.write(f"\nerror: {exc}\n")
        return EXIT_EXTERNAL
    out.write(f"{results[0].path}\n")
    return 0


def _repo_files(repo_id: str, revision: str, token: str | None, endpoint: str) -> list[str]:
    try:
        info = HfApi(endpoint=endpoint).model_info(repo_id, revision=revision, token=token or False)
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        if status in (401, 404):
            raise RemoteFileNotFound(
                f"There is no repository {repo_id} on {endpoint} (or it is private). "
                "Check the name (org/name)."
            ) from exc
        raise ExternalFailure(f"{endpoint} answered {status} for {repo_id}.") from exc
    except OSError as exc:
        raise ExternalFailure(f"Cannot reach {endpoint}: {exc}.") from exc
    return [sibling.rfilename for sibling in info.siblings or []]


class ProgressBar:
    """Progress on a terminal: a redrawn bar on a TTY, else one line per 10 %."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._next_tenth = 0

    def __call__(self, progress: DownloadProgress) -> None:
        total = max(progress.total_bytes, 1)
        percent = int(progress.done_bytes * 100 / total)
        rate = f"{progress.bytes_per_second / 1e6:.1f} MB/s"
        eta = "--:--" if progress.eta_seconds is None else _clock(progress.eta_seconds)
        text = (
            f"{percent:3d}% {progress.done_bytes / 1e6:.1f}/{total / 1e6:.1f} MB "
            f"{rate} ETA {eta} {progress.state}"
        )
        if self.tty:
            filled = percent * 30 // 100
            self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {text}\x1b[K")
            if progress.state == "done":
                self.stream.write("\n")
        elif percent >= self._next_tenth or progress.state == "done":
            self.stream.write(f"{progress.filename}: {text}\n")
            self._next_tenth = (percent // 10 + 1) * 10
        self.stream.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m app.cli_download pull ...` (until `llm-workbench pull` is wired in)."""
    parser = argparse.ArgumentParser(prog="llm-workbench")
    add_download_parsers(parser.add_subparsers(dest="command", required=True))
    return run_pull(parser.parse_args(argv), sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
