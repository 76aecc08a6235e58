"""The curated model catalog (resources/catalog.json): models, GGUF files and architectures."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from app.errors import UserFacingError

CATALOG_ENV = "LLM_WORKBENCH_CATALOG"
CATALOG_VERSION = 1

SIZE_CLASSES = ("tiny", "small", "medium", "large", "huge")
SIZE_SOURCES = ("published", "computed")

# `llama_ftype` names as llama-quantize and file names spell them (fit.md §1.3).
LLAMA_FILE_TYPES = frozenset(
    {
        "F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
        "Q2_K", "Q2_K_S", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M",
        "Q5_K_S", "Q5_K_M", "Q6_K", "IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS",
        "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS", "IQ3_S", "IQ3_M", "IQ4_NL",
        "IQ4_XS", "TQ1_0", "TQ2_0", "MXFP4_MOE",
    }
)  # fmt: skip

# The architecture keys, in the order `ArchConfig.from_dict` (app/synth_gguf.py) takes them.
ARCH_STR_KEYS = ("architecture",)
ARCH_BOOL_KEYS = ("tied_embeddings", "attention_bias")
ARCH_FLOAT_KEYS = ("rope_freq_base", "rms_norm_eps")
ARCH_INT_KEYS = (
    "block_count",
    "embedding_length",
    "feed_forward_length",
    "head_count",
    "head_count_kv",
    "key_length",
    "value_length",
    "vocab_size",
    "context_length",
    "sliding_window",
    "sliding_window_pattern",
    "expert_count",
    "expert_used_count",
    "expert_feed_forward_length",
    "expert_shared_count",
    "leading_dense_block_count",
    "kv_lora_rank",
    "q_lora_rank",
    "qk_rope_head_dim",
    "qk_nope_head_dim",
    "v_head_dim",
)
ARCH_KEYS = frozenset(ARCH_STR_KEYS + ARCH_BOOL_KEYS + ARCH_FLOAT_KEYS + ARCH_INT_KEYS)

_MODEL_KEYS = (
    "id",
    "name",
    "family",
    "parameters",
    "active_parameters",
    "license",
    "context_length",
    "size_class",
    "tags",
    "summary",
    "repo",
    "arch",
    "arch_source",
    "quants",
)
_QUANT_KEYS = ("quant", "files", "size_bytes", "size_source", "quality")


class CatalogError(UserFacingError):
    """The catalog file is missing, not JSON, or does not have the expected shape."""


class UnknownCatalogModel(UserFacingError):
    """A model name that matches nothing in the catalog."""


@dataclass(frozen=True, slots=True)
class CatalogQuant:
    """One quantization of a catalog model: its file(s), size and a quality note.

    Attributes:
        quant: llama.cpp file type name, e.g. "Q4_K_M".
        files: paths inside the repository; every part of a split set, in order.
        size_bytes: total bytes of all parts as published, or None when not known.
        size_source: "published" when size_bytes comes from the repository listing, else None.
        quality: one line on the quality loss against the unquantized model.
    """

    quant: str
    files: tuple[str, ...]
    size_bytes: int | None
    size_source: str | None
    quality: str

    @property
    def is_split(self) -> bool:
        """Whether the weights come as several `-0000N-of-0000M` parts."""
        return len(self.files) > 1


@dataclass(frozen=True, slots=True)
class CatalogModel:
    """A curated model: what it is, where its GGUF files live, and its architecture numbers.

    `arch` is the raw mapping from the catalog (the keys of `ARCH_KEYS`); `app.synth_gguf`
    turns it into an `ArchConfig`.
    """

    id: str
    name: str
    family: str
    parameters: int
    active_parameters: int
    license: str
    context_length: int
    size_class: str
    tags: tuple[str, ...]
    summary: str
    repo: str
    arch: dict[str, object]
    arch_source: str
    quants: tuple[CatalogQuant, ...]

    @property
    def is_moe(self) -> bool:
        """Whether only part of the parameters is active per token."""
        return self.active_parameters < self.parameters

    @property
    def parameters_label(self) -> str:
        """Parameter count for people: "7.6B", "135M", "671B (37.6B active)"."""
        label = format_parameter_count(self.parameters)
        if self.is_moe:
            label += f" ({format_parameter_count(self.active_parameters)} active)"
        return label

    def quant(self, name: str) -> CatalogQuant | None:
        """The quantization called `name` (case-insensitive), or None if not offered."""
        wanted = name.strip().upper()
        return next((q for q in self.quants if q.quant == wanted), None)


def format_parameter_count(count: int) -> str:
    """A parameter count as "135M", "7.6B", "70.6B" or "671B"."""
    if count < 1_000_000_000:
        return f"{round(count / 1_000_000)}M"
    billions = count / 1_000_000_000
    if billions >= 100:
        return f"{round(billions)}B"
    text = f"{billions:.1f}".removesuffix(".0")
    return f"{text}B"


def default_catalog_path() -> Path:
    """Where the shipped catalog lives: `$LLM_WORKBENCH_CATALOG`, the frozen bundle, or the repo."""
    override = os.environ.get(CATALOG_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    bundle = getattr(sys, "_MEIPASS", None)  # PyInstaller unpacks data files here
    root = Path(bundle) if bundle else Path(__file__).resolve().parents[1]
    return root / "resources" / "catalog.json"


def load_catalog(path: Path | str | None = None) -> tuple[CatalogModel, ...]:
    """Read and validate the catalog.

    Args:
        path: a catalog file; default `default_catalog_path()`.

    Returns:
        The models in file order.

    Raises:
        CatalogError: the file is missing, unreadable, not JSON, or malformed (the message
            names the model and key at fault).
    """
    file = Path(path) if path is not None else default_catalog_path()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(
            f"The model catalog {file} does not exist. Reinstall the workbench "
            f"or point {CATALOG_ENV} at a catalog file."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"The model catalog {file} cannot be read: {exc}.") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(
            f"The model catalog {file} is not valid JSON (line {exc.lineno}, "
            f"column {exc.colno}: {exc.msg}). Fix or replace the file."
        ) from exc
    return parse_catalog(document, source=str(file))


def parse_catalog(document: object, source: str = "catalog") -> tuple[CatalogModel, ...]:
    """Validate a decoded catalog document and build its models.

    Raises:
        CatalogError: anything missing, mistyped, unknown or duplicated.
    """
    if not isinstance(document, dict):
        raise CatalogError(f"{source}: the catalog must be a JSON object with 'models'.")
    if document.get("version") != CATALOG_VERSION:
        raise CatalogError(
            f"{source}: unsupported catalog version {document.get('version')!r} "
            f"(this workbench reads version {CATALOG_VERSION})."
        )
    entries = document.get("models")
    if not isinstance(entries, list) or not entries:
        raise CatalogError(f"{source}: 'models' must be a non-empty list.")
    models: list[CatalogModel] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        model = _parse_model(entry, f"{source}: model #{index + 1}")
        if model.id in seen:
            raise CatalogError(f"{source}: duplicate model id '{model.id}'.")
        seen.add(model.id)
        models.append(model)
    return tuple(models)


def find_model(catalog: Iterable[CatalogModel], text: str) -> CatalogModel | None:
    """The model whose id, name or repository matches `text` (case-insensitive), else None.

    The id is tried first, then the display name, then the repository (a
    "https://huggingface.co/owner/name" URL counts as the repository).
    """
    wanted = text.strip().lower().removeprefix("https://huggingface.co/").strip("/")
    if not wanted:
        return None
    models = tuple(catalog)
    for field in ("id", "name", "repo"):
        for model in models:
            if str(getattr(model, field)).lower() == wanted:
                return model
    return None


def require_model(catalog: Iterable[CatalogModel], text: str) -> CatalogModel:
    """Like `find_model`, but an unknown name is an error that lists the ids.

    Raises:
        UnknownCatalogModel: nothing matches.
    """
    models = tuple(catalog)
    model = find_model(models, text)
    if model is None:
        ids = ", ".join(m.id for m in models)
        raise UnknownCatalogModel(
            f"No catalog model is called '{text}'. Use one of: {ids}; or give a GGUF file or URL."
        )
    return model


def _parse_model(entry: object, where: str) -> CatalogModel:
    if isinstance(entry, dict) and isinstance(entry.get("id"), str):
        where = f"{where} ('{entry['id']}')"
    data = _require_mapping(entry, where, _MODEL_KEYS)
    size_class = _str(data, "size_class", where)
    if size_class not in SIZE_CLASSES:
        raise CatalogError(
            f"{where}: unknown size_class '{size_class}' (use one of {', '.join(SIZE_CLASSES)})."
        )
    quants_raw = data["quants"]
    if not isinstance(quants_raw, list) or not quants_raw:
        raise CatalogError(f"{where}: 'quants' must be a non-empty list.")
    quants = tuple(_parse_quant(q, f"{where} quant #{i + 1}") for i, q in enumerate(quants_raw))
    names = [q.quant for q in quants]
    if len(set(names)) != len(names):
        raise CatalogError(f"{where}: a quant is listed twice in {names}.")
    parameters = _int(data, "parameters", where)
    active = _int(data, "active_parameters", where)
    if active > parameters:
        raise CatalogError(f"{where}: active_parameters exceeds parameters.")
    return CatalogModel(
        id=_str(data, "id", where),
        name=_str(data, "name", where),
        family=_str(data, "family", where),
        parameters=parameters,
        active_parameters=active,
        license=_str(data, "license", where),
        context_length=_int(data, "context_length", where),
        size_class=size_class,
        tags=_str_tuple(data, "tags", where),
        summary=_str(data, "summary", where),
        repo=_str(data, "repo", where),
        arch=_parse_arch(data["arch"], f"{where} arch"),
        arch_source=_str(data, "arch_source", where),
        quants=quants,
    )


def _parse_quant(entry: object, where: str) -> CatalogQuant:
    data = _require_mapping(entry, where, _QUANT_KEYS)
    quant = _str(data, "quant", where)
    if quant not in LLAMA_FILE_TYPES:
        raise CatalogError(f"{where}: '{quant}' is not a llama.cpp file type.")
    size = data["size_bytes"]
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        raise CatalogError(f"{where} ({quant}): size_bytes must be a positive integer or null.")
    source = data["size_source"]
    if source is not None and source not in SIZE_SOURCES:
        raise CatalogError(
            f"{where} ({quant}): size_source must be 'published', 'computed' or null."
        )
    if (size is None) != (source is None):
        raise CatalogError(f"{where} ({quant}): size_bytes and size_source go together.")
    files = _str_tuple(data, "files", where)
    if not files:
        raise CatalogError(f"{where} ({quant}): 'files' is empty.")
    return CatalogQuant(
        quant=quant,
        files=files,
        size_bytes=size,
        size_source=source,
        quality=_str(data, "quality", where),
    )


def _parse_arch(entry: object, where: str) -> dict[str, object]:
    data = _require_mapping(entry, where, tuple(sorted(ARCH_KEYS)))
    extra = sorted(set(data) - ARCH_KEYS)
    if extra:
        raise CatalogError(f"{where}: unknown key(s) {', '.join(extra)}.")
    arch: dict[str, object] = {"architecture": _str(data, "architecture", where)}
    for key in ARCH_INT_KEYS:
        value = _int(data, key, where)
        if value < 0:
            raise CatalogError(f"{where}: '{key}' must not be negative.")
        arch[key] = value
    for key in ARCH_BOOL_KEYS:
        if not isinstance(data[key], bool):
            raise CatalogError(f"{where}: '{key}' must be true or false.")
        arch[key] = data[key]
    for key in ARCH_FLOAT_KEYS:
        number = data[key]
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise CatalogError(f"{where}: '{key}' must be a number.")
        if not math.isfinite(number) or number <= 0:
            raise CatalogError(f"{where}: '{key}' must be a positive finite number.")
        arch[key] = float(number)
    for key in ("block_count", "embedding_length", "head_count", "head_count_kv", "vocab_size"):
        if arch[key] == 0:
            raise CatalogError(f"{where}: '{key}' must be positive.")
    return arch


def _require_mapping(entry: object, where: str, keys: tuple[str, ...]) -> Mapping[str, object]:
    if not isinstance(entry, dict):
        raise CatalogError(f"{where}: expected a JSON object.")
    missing = [key for key in keys if key not in entry]
    if missing:
        raise CatalogError(f"{where}: missing key(s) {', '.join(missing)}.")
    return entry


def _str(data: Mapping[str, object], key: str, where: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(f"{where}: '{key}' must be a non-empty string.")
    return value


def _int(data: Mapping[str, object], key: str, where: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise CatalogError(f"{where}: '{key}' must be an integer, not {value!r}.")
    return value


def _str_tuple(data: Mapping[str, object], key: str, where: str) -> tuple[str, ...]:
    value = data[key]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise CatalogError(f"{where}: '{key}' must be a list of strings.")
    return tuple(value)
