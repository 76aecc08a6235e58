"""The Ollama runtime's errors: what each failure of the server or the connection tells the user."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import ollama

from runtimes.errors import ExternalFailure, UserFacingError, WorkbenchError


def not_running(url: str) -> ExternalFailure:
    """Nothing accepts connections at `url`."""
    return ExternalFailure(
        f"Ollama is not running at {url}. Start it with `ollama serve` (or the Ollama app), "
        "or install it from ollama.com."
    )


def timed_out(url: str, seconds: float) -> ExternalFailure:
    """The server accepted the request but sent nothing for `seconds`."""
    return ExternalFailure(
        f"Ollama did not answer within {seconds:g} s (at {url}). It may be loading a large "
        "model or be overloaded; try again, or raise the timeout in the runtime settings."
    )


def dropped(url: str, reason: str) -> ExternalFailure:
    """The connection ended before the reply did."""
    return ExternalFailure(
        f"The connection to Ollama at {url} broke before the reply was complete. The reply "
        "so far is kept; try again (check that the server is still running).",
        details=reason,
    )


def malformed(what: str) -> ExternalFailure:
    """The server sent something that is not Ollama's protocol."""
    return ExternalFailure(
        "Ollama sent a malformed reply. The reply so far is kept; try again, and update "
        "Ollama if it keeps happening.",
        details=what[:500],
    )


def no_such_model(name: str) -> UserFacingError:
    """The server does not have `name`."""
    return UserFacingError(f"Ollama has no model {name}; pull it first (`ollama pull {name}`).")


def error_text(body: str) -> str:
    """The `error` of an Ollama error body (`{"error": "..."}`), else the body itself."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body.strip()[:300] or "no reason given"
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        return str(parsed["error"])
    return body.strip()[:300] or "no reason given"


class OllamaServerError(ExternalFailure):
    """Ollama itself reported a failure: an HTTP 5xx, or `{"error": ...}` inside a reply.

    Attributes:
        reason: the server's own words.
    """

    def __init__(self, reason: str, status: int | None = None, details: str = "") -> None:
        where = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"Ollama failed: {reason.rstrip('.')}{where}.", details=details[:2000])
        self.reason = reason


def http_error(status: int, reason: str, model: str, details: str = "") -> WorkbenchError:
    """The error for an HTTP error status from Ollama (404 on a model: the user's to fix)."""
    if status == 404 and model and "not found" in reason:
        return no_such_model(model)
    if 400 <= status < 500:
        return UserFacingError(f"Ollama refused the request: {reason} (HTTP {status}).")
    return OllamaServerError(reason, status, details)


@contextmanager
def client_errors(url: str, timeout_s: float, model: str = "") -> Iterator[None]:
    """Turn the failures of one `ollama.Client` request into the workbench's errors."""
    try:
        yield
    except ollama.ResponseError as exc:
        detail = json.dumps({"error": exc.error})
        raise http_error(exc.status_code, exc.error, model, detail) from None
    except ConnectionError:  # what ollama.Client makes of httpx.ConnectError
        raise not_running(url) from None
    except httpx.ConnectTimeout:
        raise not_running(url) from None
    except httpx.TimeoutException:
        raise timed_out(url, timeout_s) from None
    except httpx.HTTPError as exc:
        raise ExternalFailure(f"Talking to Ollama at {url} failed: {exc}.") from None
    except ValueError as exc:  # bad JSON, or JSON that does not fit the client's models
        raise malformed(str(exc)) from None
