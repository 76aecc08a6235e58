"""`OllamaRuntime`: an Ollama server through the official `ollama` client (httpx for streams).

Short requests (tags, show, ps, delete, unload) go through `ollama.Client`; streamed ones
(chat, pull, the load's preload) through `ollama_stream.NdjsonStream`, which can stop a read
that waits on a silent server. Every failure becomes `UserFacingError` or `ExternalFailure`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

import httpx
import ollama

from runtimes.base import (
    CancelToken,
    LoadOptions,
    LoadProgress,
    ProgressCallback,
    RemoteModel,
    RuntimeStatus,
)
from runtimes.errors import ExternalFailure, LoadCancelled, ModelLoadFailed, UserFacingError
from runtimes.ollama_endpoint import (
    OllamaEndpoint,
    fetch_version,
    parse_ollama_host,
    probe_status,
)
from runtimes.ollama_errors import (
    OllamaServerError,
    client_errors,
    dropped,
    malformed,
    not_running,
    timed_out,
)
from runtimes.ollama_model import OllamaModel, keep_alive_value
from runtimes.ollama_stream import OllamaConnection
from runtimes.ollama_types import (
    OllamaModelDetails,
    PullProgress,
    RunningModel,
    build_info,
    full_name,
    load_options,
)

__all__ = [
    "OllamaModel",
    "OllamaModelDetails",
    "OllamaRuntime",
    "PullProgress",
    "RunningModel",
]

T = TypeVar("T")
_LOADING = "loading in Ollama"


class OllamaRuntime:
    """Models held by an Ollama server.

    Args:
        host: the server (`OLLAMA_HOST` syntax); None reads `OLLAMA_HOST`, else the default
            http://127.0.0.1:11434.
        timeout_s: the connect timeout, and the read timeout of short requests.
        read_timeout_s: the longest silence allowed inside a streamed reply or a load
            (a big model's load or a long prompt on a CPU can take minutes).

    Raises:
        UserFacingError: `host` is not an address (a bad `OLLAMA_HOST` only adds a warning).
    """

    name = "ollama"

    def __init__(
        self, host: str | None = None, timeout_s: float = 5.0, *, read_timeout_s: float = 300.0
    ) -> None:
        self._config_warnings: tuple[str, ...] = ()
        if host is None:
            try:
                endpoint = parse_ollama_host(os.environ.get("OLLAMA_HOST"))
            except UserFacingError as exc:
                endpoint = parse_ollama_host(None)
                self._config_warnings = (f"OLLAMA_HOST is ignored: {exc.message}",)
        else:
            endpoint = parse_ollama_host(host)
        self._endpoint: OllamaEndpoint = endpoint
        self.endpoint = endpoint.url
        self.timeout_s = timeout_s
        self._client = ollama.Client(host=endpoint.url, timeout=timeout_s)
        self._connection = OllamaConnection(
            endpoint.url, connect_timeout_s=timeout_s, read_timeout_s=read_timeout_s
        )

    def close(self) -> None:
        """Close the HTTP connections (handles of loaded models stop working)."""
        self._client.close()  # type: ignore[no-untyped-call]  # ollama leaves it unannotated
        self._connection.close()

    def status(self, timeout_s: float = 2.0) -> RuntimeStatus:
        """Ask `/api/version` whether a server is there; never raises nor waits past `timeout_s`."""
        return probe_status(self._connection.http, self._endpoint, timeout_s, self._config_warnings)

    def list_models(self) -> list[RemoteModel]:
        """The server's models (`/api/tags`): name, disk size, family, parameters, quantization.

        Raises:
            ExternalFailure: the server is down, failed, or answered something malformed.
        """
        listing = self._call(self._client.list)
        models = []
        for entry in listing.models:
            details = entry.details
            models.append(
                RemoteModel(
                    name=entry.model or "",
                    size_bytes=int(entry.size or 0),
                    family=(details.family or "") if details else "",
                    parameter_size=(details.parameter_size or "") if details else "",
                    quantization=(details.quantization_level or "") if details else "",
                )
            )
        return models

    def show(self, name: str) -> OllamaModelDetails:
        """What the server says about model `name` (`/api/show`).

        Raises:
            UserFacingError: the server has no such model.
            ExternalFailure: the server is down, failed, or answered something malformed.
        """
        shown = self._call(lambda: self._client.show(name), model=name)
        info = dict(shown.modelinfo or {})
        details = shown.details
        architecture = info.get("general.architecture")
        arch = architecture if isinstance(architecture, str) else ""
        return OllamaModelDetails(
            name=name,
            architecture=arch,
            family=(details.family or "") if details else "",
            parameter_size=(details.parameter_size or "") if details else "",
            quantization=(details.quantization_level or "") if details else "",
            context_length=_int_or_zero(info.get(f"{arch}.context_length")),
            n_layers=_int_or_zero(info.get(f"{arch}.block_count")),
            has_template=bool(shown.template),
            capabilities=tuple(shown.capabilities or ()),
        )

    def pull(
        self, name: str, on_progress: Callable[[PullProgress], None], cancel: CancelToken
    ) -> None:
        """Download `name` into the server, reporting each step; returns early on cancel.

        A cancelled pull leaves its partial layers on the server, which resumes them next time.

        Raises:
            ExternalFailure: the server could not pull it (unknown name: its own words), is
                down, timed out, or broke off.
        """
        last = ""
        body = {"model": name, "name": name, "stream": True}  # "name": servers before 0.4
        with self._connection.stream("/api/pull", body, model=name) as stream:
            try:
                for chunk in stream.chunks(cancel):
                    progress = PullProgress(
                        status=str(chunk.get("status", "")),
                        digest=str(chunk.get("digest", "")),
                        completed=_int_or_zero(chunk.get("completed")),
                        total=_int_or_zero(chunk.get("total")),
                    )
                    last = progress.status
                    on_progress(progress)
            except OllamaServerError as exc:
                raise ExternalFailure(
                    f"Ollama could not pull {name}: {exc.reason}. Check the name "
                    "(ollama.com/library lists them) and the server's internet access.",
                    details=exc.details,
                ) from None
        if not cancel.cancelled and last != "success":
            raise dropped(self.endpoint, f"the pull ended after {last!r}, not 'success'")

    def running(self) -> list[RunningModel]:
        """The models the server holds in memory now (`/api/ps`), with their VRAM share.

        Raises:
            ExternalFailure: the server is down, failed, or answered something malformed.
        """
        listing = self._call(self._client.ps)
        return [
            RunningModel(
                name=entry.name or entry.model or "",
                size_bytes=int(entry.size or 0),
                size_vram_bytes=int(entry.size_vram or 0),
                expires_at=entry.expires_at,
                context_length=entry.context_length or 0,
            )
            for entry in listing.models
        ]

    def unload(self, name: str) -> None:
        """Make the server free `name`'s memory now (`keep_alive: 0`).

        Raises:
            UserFacingError: the server has no such model.
            ExternalFailure: the server is down or failed.
        """
        self._call(lambda: self._client.generate(model=name, keep_alive=0), model=name)

    def delete(self, name: str) -> None:
        """Delete `name` from the server's disk.

        Raises:
            UserFacingError: the server has no such model.
            ExternalFailure: the server is down or failed.
        """
        self._call(lambda: self._client.delete(name), model=name)

    def load(
        self,
        model_path: str,
        options: LoadOptions,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> OllamaModel:
        """Have the server load model `model_path` (an Ollama name) now, and time it.

        Raises:
            UserFacingError: the server has no such model (pull it first).
            LoadCancelled: `cancel` was set before the server finished loading.
            ModelLoadFailed: the server could not load it (e.g. not enough memory).
            ExternalFailure: the server is down, broke off, or timed out.
        """
        name = model_path.strip()
        if not name:
            raise UserFacingError("Choose an Ollama model to load.")
        report = on_progress or (lambda _progress: None)
        details = self.show(name)
        version = self._version()
        report(LoadProgress(0.0, _LOADING))
        opts = load_options(options)
        keep_alive = keep_alive_value(options.keep_alive_s)
        body: dict[str, object] = {"model": name, "stream": False, "options": opts}
        if keep_alive is not None:
            body["keep_alive"] = keep_alive
        started = time.perf_counter()
        try:
            with self._connection.stream("/api/generate", body, model=name) as stream:
                answered = any(True for _chunk in stream.chunks(cancel))
        except OllamaServerError as exc:  # e.g. not enough memory for it
            raise ModelLoadFailed(
                f"Ollama could not load {name}: {exc.reason}. Free memory (unload other "
                "models), or choose a smaller model or context.",
                details=exc.details,
            ) from None
        if cancel is not None and cancel.cancelled:
            raise LoadCancelled(name)
        if not answered:
            raise dropped(self.endpoint, "the load request got an empty reply")
        load_time_s = time.perf_counter() - started
        held = {model.name: model for model in self.running()}
        info = build_info(
            version=version,
            details=details,
            options=options,
            running=held.get(full_name(name)) or held.get(name),
            load_time_s=load_time_s,
        )
        report(LoadProgress(1.0, _LOADING))
        return OllamaModel(
            self._connection,
            name,
            info,
            load_options=opts,
            keep_alive=keep_alive,
            unload=self.unload,
        )

    def _version(self) -> str:
        """The server's version (for a loaded model's backend label)."""
        try:
            return fetch_version(self._connection.http, self.timeout_s)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise not_running(self.endpoint) from None
        except httpx.TimeoutException:
            raise timed_out(self.endpoint, self.timeout_s) from None
        except httpx.HTTPError as exc:
            raise ExternalFailure(f"Talking to Ollama at {self.endpoint} failed: {exc}.") from None
        except ValueError as exc:
            raise malformed(str(exc)) from None

    def _call(self, request: Callable[[], T], *, model: str = "") -> T:
        """Run one `ollama.Client` request, turning its failures into the workbench's errors."""
        with client_errors(self.endpoint, self.timeout_s, model):
            result = request()
        return result


def _int_or_zero(value: object) -> int:
    """`value` when it is a non-negative integer, else 0 (fields servers may leave out)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value
