"""Saved OpenAI-compatible endpoints ("my vLLM box"): URLs in settings, keys in the keyring."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from app.errors import UserFacingError
from app.secrets import KeyringUnavailable, delete_api_key, load_api_key, store_api_key
from app.settings import Settings
from runtimes.openai_compat import OpenAICompatRuntime, normalize_base_url

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SavedEndpoint:
    """An endpoint the user saved.

    Attributes:
        name: what the user calls it, unique (case-insensitively).
        base_url: the API root, normalized (e.g. "http://gpu-box:8000/v1").
        has_key: whether an API key goes with it (kept in the keyring, or for this session).
    """

    name: str
    base_url: str
    has_key: bool


class EndpointStore:
    """Adds, changes and removes saved endpoints; every change is saved at once.

    When the system has no usable keyring, a key is kept in memory for this session only
    and `KeyringUnavailable` says so after the endpoint itself was saved.

    Args:
        settings: where the endpoints are saved (`Settings.saved_endpoints`).
        timeout_s: the read timeout of the runtimes `runtime_for` builds.
    """

    def __init__(self, settings: Settings, timeout_s: float = 30.0) -> None:
        self._settings = settings
        self._timeout_s = timeout_s
        self._session_keys: dict[str, str] = {}

    def list(self) -> tuple[SavedEndpoint, ...]:
        """The saved endpoints, in the order added."""
        return tuple(
            SavedEndpoint(
                name=str(e["name"]),
                base_url=str(e["base_url"]),
                has_key=e["has_key"] is True or str(e["name"]) in self._session_keys,
            )
            for e in self._settings.saved_endpoints
        )

    def get(self, name: str) -> SavedEndpoint:
        """The endpoint called `name`.

        Raises:
            UserFacingError: no endpoint has that name.
        """
        for endpoint in self.list():
            if endpoint.name == name:
                return endpoint
        raise UserFacingError(f"There is no saved endpoint called {name!r}.")

    def add(self, name: str, base_url: str, api_key: str = "") -> SavedEndpoint:
        """Save a new endpoint (and its key, when given).

        Raises:
            UserFacingError: an empty or taken name, or a URL that is not http(s).
            KeyringUnavailable: the endpoint is saved but its key is kept for this session only.
            ExternalFailure: the settings file cannot be written.
        """
        name = self._valid_name(name, replacing="")
        url = normalize_base_url(base_url)
        entries = self._settings.saved_endpoints
        entries.append({"name": name, "base_url": url, "has_key": False})
        return self._save_with_key(entries, name, api_key)

    def update(
        self,
        name: str,
        *,
        new_name: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
    ) -> SavedEndpoint:
        """Change an endpoint; None leaves a field as it is, `api_key=""` removes the key.

        Raises:
            UserFacingError: no such endpoint, an empty or taken new name, or a bad URL.
            KeyringUnavailable: the change is saved but the key is kept for this session only.
            ExternalFailure: the settings file cannot be written.
        """
        old = self.get(name)
        target = self._valid_name(new_name, replacing=name) if new_name is not None else name
        url = normalize_base_url(base_url) if base_url is not None else old.base_url
        key = api_key
        if key is None and target != name and old.has_key:
            key = self._key_of(old)  # a renamed endpoint keeps its key
        entries = [
            {"name": target, "base_url": url, "has_key": e["has_key"]} if e["name"] == name else e
            for e in self._settings.saved_endpoints
        ]
        if target != name:
            self._forget_key(name)
            for entry in entries:
                if entry["name"] == target:
                    entry["has_key"] = False
        if key is None:
            self._settings.saved_endpoints = entries
            self._settings.save()
            return self.get(target)
        return self._save_with_key(entries, target, key)

    def remove(self, name: str) -> None:
        """Forget an endpoint and its key.

        Raises:
            UserFacingError: no such endpoint.
            ExternalFailure: the settings file cannot be written.
        """
        self.get(name)
        self._settings.saved_endpoints = [
            e for e in self._settings.saved_endpoints if e["name"] != name
        ]
        self._settings.save()
        self._forget_key(name)

    def runtime_for(self, name: str) -> OpenAICompatRuntime:
        """A runtime for the endpoint, with its key, named "openai:<name>".

        Raises:
            UserFacingError: no such endpoint.
            KeyringUnavailable: the endpoint has a stored key that the keyring cannot give.
        """
        endpoint = self.get(name)
        key = self._key_of(endpoint) if endpoint.has_key else ""
        return OpenAICompatRuntime(
            endpoint.base_url, api_key=key, timeout_s=self._timeout_s, name=f"openai:{name}"
        )

    def _save_with_key(
        self, entries: Sequence[dict[str, str | bool]], name: str, api_key: str
    ) -> SavedEndpoint:
        self._session_keys.pop(name, None)
        failure: KeyringUnavailable | None = None
        try:
            store_api_key(name, api_key)
        except KeyringUnavailable as exc:
            failure = exc
            if api_key:
                self._session_keys[name] = api_key
        stored = bool(api_key) and failure is None
        for entry in entries:
            if entry["name"] == name:
                entry["has_key"] = stored
        self._settings.saved_endpoints = entries
        self._settings.save()
        if failure is not None and api_key:
            raise failure
        return self.get(name)

    def _key_of(self, endpoint: SavedEndpoint) -> str:
        if endpoint.name in self._session_keys:
            return self._session_keys[endpoint.name]
        return load_api_key(endpoint.name)

    def _forget_key(self, name: str) -> None:
        self._session_keys.pop(name, None)
        try:
            delete_api_key(name)
        except KeyringUnavailable as exc:
            log.warning("Could not delete the API key of endpoint %r: %s", name, exc)

    def _valid_name(self, name: str, *, replacing: str) -> str:
        name = name.strip()
        if not name:
            raise UserFacingError("Give the endpoint a name, e.g. “my vLLM box”.")
        taken = {e.name.casefold() for e in self.list() if e.name != replacing}
        if name.casefold() in taken:
            raise UserFacingError(f"An endpoint called {name!r} exists already. Pick another name.")
        return name
