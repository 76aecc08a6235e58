"""Per-conversation settings (system prompt, sampling preset and parameters, context size).

They live in the conversation's `settings` JSON under their own keys, next to others
(such as "fallback") that this module leaves alone. Reading never raises: a missing or
invalid value takes its default, so a hand-edited or older database still opens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.presets import DEFAULT_PRESET, params_from_dict
from runtimes.base import GenerationParams

MAX_N_CTX = 10_000_000
"""Larger stored context sizes are taken as damage and ignored."""

_KEYS = ("system_prompt", "preset", "params", "n_ctx")


@dataclass(frozen=True, slots=True)
class ConversationSettings:
    """How a conversation's replies are generated.

    Attributes:
        system_prompt: sent first as a system message ("" for none).
        preset: the preset the parameters came from, or "Custom".
        params: the sampling parameters.
        n_ctx: the context length to load the model with; None means the model's setting.
    """

    system_prompt: str = ""
    preset: str = DEFAULT_PRESET
    params: GenerationParams = field(default_factory=GenerationParams)
    n_ctx: int | None = None


def settings_from_json(stored: Mapping[str, Any] | None) -> ConversationSettings:
    """The settings in a conversation's `settings` JSON; defaults for anything unusable."""
    stored = stored if isinstance(stored, Mapping) else {}
    prompt = stored.get("system_prompt")
    preset = stored.get("preset")
    n_ctx = stored.get("n_ctx")
    valid_n_ctx = isinstance(n_ctx, int) and not isinstance(n_ctx, bool) and 0 < n_ctx <= MAX_N_CTX
    return ConversationSettings(
        system_prompt=prompt if isinstance(prompt, str) else "",
        preset=preset if isinstance(preset, str) and preset.strip() else DEFAULT_PRESET,
        params=params_from_dict(stored.get("params")),
        n_ctx=n_ctx if valid_n_ctx else None,
    )


def settings_to_json(
    stored: Mapping[str, Any] | None, settings: ConversationSettings
) -> dict[str, Any]:
    """A new `settings` JSON: `stored` with the settings' keys replaced, others kept."""
    merged = {k: v for k, v in (stored or {}).items() if k not in _KEYS}
    merged["system_prompt"] = settings.system_prompt
    merged["preset"] = settings.preset
    merged["params"] = settings.params.as_dict()
    if settings.n_ctx is not None:
        merged["n_ctx"] = settings.n_ctx
    return merged
