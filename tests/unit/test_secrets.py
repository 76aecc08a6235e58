"""API keys in the keyring: stored, read, deleted; a clear error where no keyring exists."""

from __future__ import annotations

import keyring
import keyring.errors
import pytest

from app.errors import ExternalFailure
from app.secrets import (
    SERVICE,
    KeyringUnavailable,
    delete_api_key,
    load_api_key,
    store_api_key,
)
from tests.servers.fixtures_openai import MemoryKeyring


def test_a_stored_key_is_read_back_under_the_apps_service(memory_keyring: MemoryKeyring) -> None:
    store_api_key("my vLLM box", "sk-123")
    assert load_api_key("my vLLM box") == "sk-123"
    assert memory_keyring.passwords == {(SERVICE, "endpoint:my vLLM box"): "sk-123"}
    assert SERVICE == "llm-workbench"


def test_no_key_stored_reads_as_empty(memory_keyring: MemoryKeyring) -> None:
    assert load_api_key("never saved") == ""


def test_storing_again_replaces_the_key(memory_keyring: MemoryKeyring) -> None:
    store_api_key("box", "old")
    store_api_key("box", "new")
    assert load_api_key("box") == "new"


def test_delete_forgets_the_key_and_is_idempotent(memory_keyring: MemoryKeyring) -> None:
    store_api_key("box", "sk-123")
    delete_api_key("box")
    delete_api_key("box")
    assert load_api_key("box") == ""
    assert memory_keyring.passwords == {}


def test_storing_an_empty_key_removes_it(memory_keyring: MemoryKeyring) -> None:
    store_api_key("box", "sk-123")
    store_api_key("box", "")
    assert memory_keyring.passwords == {}


def test_keys_of_different_endpoints_are_apart(memory_keyring: MemoryKeyring) -> None:
    store_api_key("a", "key-a")
    store_api_key("b", "key-b")
    delete_api_key("a")
    assert (load_api_key("a"), load_api_key("b")) == ("", "key-b")


@pytest.mark.usefixtures("no_keyring")
@pytest.mark.parametrize(
    "call",
    [
        lambda: store_api_key("box", "sk-123"),
        lambda: load_api_key("box"),
        lambda: delete_api_key("box"),
    ],
    ids=["store", "load", "delete"],
)
def test_without_a_keyring_every_call_says_keys_are_for_this_session_only(call: object) -> None:
    assert callable(call)
    with pytest.raises(KeyringUnavailable) as info:
        call()
    assert isinstance(info.value, ExternalFailure)
    message = str(info.value)
    assert message.startswith("API keys cannot be stored on this system: no keyring service")
    assert "used for this session only" in message


class LockedKeyring(MemoryKeyring):
    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.KeyringLocked("the collection is locked")


def test_a_locked_keyring_is_reported_with_its_reason(memory_keyring: MemoryKeyring) -> None:
    keyring.set_keyring(LockedKeyring())  # memory_keyring's teardown restores the original
    refused = "the keyring refused .*KeyringLocked: the collection is locked"
    with pytest.raises(KeyringUnavailable, match=refused):
        store_api_key("box", "sk-123")
