"""API keys in the system keyring (Keychain, Secret Service, Credential Locker), never in files."""

from __future__ import annotations

import contextlib

import keyring
import keyring.errors

from app.errors import ExternalFailure

SERVICE = "llm-workbench"


class KeyringUnavailable(ExternalFailure):
    """The system keyring cannot store or read keys (none installed, locked, refused)."""


def store_api_key(endpoint_name: str, key: str) -> None:
    """Keep `key` for the endpoint in the keyring ("" removes it).

    Raises:
        KeyringUnavailable: no usable keyring; the key is not stored anywhere.
    """
    if not key:
        delete_api_key(endpoint_name)
        return
    try:
        keyring.set_password(SERVICE, _username(endpoint_name), key)
    except keyring.errors.KeyringError as exc:
        raise _unavailable(exc) from exc


def load_api_key(endpoint_name: str) -> str:
    """The endpoint's key from the keyring, "" when none is stored.

    Raises:
        KeyringUnavailable: no usable keyring.
    """
    try:
        key = keyring.get_password(SERVICE, _username(endpoint_name))
    except keyring.errors.KeyringError as exc:
        raise _unavailable(exc) from exc
    return key or ""


def delete_api_key(endpoint_name: str) -> None:
    """Forget the endpoint's key; nothing happens when none is stored.

    Raises:
        KeyringUnavailable: no usable keyring.
    """
    try:
        keyring.delete_password(SERVICE, _username(endpoint_name))
    except keyring.errors.PasswordDeleteError:
        return
    except keyring.errors.KeyringError as exc:
        raise _unavailable(exc) from exc


def _username(endpoint_name: str) -> str:
    # A prefix keeps endpoint keys apart from other secrets of the app (a Hugging Face token).
    return f"endpoint:{endpoint_name}"


def _unavailable(exc: keyring.errors.KeyringError) -> KeyringUnavailable:
    if isinstance(exc, keyring.errors.NoKeyringError):
        reason = "no keyring service (Keychain, Secret Service, Credential Locker) is available"
    else:
        reason = f"the keyring refused ({type(exc).__name__}: {exc})"
    return KeyringUnavailable(
        f"API keys cannot be stored on this system: {reason}. The key will be used for this "
        "session only; enter it again next time, or install or unlock a keyring to keep it.",
        details=str(exc),
    )


HF_TOKEN_USERNAME = "huggingface"
"""The keyring entry of the Hugging Face token (read by `app.hf_cache.hf_token`)."""


def store_hf_token(token: str) -> None:
    """Keep the Hugging Face token in the keyring ("" removes it).

    Raises:
        KeyringUnavailable: no usable keyring; the token is not stored anywhere.
    """
    try:
        if token:
            keyring.set_password(SERVICE, HF_TOKEN_USERNAME, token)
        else:
            with contextlib.suppress(keyring.errors.PasswordDeleteError):
                keyring.delete_password(SERVICE, HF_TOKEN_USERNAME)
    except keyring.errors.KeyringError as exc:
        raise _unavailable(exc) from exc
