"""Sampling presets and per-conversation settings, on a real SQLite file."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.chat import ConversationService, ConversationSettings
from app.errors import UserFacingError
from app.presets import BUILTIN_PRESETS, PresetStore, params_from_dict, preset_matching
from app.store import Database, open_database
from runtimes.base import GenerationParams


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(tmp_path / "history.sqlite3")
    yield database
    database.close()


@pytest.fixture()
def store(db: Database) -> PresetStore:
    return PresetStore(db)


def test_builtin_presets_have_the_documented_values() -> None:
    assert list(BUILTIN_PRESETS) == ["Precise", "Balanced", "Creative"]
    assert BUILTIN_PRESETS["Balanced"] == GenerationParams()
    precise, creative = BUILTIN_PRESETS["Precise"], BUILTIN_PRESETS["Creative"]
    assert (precise.temperature, precise.top_p, precise.top_k, precise.min_p) == (
        0.2,
        0.9,
        40,
        0.05,
    )
    assert (creative.temperature, creative.top_p, creative.top_k, creative.min_p) == (
        1.0,
        0.98,
        100,
        0.02,
    )
    assert (precise.repeat_penalty, creative.repeat_penalty) == (1.1, 1.05)
    assert precise.max_tokens == creative.max_tokens == GenerationParams().max_tokens


def test_names_list_builtins_first_then_user_presets_alphabetically(store: PresetStore) -> None:
    store.save("zeta", GenerationParams(temperature=0.3))
    store.save("Alpha", GenerationParams(temperature=0.4))
    assert store.names() == ["Precise", "Balanced", "Creative", "Alpha", "zeta"]
    assert store.get("Alpha") == GenerationParams(temperature=0.4)
    assert store.get("Creative") == BUILTIN_PRESETS["Creative"]
    assert list(store.all()) == store.names()


def test_a_user_preset_can_be_overwritten_and_deleted(store: PresetStore) -> None:
    store.save("Mine", GenerationParams(temperature=0.3))
    store.save("Mine", GenerationParams(temperature=0.9, stop=("END",), seed=7))
    assert store.get("Mine") == GenerationParams(temperature=0.9, stop=("END",), seed=7)
    store.delete("Mine")
    assert "Mine" not in store.names()
    with pytest.raises(UserFacingError, match="no preset named"):
        store.get("Mine")


def test_builtin_names_and_empty_names_are_refused(store: PresetStore) -> None:
    with pytest.raises(UserFacingError, match="is built in; choose another name"):
        store.save("Balanced", GenerationParams(temperature=0.1))
    with pytest.raises(UserFacingError, match="name"):
        store.save("   ", GenerationParams())
    with pytest.raises(UserFacingError, match="built in"):
        store.delete("Precise")
    assert store.is_builtin("Precise") and not store.is_builtin("Mine")
    assert store.get("Balanced") == GenerationParams()


def test_preset_matching_names_equal_params_or_none_for_custom(store: PresetStore) -> None:
    assert preset_matching(GenerationParams()) == "Balanced"
    assert preset_matching(BUILTIN_PRESETS["Creative"]) == "Creative"
    tweaked = dataclasses.replace(BUILTIN_PRESETS["Precise"], temperature=0.25)
    assert preset_matching(tweaked) is None
    store.save("Tweaked", tweaked)
    assert preset_matching(tweaked, store.all()) == "Tweaked"


def test_params_from_bad_json_fall_back_field_by_field() -> None:
    assert params_from_dict("nonsense") == GenerationParams()
    got = params_from_dict(
        {"temperature": "hot", "top_k": 7, "top_p": -1, "seed": True, "stop": [1], "min_p": 0}
    )
    assert got == GenerationParams(top_k=7, min_p=0.0)


def test_settings_default_then_round_trip_keeping_the_fallback(db: Database) -> None:
    service = ConversationService(db)
    chat = service.create()
    assert service.settings(chat.id) == ConversationSettings()
    service.set_fallback(chat.id, "ollama::qwen", "qwen")
    chosen = ConversationSettings(
        "Answer in French.", "Custom", GenerationParams(temperature=0.3, stop=("##",)), 8192
    )
    service.set_settings(chat.id, chosen)
    assert service.settings(chat.id) == chosen
    assert service.fallback(chat.id) == ("ollama::qwen", "qwen")
    service.set_settings(chat.id, ConversationSettings())
    assert service.settings(chat.id) == ConversationSettings()
    assert service.settings(service.create().id) == ConversationSettings()


def test_invalid_stored_settings_read_as_defaults(db: Database) -> None:
    service = ConversationService(db)
    chat = service.create()
    with db.engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE conversations SET settings = ? WHERE id = ?",
            ('{"system_prompt": 5, "preset": "", "params": [1], "n_ctx": -3}', chat.id),
        )
    assert service.settings(chat.id) == ConversationSettings()


def test_a_non_positive_context_length_is_refused(db: Database) -> None:
    service = ConversationService(db)
    chat = service.create()
    with pytest.raises(UserFacingError, match="context length"):
        service.set_settings(chat.id, ConversationSettings(n_ctx=0))
