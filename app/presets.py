"""Sampling presets: three built in (Precise, Balanced, Creative) plus the user's own."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, TypeGuard

from sqlalchemy import delete, select

from app.errors import UserFacingError
from app.store.database import Database
from app.store.models import SamplingPreset, utc_now
from runtimes.base import GenerationParams

__all__ = [
    "BUILTIN_PRESETS",
    "DEFAULT_PRESET",
    "PresetStore",
    "params_from_dict",
    "preset_matching",
]

_DEFAULT_MAX_TOKENS = GenerationParams().max_tokens

BUILTIN_PRESETS: dict[str, GenerationParams] = {
    "Precise": GenerationParams(
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        min_p=0.05,
        repeat_penalty=1.1,
        max_tokens=_DEFAULT_MAX_TOKENS,
    ),
    "Balanced": GenerationParams(),
    "Creative": GenerationParams(
        temperature=1.0,
        top_p=0.98,
        top_k=100,
        min_p=0.02,
        repeat_penalty=1.05,
        max_tokens=_DEFAULT_MAX_TOKENS,
    ),
}
"""The built-in presets, in the order the picker lists them."""

DEFAULT_PRESET = "Balanced"
MAX_NAME_CHARS = 80


def params_from_dict(data: object) -> GenerationParams:
    """Parameters from stored JSON; a missing or invalid field takes its default. Never raises.

    Args:
        data: what `GenerationParams.as_dict()` wrote, or anything else.
    """
    if not isinstance(data, Mapping):
        return GenerationParams()
    default = GenerationParams()
    values: dict[str, Any] = {}
    for name in ("temperature", "top_p", "min_p", "repeat_penalty"):
        value = data.get(name)
        if _is_real(value) and math.isfinite(value) and value >= 0:
            values[name] = float(value)
    for name in ("top_k", "max_tokens"):
        value = data.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            values[name] = value
    seed = data.get("seed", default.seed)
    if seed is None or (isinstance(seed, int) and not isinstance(seed, bool)):
        values["seed"] = seed
    stop = data.get("stop")
    if isinstance(stop, list | tuple) and all(isinstance(item, str) for item in stop):
        values["stop"] = tuple(stop)
    return dataclasses.replace(default, **values)


def _is_real(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def preset_matching(
    params: GenerationParams, presets: Mapping[str, GenerationParams] = BUILTIN_PRESETS
) -> str | None:
    """The name of the first preset equal to `params` in every field; None means "Custom"."""
    return next((name for name, preset in presets.items() if preset == params), None)


class PresetStore:
    """The built-in presets plus the ones the user saved (table `sampling_presets`).

    Args:
        db: the open history database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    def is_builtin(name: str) -> bool:
        """Whether `name` is one of the built-in presets (which cannot change)."""
        return name in BUILTIN_PRESETS

    def names(self) -> list[str]:
        """Built-in presets first (Precise, Balanced, Creative), then the user's, A to Z."""
        with self._db.session() as session:
            saved = list(session.scalars(select(SamplingPreset.name)))
        users = sorted((n for n in saved if n not in BUILTIN_PRESETS), key=str.casefold)
        return [*BUILTIN_PRESETS, *users]

    def all(self) -> dict[str, GenerationParams]:
        """Every preset by name, in the order of `names()`."""
        with self._db.session() as session:
            rows = {row.name: row.params for row in session.scalars(select(SamplingPreset))}
        users = sorted((n for n in rows if n not in BUILTIN_PRESETS), key=str.casefold)
        return {**BUILTIN_PRESETS, **{n: params_from_dict(rows[n]) for n in users}}

    def get(self, name: str) -> GenerationParams:
        """A preset's parameters.

        Raises:
            UserFacingError: no preset has this name.
        """
        if name in BUILTIN_PRESETS:
            return BUILTIN_PRESETS[name]
        with self._db.session() as session:
            row = session.get(SamplingPreset, name)
            if row is None:
                raise UserFacingError(f"There is no preset named “{name}”. Pick one from the list.")
            return params_from_dict(row.params)

    def save(self, name: str, params: GenerationParams) -> None:
        """Save (or overwrite) a user preset.

        Raises:
            UserFacingError: the name is empty, too long, or a built-in preset's.
        """
        name = " ".join(name.split())
        if not name:
            raise UserFacingError("A preset needs a name. Type one before saving.")
        if len(name) > MAX_NAME_CHARS:
            raise UserFacingError(f"A preset name can have at most {MAX_NAME_CHARS} characters.")
        if self.is_builtin(name):
            raise UserFacingError(f"“{name}” is built in; choose another name.")
        with self._db.session() as session:
            row = session.get(SamplingPreset, name)
            if row is None:
                session.add(
                    SamplingPreset(name=name, params=params.as_dict(), updated_at=utc_now())
                )
            else:
                row.params = params.as_dict()
                row.updated_at = utc_now()

    def delete(self, name: str) -> None:
        """Forget a user preset (no error when it is already gone).

        Raises:
            UserFacingError: it is a built-in preset.
        """
        if self.is_builtin(name):
            raise UserFacingError(f"“{name}” is built in and cannot be deleted.")
        with self._db.session() as session:
            session.execute(delete(SamplingPreset).where(SamplingPreset.name == name))
