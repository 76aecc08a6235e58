"""Turns the `openai` SDK's exceptions into the workbench's typed, readable errors."""

from __future__ import annotations

import json
from collections.abc import Mapping

import openai
import pydantic

from runtimes.errors import ExternalFailure, UserFacingError, WorkbenchError


class ServerUnreachable(ExternalFailure):
    """Nothing answers at the endpoint's address (refused, unknown host, no route)."""


class ServerTimedOut(ExternalFailure):
    """The server accepted the request but did not answer within the timeout."""


class MalformedReply(ExternalFailure):
    """The server's reply was not the JSON (or server-sent events) the protocol promises."""


def unreachable_message(base_url: str) -> str:
    """The sentence for a server that does not answer at all."""
    return (
        f"No server answers at {base_url}. "
        "Start it (vLLM, llama-server, LM Studio) or check the URL."
    )


def malformed_reply(base_url: str, what: str) -> MalformedReply:
    """The error for a reply we cannot read; `what` says what was wrong, for the details."""
    return MalformedReply(
        f"The server at {base_url} sent a malformed reply. "
        "Check that the URL points at an OpenAI-compatible API (it usually ends in /v1).",
        details=what,
    )


def translate_error(
    exc: Exception,
    *,
    base_url: str,
    timeout_s: float,
    model: str = "",
    mid_stream: bool = False,
) -> Exception:
    """The workbench error for an exception raised by the SDK; `exc` itself when not ours.

    Args:
        exc: what the SDK (or the JSON decoder under it) raised.
        base_url: the endpoint, for the message.
        timeout_s: the timeout in effect, for the message.
        model: the model asked for, for a 404.
        mid_stream: True once the reply had started (the connection dropped, not refused).
    """
    if isinstance(exc, WorkbenchError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return ServerTimedOut(
            f"The server at {base_url} did not answer within {timeout_s:g} s. "
            "It may be busy or still loading the model; try again, or raise the timeout.",
        )
    if isinstance(exc, openai.APIConnectionError):
        if mid_stream:
            return ExternalFailure(
                f"The connection to {base_url} dropped in the middle of the reply. "
                "The text so far is kept; check the server and try again.",
                details=_cause_text(exc),
            )
        return ServerUnreachable(unreachable_message(base_url), details=_cause_text(exc))
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc, base_url=base_url, model=model)
    if isinstance(exc, openai.APIResponseValidationError | pydantic.ValidationError):
        return malformed_reply(base_url, str(exc))
    if isinstance(exc, openai.APIError):
        # An error event inside the stream (`data: {"error": ...}`), as vLLM sends.
        return ExternalFailure(
            f"The server at {base_url} reported an error in the middle of the reply: {exc.message}",
        )
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return malformed_reply(base_url, str(exc))
    return exc


def _status_error(exc: openai.APIStatusError, *, base_url: str, model: str) -> WorkbenchError:
    code = exc.status_code
    said = server_message(exc.body) or exc.response.reason_phrase
    if code in (401, 403):
        return UserFacingError(
            f"The server at {base_url} refused the API key (HTTP {code}: {said}). "
            "Check the key saved for this endpoint.",
        )
    if code == 404:
        subject = f"no model {model!r}" if model else "nothing at this address"
        return UserFacingError(
            f"The server at {base_url} has {subject} (HTTP 404: {said}). "
            "Choose a model it lists, or check the URL.",
        )
    if code in (400, 422):
        return UserFacingError(
            f"The server at {base_url} rejected the request (HTTP {code}): {said}. "
            "Shorten the conversation or change the generation options.",
        )
    return ExternalFailure(
        f"The server at {base_url} failed (HTTP {code}): {said}",
        details=str(exc.body),
    )


def server_message(body: object) -> str:
    """The human part of an error body: OpenAI's `message`, FastAPI's `detail`, or the text."""
    if isinstance(body, Mapping):
        for key in ("message", "detail", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, Mapping):
                return server_message(value)
        return ""
    if isinstance(body, str):
        return body.strip()[:300]
    return ""


def _cause_text(exc: BaseException) -> str:
    cause = exc.__cause__
    return f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
