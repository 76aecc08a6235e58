"""Settings in a JSON file: typed values, defaults, corrupt files, atomic saves."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from app.errors import ExternalFailure, UserFacingError
from app.paths import app_paths
from app.settings import Settings
from runtimes.base import GenerationParams


@pytest.fixture()
def path(tmp_path: Path) -> Path:
    return tmp_path / "config" / "settings.json"


def test_a_missing_file_gives_defaults(path: Path) -> None:
    settings = Settings.load(path)
    assert settings.last_conversation_id is None
    assert settings.window_geometry == b""
    assert settings.window_state == b""
    assert settings.splitter_state == b""
    assert settings.opened_model_files == []
    assert settings.selected_model_path == ""
    assert settings.generation_params() == GenerationParams()
    assert settings.generation_defaults == GenerationParams().as_dict()
    assert not path.exists(), "loading writes nothing"


def test_values_survive_a_save_and_load(path: Path) -> None:
    settings = Settings.load(path)
    settings.last_conversation_id = 42
    settings.window_geometry = b"\x01\xd9\xd0\xcb\x00\x03"
    settings.window_state = b"\x00\xff state"
    settings.splitter_state = bytes(range(256))
    settings.opened_model_files = ["/m/a.gguf", "/m/b.gguf", "/m/a.gguf"]
    settings.add_opened_model_file("/m/c.gguf")
    settings.add_opened_model_file("/m/b.gguf")
    settings.selected_model_path = "/m/b.gguf"
    settings.generation_defaults = GenerationParams(temperature=0.0, seed=7, stop=("###",))
    settings.save()

    again = Settings.load(path)
    assert again.last_conversation_id == 42
    assert again.window_geometry == b"\x01\xd9\xd0\xcb\x00\x03"
    assert again.window_state == b"\x00\xff state"
    assert again.splitter_state == bytes(range(256))
    assert again.opened_model_files == ["/m/a.gguf", "/m/b.gguf", "/m/c.gguf"]
    assert again.selected_model_path == "/m/b.gguf"
    assert again.generation_params() == GenerationParams(temperature=0.0, seed=7, stop=("###",))
    stored = json.loads(path.read_text(encoding="utf-8"))
    assert stored["window_geometry"] == "AdnQywAD", "bytes are base64 in the JSON"


def test_generation_defaults_accept_a_plain_dict(path: Path) -> None:
    settings = Settings(path)
    settings.generation_defaults = {"temperature": 1, "max_tokens": 64, "stop": ["</s>"]}
    assert settings.generation_params() == GenerationParams(
        temperature=1.0, max_tokens=64, stop=("</s>",)
    )
    assert settings.generation_defaults["max_tokens"] == 64


@pytest.mark.parametrize(
    "bad", [{"temprature": 0.5}, {"max_tokens": "many"}, {"seed": 1.5}, {"top_k": True}]
)
def test_bad_generation_defaults_are_refused(path: Path, bad: dict[str, object]) -> None:
    settings = Settings(path)
    with pytest.raises(UserFacingError, match=next(iter(bad))):
        settings.generation_defaults = bad
    assert settings.generation_params() == GenerationParams()


def test_mistyped_values_in_the_file_read_as_defaults(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps(
            {
                "last_conversation_id": "seven",
                "window_geometry": "not base64!!",
                "opened_model_files": "/m/a.gguf",
                "selected_model_path": 3,
                "generation_defaults": {"temperature": "hot", "max_tokens": 99, "x": 1},
            }
        ),
        encoding="utf-8",
    )
    settings = Settings.load(path)
    assert settings.last_conversation_id is None
    assert settings.window_geometry == b""
    assert settings.opened_model_files == []
    assert settings.selected_model_path == ""
    assert settings.generation_params() == GenerationParams(max_tokens=99)


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2, 3]", b"\xff\xfe\x00garbage"])
def test_a_corrupt_file_is_set_aside_and_defaults_used(
    path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="app.settings"):
        settings = Settings.load(path)
    assert settings.last_conversation_id is None
    assert not path.exists()
    aside = list(path.parent.glob("settings.json.bad-*"))
    assert len(aside) == 1
    assert aside[0].read_bytes() == content, "the user's file is kept, not deleted"
    assert any("corrupt" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    settings.last_conversation_id = 3
    settings.save()
    assert Settings.load(path).last_conversation_id == 3


def test_unknown_keys_are_kept(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"future_option": [1, 2]}), encoding="utf-8")
    settings = Settings.load(path)
    settings.selected_model_path = "/m/a.gguf"
    settings.save()
    assert json.loads(path.read_text(encoding="utf-8"))["future_option"] == [1, 2]


def test_save_replaces_the_file_atomically(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(path)
    settings.last_conversation_id = 1
    settings.save()
    before = path.read_bytes()

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    settings.last_conversation_id = 2
    with pytest.raises(ExternalFailure, match="No space left"):
        settings.save()
    assert path.read_bytes() == before, "a failed save leaves the old file whole"
    assert sorted(p.name for p in path.parent.iterdir()) == ["settings.json"], "no temp left"


def test_save_into_an_impossible_folder_is_an_external_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ExternalFailure, match="settings"):
        Settings(blocker / "settings.json").save()


def test_settings_live_in_the_workbench_config_folder(workbench_home: Path) -> None:
    paths = app_paths()
    settings = Settings.load(paths.settings_file)
    settings.last_conversation_id = 5
    settings.save()
    assert (workbench_home / "config" / "settings.json").is_file()
    assert Settings.load(paths.settings_file).last_conversation_id == 5


def test_model_folders_survive_a_save_and_drop_bad_entries(path: Path) -> None:
    settings = Settings.load(path)
    assert settings.model_folders == []
    settings.model_folders = ["/data/models", "", "/data/models", "/mnt/gguf"]
    settings.save()
    assert Settings.load(path).model_folders == ["/data/models", "/mnt/gguf"]
    path.write_text(json.dumps({"model_folders": ["/a", 3, None, "/b"]}))
    assert Settings.load(path).model_folders == ["/a", "/b"]
    path.write_text(json.dumps({"model_folders": "/not/a/list"}))
    assert Settings.load(path).model_folders == []
