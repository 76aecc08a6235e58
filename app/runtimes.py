"""The runtimes the workbench knows: llama.cpp, Ollama, saved OpenAI-compatible servers."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import cast

from app.errors import UserFacingError
from app.settings import Settings
from runtimes.base import Runtime, RuntimeStatus, ServerRuntime
from runtimes.llamacpp import LlamaCppRuntime, wheel_backend

RUNTIME_KINDS = ("llamacpp", "ollama", "openai")


@dataclass(frozen=True, slots=True)
class RuntimeEntry:
    """One runtime as the user sees it: its kind, a label, where it is, and how it is doing.

    Attributes:
        key: unique id ("llamacpp", "ollama", "openai:<endpoint name>").
        kind: "llamacpp", "ollama" or "openai".
        label: what the UI shows ("llama.cpp", "Ollama", "my vLLM box").
        status: the last status check.
    """

    key: str
    kind: str
    label: str
    status: RuntimeStatus


def llamacpp_status() -> RuntimeStatus:
    """llama-cpp-python's presence, version and build backend, without loading it."""
    if importlib.util.find_spec("llama_cpp") is None:
        return RuntimeStatus(
            state="not_found",
            endpoint="",
            version="",
            detail="llama-cpp-python is not installed: run ./workbench.sh to build it.",
        )
    version = importlib.metadata.version("llama-cpp-python")
    backend = wheel_backend()
    return RuntimeStatus(
        state="available",
        endpoint="",
        version=version,
        detail=f"llama.cpp in a worker process per model · built for {backend}",
    )


def ollama_runtime(host: str | None = None) -> ServerRuntime:
    """An Ollama runtime for `host` (None: `OLLAMA_HOST` or the default)."""
    from runtimes.ollama import OllamaRuntime

    return OllamaRuntime(host=host)


def openai_runtime(base_url: str, api_key: str = "", label: str = "openai") -> ServerRuntime:
    """An OpenAI-compatible runtime at `base_url`."""
    from runtimes.openai_compat import OpenAICompatRuntime

    return OpenAICompatRuntime(base_url=base_url, api_key=api_key, name=label)


class RuntimeRegistry:
    """Builds runtimes by key and reports their states.

    Args:
        endpoints: saved OpenAI-compatible endpoints as (name, base_url) pairs.
        endpoint_runtime: builds the runtime of a saved endpoint by name (with its API key);
            default: `openai_runtime` on the pair's URL, without a key.
        ollama_host: overrides `OLLAMA_HOST`.
    """

    def __init__(
        self,
        endpoints: Iterable[tuple[str, str]] = (),
        endpoint_runtime: Callable[[str], Runtime] | None = None,
        ollama_host: str | None = None,
    ) -> None:
        self._endpoints = dict(endpoints)
        self._endpoint_runtime = endpoint_runtime
        self._ollama_host = ollama_host
        self._llamacpp: LlamaCppRuntime | None = None

    def runtime_keys(self) -> list[str]:
        """Every runtime key, llama.cpp first, then Ollama, then saved endpoints by name."""
        return ["llamacpp", "ollama", *(f"openai:{name}" for name in sorted(self._endpoints))]

    def get(self, key: str) -> Runtime:
        """The runtime for `key`.

        Raises:
            UserFacingError: no such runtime or endpoint.
        """
        if key == "llamacpp":
            if self._llamacpp is None:
                self._llamacpp = LlamaCppRuntime()
            return self._llamacpp
        if key == "ollama":
            return ollama_runtime(self._ollama_host)
        if key.startswith("openai:"):
            name = key.split(":", 1)[1]
            if name not in self._endpoints:
                known = ", ".join(sorted(self._endpoints)) or "none saved yet"
                raise UserFacingError(f"No saved endpoint named “{name}” (saved: {known}).")
            if self._endpoint_runtime is not None:
                return self._endpoint_runtime(name)
            return openai_runtime(self._endpoints[name], "", f"openai:{name}")
        raise UserFacingError(
            f"Unknown runtime “{key}”: use llamacpp, ollama, or openai:<saved endpoint>."
        )

    def status(self, key: str, timeout_s: float = 2.0) -> RuntimeEntry:
        """Check one runtime (never raises for a runtime that is merely down)."""
        if key == "llamacpp":
            return RuntimeEntry(key, "llamacpp", "llama.cpp", llamacpp_status())
        runtime = cast(ServerRuntime, self.get(key))
        status = runtime.status(timeout_s)
        if key == "ollama":
            return RuntimeEntry(key, "ollama", "Ollama", status)
        return RuntimeEntry(key, "openai", key.split(":", 1)[1], status)

    def statuses(self, timeout_s: float = 2.0) -> list[RuntimeEntry]:
        """Every runtime's state, in `runtime_keys()` order."""
        return [self.status(key, timeout_s) for key in self.runtime_keys()]


def registry_for(settings: Settings) -> RuntimeRegistry:
    """The runtimes, with the OpenAI-compatible endpoints saved in `settings` (keys from the
    keyring, or kept for this session where the system has none)."""
    from app.endpoints import EndpointStore

    store = EndpointStore(settings)
    return RuntimeRegistry(
        endpoints=[(e.name, e.base_url) for e in store.list()],
        endpoint_runtime=store.runtime_for,
    )
