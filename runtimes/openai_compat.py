"""Any OpenAI-compatible server (vLLM, llama-server, LM Studio, ...) through the `openai` SDK."""

from __future__ import annotations

import ipaddress
import logging
import re
import time
import urllib.parse
from collections.abc import Mapping

import httpx
import openai

from runtimes.base import (
    CancelToken,
    LoadedModelInfo,
    LoadOptions,
    LoadProgress,
    ProgressCallback,
    RemoteModel,
    RuntimeStatus,
)
from runtimes.errors import ExternalFailure, LoadCancelled, ModelLoadFailed, UserFacingError
from runtimes.openai_errors import ServerUnreachable, malformed_reply, translate_error
from runtimes.openai_model import OpenAIModel, ServerEndpoint

__all__ = [
    "OpenAICompatRuntime",
    "OpenAIModel",
    "insecure_key_warning",
    "normalize_base_url",
    "remote_model_from_entry",
]

log = logging.getLogger(__name__)

# Servers that reject request fields they do not know (top_k, min_p, ...).
_STRICT_HOSTS = frozenset({"api.openai.com"})
# A `Server` header that names one product and its version ("name/1.2.3").
_PRODUCT_TOKEN = re.compile(r"[\w.+-]+/v?\d[\w.+-]*")


def normalize_base_url(url: str) -> str:
    """The base URL the SDK needs: no trailing slash, "/v1" added when there is no path.

    Raises:
        UserFacingError: not an http(s) URL with a host.
    """
    text = url.strip().rstrip("/")
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserFacingError(
            f"{url!r} is not a server address. Use a URL like http://127.0.0.1:8000/v1.",
        )
    if not parts.path:
        text += "/v1"
    return text


def insecure_key_warning(base_url: str, api_key: str) -> str:
    """A warning when `api_key` would travel unencrypted beyond this machine, else ""."""
    parts = urllib.parse.urlsplit(base_url)
    if not api_key or parts.scheme != "http" or _is_loopback(parts.hostname or ""):
        return ""
    return (
        f"The API key is sent unencrypted to {parts.hostname} (plain http). "
        "Use https, or reach the server through an SSH tunnel on this machine."
    )


def remote_model_from_entry(entry: Mapping[str, object]) -> RemoteModel:
    """A `RemoteModel` from one item of `/v1/models`' `data`.

    The context length comes from vLLM's `max_model_len`, llama-server's `meta.n_ctx_train`
    or a plain `context_length`; llama-cpp-python's server says none (0). `owned_by` says
    nothing useful.

    Raises:
        ValueError: the item has no string `id`.
    """
    name = entry.get("id")
    if not isinstance(name, str) or not name:
        raise ValueError(f"a model without an id: {entry!r}")
    meta = entry.get("meta")
    meta = meta if isinstance(meta, Mapping) else {}
    context = _first_int(entry, "max_model_len", "context_length", "max_context_length")
    context = context or _first_int(meta, "n_ctx_train", "n_ctx")
    n_params = _first_int(meta, "n_params")
    return RemoteModel(
        name=name,
        size_bytes=_first_int(meta, "size"),
        parameter_size=_format_params(n_params) if n_params else "",
        context_length=context,
    )


class OpenAICompatRuntime:
    """An OpenAI-compatible server at `base_url`, used through the official `openai` SDK.

    Args:
        base_url: the API root, e.g. "http://127.0.0.1:8000/v1" ("/v1" is added to a bare
            host).
        api_key: the key to send ("" for none: the SDK still sends "not-needed").
        timeout_s: how long one read may wait for the server (connect, headers, each chunk).
        name: the runtime's name in the registry.

    Raises:
        UserFacingError: `base_url` is not an http(s) URL.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str = "",
        timeout_s: float = 30.0,
        name: str = "openai",
    ) -> None:
        self.name = name
        self.base_url = normalize_base_url(base_url)
        self.timeout_s = timeout_s
        self._host = urllib.parse.urlsplit(self.base_url).netloc
        self._key_warning = insecure_key_warning(self.base_url, api_key)
        if self._key_warning:
            log.warning("%s", self._key_warning)
        client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or "not-needed",
            timeout=timeout_s,
            max_retries=0,
        )
        strict = urllib.parse.urlsplit(self.base_url).hostname in _STRICT_HOSTS
        self._endpoint = ServerEndpoint(client, self.base_url, timeout_s, not strict)

    def status(self, timeout_s: float = 2.0) -> RuntimeStatus:
        """Ask `/v1/models` whether the server is there; never raises, never waits past
        `timeout_s` (a version probe only gets what time is left)."""
        started = time.monotonic()
        warnings = (self._key_warning,) if self._key_warning else ()
        try:
            models, server_header = self._fetch_models(timeout_s)
        except ServerUnreachable as exc:
            return RuntimeStatus("not_found", self.base_url, "", exc.message, warnings)
        except (ExternalFailure, UserFacingError) as exc:
            return RuntimeStatus("error", self.base_url, "", exc.message, warnings)
        left = timeout_s - (time.monotonic() - started)
        version = self._probe_version(left) if left > 0.05 else ""
        if not version and _PRODUCT_TOKEN.fullmatch(server_header):
            version = server_header  # e.g. "llama.cpp/b4567"; uvicorn says only "uvicorn"
        names = ", ".join(m.name for m in models[:3]) + (", ..." if len(models) > 3 else "")
        detail = (
            f"{len(models)} model{'s' if len(models) != 1 else ''} offered: {names}."
            if models
            else "The server answers but offers no models; load one on the server."
        )
        return RuntimeStatus("available", self.base_url, version, detail, warnings)

    def list_models(self) -> list[RemoteModel]:
        """The models `/v1/models` lists.

        Raises:
            ExternalFailure: the server is down (`ServerUnreachable`), failed, or sent
                something malformed.
            UserFacingError: the server refused the API key.
        """
        return self._fetch_models(self.timeout_s)[0]

    def load(
        self,
        model_path: str,
        options: LoadOptions,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> OpenAIModel:
        """Check that the server offers `model_path` (a model id) and return its handle.

        Nothing loads on our side (the server loads on demand): progress goes 0 → 1 at once.

        Raises:
            LoadCancelled: `cancel` was set before the check.
            UserFacingError: the server does not list this model (the message names those it
                does), or refused the API key.
            ModelLoadFailed: the server is down, failed or answered something malformed.
        """
        if cancel is not None and cancel.cancelled:
            raise LoadCancelled(model_path)
        started = time.monotonic()
        if on_progress is not None:
            on_progress(LoadProgress(0.0, f"Asking {self._host}"))
        try:
            models = self.list_models()
        except ExternalFailure as exc:
            raise ModelLoadFailed(exc.message, exc.details) from exc
        found = next((m for m in models if m.name == model_path), None)
        if found is None:
            offered = ", ".join(repr(m.name) for m in models) or "none"
            raise UserFacingError(
                f"The server at {self.base_url} has no model {model_path!r}. "
                f"It offers: {offered}. Choose one of those, or load the model on the server.",
            )
        info = LoadedModelInfo(
            backend=f"OpenAI-compatible ({self._host})",
            n_ctx=found.context_length or options.n_ctx,
            n_gpu_layers=0,
            n_layers=0,
            n_threads=0,
            architecture="",
            chat_template="server",
            notice="",
            load_time_s=time.monotonic() - started,
        )
        if on_progress is not None:
            on_progress(LoadProgress(1.0, "Ready"))
        return OpenAIModel(self._endpoint, model_path, info)

    def _fetch_models(self, timeout_s: float) -> tuple[list[RemoteModel], str]:
        """The listed models and the `Server` header, or a typed error."""
        client = self._endpoint.client.with_options(timeout=timeout_s)
        try:
            raw = client.models.with_raw_response.list()
            body = raw.http_response.json()
        except Exception as exc:  # mapped below; anything unmapped is re-raised
            mapped = translate_error(exc, base_url=self.base_url, timeout_s=timeout_s)
            if mapped is exc:
                raise
            raise mapped from exc
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise malformed_reply(self.base_url, f"/models without a 'data' list: {body!r:.300}")
        try:
            models = [remote_model_from_entry(e) for e in data if isinstance(e, Mapping)]
        except ValueError as exc:
            raise malformed_reply(self.base_url, str(exc)) from exc
        return models, raw.headers.get("server", "")

    def _probe_version(self, timeout_s: float) -> str:
        """vLLM's `GET /version` ({"version": "0.6.3"}), "" for servers without one."""
        parts = urllib.parse.urlsplit(self.base_url)
        root = parts.path.removesuffix("/v1")
        url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, f"{root}/version", "", ""))
        try:
            response = httpx.get(url, timeout=timeout_s)
            body = response.json() if response.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            return ""
        version = body.get("version") if isinstance(body, dict) else None
        return version if isinstance(version, str) else ""


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _first_int(values: Mapping[str, object], *keys: str) -> int:
    for key in keys:
        value = values.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0


def _format_params(n_params: int) -> str:
    if n_params >= 1_000_000_000:
        return f"{n_params / 1e9:.1f}B"
    return f"{n_params / 1e6:.0f}M"
