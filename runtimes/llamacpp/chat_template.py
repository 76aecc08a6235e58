"""Worker side: a GGUF file's own Jinja chat template, checked at load, failing politely.

A template from a model file is foreign code: it may not compile, it may raise on every
conversation, or only on some (many templates reject a system turn or two user turns in a
row). None of that may end the worker. A template that cannot render even a one-message
conversation is replaced at load by the architecture's built-in format (`templates`); a
conversation that one template rejects becomes `TemplateRenderError` for that request.

Runs only inside the worker process (it imports llama_cpp).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import jinja2

from runtimes.base import ChatMessage

_PROBE = (ChatMessage("user", "Hello"),)
_REASON_CHARS = 160


class TemplateRenderError(Exception):
    """The model's chat template raised while rendering a conversation.

    The message is a short reason (Jinja's own words), without a trailing period.
    """


class TemplateUnusable(Exception):
    """The model's chat template cannot be used at all; the message says why, briefly."""


def short_reason(exc: BaseException) -> str:
    """One line about a template failure: Jinja's message, its line, clipped."""
    if isinstance(exc, jinja2.TemplateSyntaxError):  # also TemplateAssertionError
        what = "syntax error" if type(exc) is jinja2.TemplateSyntaxError else "error"
        text = f"{what} on line {exc.lineno}: {exc.message or 'no details'}"
    else:
        lines = str(exc).strip().splitlines()
        text = lines[0] if lines else type(exc).__name__
    text = text.rstrip(". ")
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"


class GGUFTemplate:
    """A model's Jinja chat template, rendered exactly as llama-cpp-python renders it.

    Args:
        template: the `tokenizer.chat_template` text.
        bos_text, eos_text: the vocabulary's BOS and EOS token texts ("" when absent).
        eos_id: the EOS token id.

    Raises:
        TemplateUnusable: the template does not compile, or fails on a one-message chat.
    """

    def __init__(self, template: str, *, bos_text: str, eos_text: str, eos_id: int) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        try:
            self._formatter: Any = Jinja2ChatFormatter(
                template=template,
                eos_token=eos_text,
                bos_token=bos_text,
                stop_token_ids=[eos_id],
            )
        # Jinja raises TemplateSyntaxError mostly, but a pathological template can also hit
        # RecursionError or others while compiling: every one means "cannot be used".
        except Exception as exc:
            raise TemplateUnusable(short_reason(exc)) from exc
        try:
            self.render(_PROBE)
        except TemplateRenderError as exc:
            raise TemplateUnusable(f"it fails on a one-message conversation: {exc}") from exc

    def render(self, messages: Sequence[ChatMessage]) -> str:
        """The prompt text for a conversation, ending where the reply begins.

        Raises:
            TemplateRenderError: the template raised for this conversation.
        """
        wire = [{"role": m.role, "content": m.content} for m in messages]
        try:
            return str(self._formatter(messages=wire).prompt)
        # A template is foreign code run in Jinja's sandbox: it raises TemplateError,
        # raise_exception()'s own errors, TypeError, ZeroDivisionError, ... all mean "rejected".
        except Exception as exc:
            raise TemplateRenderError(short_reason(exc)) from exc


class _UnusableFormatter:
    """Stands in for a template `Llama()` could not compile; `GGUFTemplate` reports why."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    def to_chat_handler(self) -> Any:
        """A chat handler that fails as the template did (the workbench never calls it)."""
        error = self._error

        def handler(*_args: object, **_kwargs: object) -> Any:
            raise error

        return handler


@contextmanager
def tolerant_template_compile() -> Iterator[None]:
    """While `llama_cpp.Llama()` runs, let a chat template that does not compile pass.

    `Llama.__init__` compiles every `tokenizer.chat_template*` of the file after loading
    the weights, and a Jinja syntax error there escapes the constructor: the model would
    be lost for a template the workbench checks and replaces itself (`GGUFTemplate`). So,
    in the worker only, llama-cpp-python's formatter class is wrapped for the constructor's
    duration.
    """
    from llama_cpp import llama_chat_format

    original = llama_chat_format.Jinja2ChatFormatter

    def build(*args: Any, **kwargs: Any) -> Any:
        try:
            return original(*args, **kwargs)
        # Any failure to compile is reported by GGUFTemplate with its reason; see there.
        except Exception as exc:  # noqa: BLE001
            return _UnusableFormatter(exc)

    llama_chat_format.Jinja2ChatFormatter = build
    try:
        yield
    finally:
        llama_chat_format.Jinja2ChatFormatter = original
