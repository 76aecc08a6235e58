"""Saved OpenAI-compatible endpoints: names and URLs in settings, keys only in the keyring."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.endpoints import EndpointStore, SavedEndpoint
from app.errors import UserFacingError
from app.secrets import SERVICE, KeyringUnavailable
from app.settings import Settings
from tests.servers.fixtures_openai import MemoryKeyring
from tests.servers.openai_servers import FaultPlan, FaultServer

KEY = "sk-very-secret-0123"


@pytest.fixture()
def settings_file(tmp_path: Path) -> Path:
    return tmp_path / "config" / "settings.json"


@pytest.fixture()
def store(settings_file: Path) -> EndpointStore:
    return EndpointStore(Settings.load(settings_file))


def _files_containing(root: Path, text: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_add_saves_the_endpoint_and_puts_the_key_in_the_keyring(
    store: EndpointStore, settings_file: Path, memory_keyring: MemoryKeyring, tmp_path: Path
) -> None:
    saved = store.add("my vLLM box", "http://gpu-box:8000", api_key=KEY)
    assert saved == SavedEndpoint("my vLLM box", "http://gpu-box:8000/v1", has_key=True)
    assert store.list() == (saved,)
    assert memory_keyring.passwords == {(SERVICE, "endpoint:my vLLM box"): KEY}
    assert settings_file.exists()
    assert _files_containing(tmp_path, KEY) == []


def test_endpoints_survive_a_restart(
    store: EndpointStore, settings_file: Path, memory_keyring: MemoryKeyring
) -> None:
    store.add("lm studio", "http://127.0.0.1:1234/v1")
    store.add("vllm", "https://vllm.example.com/v1", api_key=KEY)
    again = EndpointStore(Settings.load(settings_file))
    assert again.list() == (
        SavedEndpoint("lm studio", "http://127.0.0.1:1234/v1", has_key=False),
        SavedEndpoint("vllm", "https://vllm.example.com/v1", has_key=True),
    )
    assert again.runtime_for("vllm").base_url == "https://vllm.example.com/v1"


@pytest.mark.parametrize(
    ("name", "url", "message"),
    [
        ("", "http://a:1/v1", "Give the endpoint a name"),
        ("   ", "http://a:1/v1", "Give the endpoint a name"),
        ("Box", "http://b:1/v1", "exists already"),
        ("other", "ftp://files.example.com", "is not a server address"),
        ("other", "gpu-box:8000", "is not a server address"),
    ],
)
def test_add_refuses_a_bad_name_or_url_and_saves_nothing(
    store: EndpointStore, memory_keyring: MemoryKeyring, name: str, url: str, message: str
) -> None:
    store.add("box", "http://a:1/v1")
    with pytest.raises(UserFacingError, match=message):
        store.add(name, url, api_key=KEY)
    assert [e.name for e in store.list()] == ["box"]
    assert memory_keyring.passwords == {}


def test_update_changes_the_url_and_keeps_the_key(
    store: EndpointStore, memory_keyring: MemoryKeyring
) -> None:
    store.add("box", "http://a:1/v1", api_key=KEY)
    updated = store.update("box", base_url="http://b:2")
    assert updated == SavedEndpoint("box", "http://b:2/v1", has_key=True)
    assert memory_keyring.passwords == {(SERVICE, "endpoint:box"): KEY}


def test_a_rename_moves_the_key(store: EndpointStore, memory_keyring: MemoryKeyring) -> None:
    store.add("box", "http://a:1/v1", api_key=KEY)
    renamed = store.update("box", new_name="big box")
    assert renamed == SavedEndpoint("big box", "http://a:1/v1", has_key=True)
    assert memory_keyring.passwords == {(SERVICE, "endpoint:big box"): KEY}
    with pytest.raises(UserFacingError, match="no saved endpoint called 'box'"):
        store.get("box")


def test_a_rename_onto_another_endpoint_is_refused(
    store: EndpointStore, memory_keyring: MemoryKeyring
) -> None:
    store.add("a", "http://a:1/v1")
    store.add("b", "http://b:1/v1")
    with pytest.raises(UserFacingError, match="exists already"):
        store.update("a", new_name="B")


def test_update_with_an_empty_key_removes_it(
    store: EndpointStore, memory_keyring: MemoryKeyring
) -> None:
    store.add("box", "http://a:1/v1", api_key=KEY)
    assert store.update("box", api_key="").has_key is False
    assert memory_keyring.passwords == {}


def test_remove_forgets_the_endpoint_and_its_key(
    store: EndpointStore, memory_keyring: MemoryKeyring, settings_file: Path
) -> None:
    store.add("box", "http://a:1/v1", api_key=KEY)
    store.remove("box")
    assert store.list() == ()
    assert memory_keyring.passwords == {}
    assert EndpointStore(Settings.load(settings_file)).list() == ()
    with pytest.raises(UserFacingError):
        store.remove("box")


def test_runtime_for_sends_the_stored_key(
    store: EndpointStore, memory_keyring: MemoryKeyring, fault_server: FaultServer
) -> None:
    fault_server.reset(FaultPlan(api_key=KEY))
    store.add("local", fault_server.base_url, api_key=KEY)
    runtime = store.runtime_for("local")
    assert runtime.name == "openai:local"
    assert runtime.status().state == "available"


def test_without_a_keyring_the_key_is_kept_for_this_session_only(
    store: EndpointStore,
    settings_file: Path,
    tmp_path: Path,
    fault_server: FaultServer,
    no_keyring: None,
) -> None:
    fault_server.reset(FaultPlan(api_key=KEY))
    with pytest.raises(KeyringUnavailable, match="used for this session only"):
        store.add("local", fault_server.base_url, api_key=KEY)
    assert store.get("local").has_key is True
    assert store.runtime_for("local").status().state == "available"
    assert _files_containing(tmp_path, KEY) == []
    after_restart = EndpointStore(Settings.load(settings_file))
    assert after_restart.get("local").has_key is False
    assert after_restart.runtime_for("local").status().state == "error"  # 401 without it


def test_endpoints_without_a_key_need_no_keyring(
    store: EndpointStore, settings_file: Path, no_keyring: None
) -> None:
    saved = store.add("local", "http://127.0.0.1:8000")
    assert saved.has_key is False
    assert store.runtime_for("local").base_url == "http://127.0.0.1:8000/v1"


def test_malformed_saved_entries_drop_out(settings_file: Path) -> None:
    settings = Settings(
        settings_file,
        {
            "saved_endpoints": [
                {"name": "ok", "base_url": "http://a:1/v1", "has_key": True},
                {"name": "", "base_url": "http://b:1/v1"},
                {"name": "no url"},
                "not a dict",
                {"name": "k", "base_url": "http://c:1/v1", "has_key": "yes"},
            ]
        },
    )
    assert EndpointStore(settings).list() == (
        SavedEndpoint("ok", "http://a:1/v1", has_key=True),
        SavedEndpoint("k", "http://c:1/v1", has_key=False),
    )
