"""User settings in a JSON file: window state, last conversation, models, generation defaults."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from app.errors import ExternalFailure, UserFacingError
from runtimes.base import GenerationParams

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
THEMES = ("system", "light", "dark")
_FLOAT_PARAMS = ("temperature", "top_p", "min_p", "repeat_penalty")
_INT_PARAMS = ("top_k", "max_tokens")


class Settings:
    """Typed access to the settings file; unknown keys are kept as they are.

    Getters never fail: a missing or mistyped value reads as its default. Nothing reaches
    the disk until `save()`.

    Args:
        path: the JSON file (normally `AppPaths.settings_file`).
        data: the file's parsed contents; empty for defaults.
    """

    def __init__(self, path: Path, data: Mapping[str, Any] | None = None) -> None:
        self._path = Path(path)
        self._data: dict[str, Any] = dict(data or {})

    @classmethod
    def load(cls, path: Path) -> Settings:
        """Read the file; a missing one gives defaults.

        A corrupt file is renamed to `settings.json.bad-<timestamp>` (kept for the user to
        look at), a warning is logged and defaults are used.
        """
        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            log.warning("Cannot read the settings file %s (%s); using defaults.", path, exc)
            return cls(path)
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            _set_aside(path, str(exc))
            return cls(path)
        if not isinstance(data, dict):
            _set_aside(path, f"expected a JSON object, found {type(data).__name__}")
            return cls(path)
        return cls(path, data)

    @property
    def path(self) -> Path:
        """The JSON file."""
        return self._path

    def save(self) -> None:
        """Write the file atomically (a temporary file, then `os.replace`).

        Raises:
            ExternalFailure: the folder or file cannot be written.
        """
        self._data["version"] = FORMAT_VERSION
        text = json.dumps(self._data, indent=2, sort_keys=True) + "\n"
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(self._path, text)
        except OSError as exc:
            raise ExternalFailure(
                f"Could not save the settings to {self._path}: {exc.strerror or exc}. "
                "Check the free disk space and the folder's permissions.",
            ) from exc

    @property
    def last_conversation_id(self) -> int | None:
        """The conversation open when the app last closed, None for none."""
        value = self._data.get("last_conversation_id")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @last_conversation_id.setter
    def last_conversation_id(self, value: int | None) -> None:
        self._data["last_conversation_id"] = value

    @property
    def window_geometry(self) -> bytes:
        """The main window's saved geometry (Qt's opaque bytes), b"" for none."""
        return self._bytes("window_geometry")

    @window_geometry.setter
    def window_geometry(self, value: bytes) -> None:
        self._set_bytes("window_geometry", value)

    @property
    def window_state(self) -> bytes:
        """The main window's toolbars and docks (Qt's opaque bytes), b"" for none."""
        return self._bytes("window_state")

    @window_state.setter
    def window_state(self, value: bytes) -> None:
        self._set_bytes("window_state", value)

    @property
    def splitter_state(self) -> bytes:
        """The main splitter's sizes (Qt's opaque bytes), b"" for none."""
        return self._bytes("splitter_state")

    @splitter_state.setter
    def splitter_state(self, value: bytes) -> None:
        self._set_bytes("splitter_state", value)

    @property
    def opened_model_files(self) -> list[str]:
        """Model files the user opened by hand, in the order first opened."""
        value = self._data.get("opened_model_files")
        if not isinstance(value, list):
            return []
        return [item for item in value if isinstance(item, str) and item]

    @opened_model_files.setter
    def opened_model_files(self, value: Sequence[str]) -> None:
        self._data["opened_model_files"] = list(dict.fromkeys(p for p in value if p))

    def add_opened_model_file(self, path: str) -> None:
        """Remember one more opened model file (no duplicates)."""
        self.opened_model_files = [*self.opened_model_files, path]

    @property
    def model_folders(self) -> list[str]:
        """Folders the user added to the model library, in the order added."""
        value = self._data.get("model_folders")
        if not isinstance(value, list):
            return []
        return list(dict.fromkeys(item for item in value if isinstance(item, str) and item))

    @model_folders.setter
    def model_folders(self, value: Sequence[str]) -> None:
        self._data["model_folders"] = list(dict.fromkeys(p for p in value if p))

    @property
    def selected_model_path(self) -> str:
        """The model chosen last, "" for none."""
        value = self._data.get("selected_model_path")
        return value if isinstance(value, str) else ""

    @selected_model_path.setter
    def selected_model_path(self, value: str) -> None:
        self._data["selected_model_path"] = value

    @property
    def saved_endpoints(self) -> list[dict[str, str | bool]]:
        """Saved OpenAI-compatible endpoints as `{"name", "base_url", "has_key"}` dicts.

        Entries without a text `name` and `base_url` drop out; API keys are never here (they
        live in the keyring, `app.secrets`).
        """
        value = self._data.get("saved_endpoints")
        if not isinstance(value, list):
            return []
        entries: list[dict[str, str | bool]] = []
        for item in value:
            if not isinstance(item, dict):
                continue
            name, base_url = item.get("name"), item.get("base_url")
            if isinstance(name, str) and name and isinstance(base_url, str) and base_url:
                has_key = item.get("has_key") is True
                entries.append({"name": name, "base_url": base_url, "has_key": has_key})
        return entries

    @saved_endpoints.setter
    def saved_endpoints(self, value: Sequence[Mapping[str, str | bool]]) -> None:
        self._data["saved_endpoints"] = [
            {
                "name": str(e["name"]),
                "base_url": str(e["base_url"]),
                "has_key": e.get("has_key") is True,
            }
            for e in value
        ]

    @property
    def theme(self) -> str:
        """Appearance: "system" (follow the OS), "light" or "dark"."""
        value = self._data.get("theme")
        return value if value in THEMES else "system"

    @theme.setter
    def theme(self, value: str) -> None:
        if value not in THEMES:
            raise UserFacingError(f"Unknown theme {value!r}; choose one of {', '.join(THEMES)}.")
        self._data["theme"] = value

    @property
    def default_system_prompt(self) -> str:
        """The system prompt a new conversation starts with ("" for none)."""
        value = self._data.get("default_system_prompt")
        return value if isinstance(value, str) else ""

    @default_system_prompt.setter
    def default_system_prompt(self, value: str) -> None:
        self._data["default_system_prompt"] = value.strip()

    @property
    def default_preset(self) -> str:
        """The sampling preset a new conversation starts with."""
        value = self._data.get("default_preset")
        return value if isinstance(value, str) and value else "Balanced"

    @default_preset.setter
    def default_preset(self, value: str) -> None:
        self._data["default_preset"] = value

    @property
    def chat_settings_visible(self) -> bool:
        """Whether the chat settings panel (right of the chat) is shown."""
        value = self._data.get("chat_settings_visible")
        return value if isinstance(value, bool) else True

    @chat_settings_visible.setter
    def chat_settings_visible(self, value: bool) -> None:
        self._data["chat_settings_visible"] = bool(value)

    @property
    def generation_defaults(self) -> dict[str, object]:
        """Sampling defaults as a full `GenerationParams.as_dict()`; bad stored keys drop out."""
        return self.generation_params().as_dict()

    @generation_defaults.setter
    def generation_defaults(self, value: Mapping[str, object] | GenerationParams) -> None:
        params = value if isinstance(value, GenerationParams) else params_from_dict(value)
        self._data["generation_defaults"] = params.as_dict()

    def generation_params(self) -> GenerationParams:
        """The sampling defaults as `GenerationParams` (stored values that fit, else defaults)."""
        stored = self._data.get("generation_defaults")
        if not isinstance(stored, dict):
            return GenerationParams()
        valid = {key: v for key, v in stored.items() if _param_value(key, v) is not _INVALID}
        return params_from_dict(valid)

    def _bytes(self, key: str) -> bytes:
        value = self._data.get(key)
        if not isinstance(value, str):
            return b""
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return b""

    def _set_bytes(self, key: str, value: bytes) -> None:
        self._data[key] = base64.b64encode(bytes(value)).decode("ascii")


_INVALID = object()


def params_from_dict(values: Mapping[str, object]) -> GenerationParams:
    """Build `GenerationParams` from a plain dict (as stored in JSON).

    Raises:
        UserFacingError: an unknown option or a value of the wrong type.
    """
    kwargs: dict[str, Any] = {}
    for key, raw in values.items():
        value = _param_value(key, raw)
        if value is _INVALID:
            raise UserFacingError(
                f"The generation option {key!r} = {raw!r} is not valid. "
                "Check its name and use a number (or a list of texts for 'stop').",
            )
        kwargs[key] = value
    return GenerationParams(**kwargs)


def _param_value(key: str, value: object) -> object:
    """The value converted for `GenerationParams`, or `_INVALID`."""
    if key in _FLOAT_PARAMS:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return _INVALID
    if key in _INT_PARAMS:
        return value if isinstance(value, int) and not isinstance(value, bool) else _INVALID
    if key == "seed":
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        return _INVALID
    if key == "stop":
        if isinstance(value, list | tuple) and all(isinstance(s, str) for s in value):
            return tuple(value)
        return _INVALID
    return _INVALID


def _set_aside(path: Path, reason: str) -> None:
    """Rename a corrupt settings file out of the way, keeping it for the user."""
    target = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}")
    counter = 1
    while target.exists():
        counter += 1
        target = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}-{counter}")
    try:
        os.replace(path, target)
    except OSError as exc:
        log.warning(
            "The settings file %s is corrupt (%s) and cannot be moved aside (%s); using defaults.",
            path,
            reason,
            exc,
        )
        return
    log.warning(
        "The settings file %s is corrupt (%s); moved it to %s and using defaults.",
        path,
        reason,
        target,
    )


def _write_atomically(path: Path, text: str) -> None:
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
