"""Prompt formats for GGUF files without a usable chat template, chosen by architecture.

When a GGUF file has `tokenizer.chat_template`, llama-cpp-python renders that Jinja template
(in its sandboxed environment) and nothing here is used. Otherwise, or when that template
cannot be used (it does not compile, or fails on a one-message conversation: see
`chat_template`), the prompt format is picked from this table:

=====================================  ==========  ==========================================
`general.architecture`                 format      turn layout
=====================================  ==========  ==========================================
gemma, gemma2, gemma3, gemma3n         gemma       `<start_of_turn>user\\n…<end_of_turn>\\n`,
                                                   reply after `<start_of_turn>model\\n`;
                                                   system text folded into the next user turn
llama, when the vocabulary has         llama3      `<|start_header_id|>role<|end_header_id|>`
`<|start_header_id|>`                              `\\n\\n…<|eot_id|>`
anything else (qwen2, llama 2, …)      chatml      `<|im_start|>role\\n…<|im_end|>\\n`
=====================================  ==========  ==========================================

The BOS token is never written into the text: the worker adds it exactly once when the
vocabulary asks for it (see `textstream.normalize_bos`). Each format names the special
tokens that end a reply; the worker stops on them as token ids when the vocabulary has them
as single tokens, and as text otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from runtimes.base import ChatMessage

GGUF_TEMPLATE_KEY = "tokenizer.chat_template"
SOURCE_GGUF = "gguf"
GEMMA_ARCHITECTURES = frozenset({"gemma", "gemma2", "gemma3", "gemma3n"})
LLAMA3_MARKER_TOKEN = "<|start_header_id|>"


@dataclass(frozen=True, slots=True)
class PromptFormat:
    """A built-in prompt format.

    Attributes:
        name: short id, used in `chat_template="fallback:<name>"`.
        label: human name for notices, e.g. "Gemma".
        stop_texts: special tokens that end the assistant's turn (or start a new one).
        render: turns a conversation into the prompt text, ending where the reply begins.
    """

    name: str
    label: str
    stop_texts: tuple[str, ...]
    render: Callable[[Sequence[ChatMessage]], str]


@dataclass(frozen=True, slots=True)
class TemplateChoice:
    """Where a model's prompt format comes from.

    Attributes:
        source: "gguf" (the file's own Jinja template) or "fallback:<name>".
        fallback: the built-in format when `source` is a fallback, else None.
        notice: a sentence for the user when a fallback was chosen, else "".
    """

    source: str
    fallback: PromptFormat | None
    notice: str


def render_gemma(messages: Sequence[ChatMessage]) -> str:
    """Gemma turns; system text goes in front of the next user turn (Gemma has no system role).

    Mirrors the Gemma 3 Hugging Face template: contents are trimmed, "assistant" is "model".
    """
    parts: list[str] = []
    pending_system: list[str] = []
    for message in messages:
        text = message.content.strip()
        if message.role == "system":
            pending_system.append(text)
            continue
        if message.role == "user" and pending_system:
            text = "\n\n".join([*pending_system, text])
            pending_system = []
        role = "model" if message.role == "assistant" else "user"
        parts.append(f"<start_of_turn>{role}\n{text}<end_of_turn>\n")
    if pending_system:  # a system prompt with no user turn after it still reaches the model
        joined = "\n\n".join(pending_system)
        parts.append(f"<start_of_turn>user\n{joined}<end_of_turn>\n")
    parts.append("<start_of_turn>model\n")
    return "".join(parts)


def render_chatml(messages: Sequence[ChatMessage]) -> str:
    """ChatML turns, ending with an open assistant turn."""
    parts = [f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages]
    parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def render_llama3(messages: Sequence[ChatMessage]) -> str:
    """Llama 3 header turns (without `<|begin_of_text|>`, which is the BOS token)."""
    parts = [
        f"<|start_header_id|>{m.role}<|end_header_id|>\n\n{m.content.strip()}<|eot_id|>"
        for m in messages
    ]
    parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(parts)


GEMMA = PromptFormat("gemma", "Gemma", ("<end_of_turn>", "<start_of_turn>"), render_gemma)
CHATML = PromptFormat("chatml", "ChatML", ("<|im_end|>", "<|im_start|>"), render_chatml)
LLAMA3 = PromptFormat("llama3", "Llama 3", ("<|eot_id|>", "<|start_header_id|>"), render_llama3)
FALLBACKS: dict[str, PromptFormat] = {f.name: f for f in (GEMMA, CHATML, LLAMA3)}


def render_prompt_text(
    render: Callable[[Sequence[ChatMessage]], str],
    messages: Sequence[ChatMessage],
    *,
    continue_last: bool = False,
) -> str:
    """The prompt text for a new reply, or for continuing the last (assistant) message.

    To continue, the conversation without its last message is rendered as for a new reply
    (generation prompt included), and that message's text follows verbatim, with no
    end-of-turn after it: the prompt is exactly what the model saw when it wrote that text,
    so it carries on mid-sentence. This works for any template (a GGUF Jinja one or a
    built-in format), unlike cutting a fully rendered conversation after the message, which
    breaks with templates that trim or rewrite assistant turns.

    Args:
        render: a format's renderer (ends with an open assistant turn).
        messages: the conversation; with `continue_last`, its last message is the partial
            assistant reply.
        continue_last: continue the last message instead of starting a new turn.
    """
    if not continue_last:
        return render(messages)
    if not messages or messages[-1].role != "assistant":
        raise ValueError("continue_last needs an assistant message at the end")
    return render(messages[:-1]) + messages[-1].content


def fallback_for(architecture: str, has_token: Callable[[str], bool]) -> PromptFormat:
    """The built-in format for a model of `architecture` whose file has no chat template.

    Args:
        architecture: `general.architecture`, e.g. "gemma3" ("" when unknown).
        has_token: whether the model's vocabulary holds a given special token.
    """
    if architecture in GEMMA_ARCHITECTURES:
        return GEMMA
    if architecture == "llama" and has_token(LLAMA3_MARKER_TOKEN):
        return LLAMA3
    return CHATML


def choose_template(
    architecture: str, has_gguf_template: bool, has_token: Callable[[str], bool]
) -> TemplateChoice:
    """Decide where the prompt format comes from, and what to tell the user about it."""
    if has_gguf_template:
        return TemplateChoice(source=SOURCE_GGUF, fallback=None, notice="")
    chosen = fallback_for(architecture, has_token)
    notice = (
        f"This model file has no chat template; using the {chosen.label} format"
        f"{_why(chosen, architecture)}."
    )
    return TemplateChoice(source=f"fallback:{chosen.name}", fallback=chosen, notice=notice)


def replace_broken_template(
    architecture: str, has_token: Callable[[str], bool], reason: str
) -> TemplateChoice:
    """The built-in format for a model whose own chat template cannot be used, and the notice.

    Args:
        architecture: `general.architecture` ("" when unknown).
        has_token: whether the model's vocabulary holds a given special token.
        reason: why the template cannot be used, short, e.g. "syntax error on line 1: …".
    """
    chosen = fallback_for(architecture, has_token)
    notice = (
        f"This model's chat template could not be used ({reason}); using the "
        f"{chosen.label} format{_why(chosen, architecture)}."
    )
    return TemplateChoice(source=f"fallback:{chosen.name}", fallback=chosen, notice=notice)


def _why(chosen: PromptFormat, architecture: str) -> str:
    """Why that format: the architecture's own, or ChatML as a common default."""
    arch = architecture or "unknown"
    if chosen is CHATML and architecture not in ("qwen2", "qwen3"):
        return f", a common default (architecture: {arch})"
    return f" for its architecture ({arch})"


def fallback_by_source(source: str) -> PromptFormat | None:
    """The built-in format named by a `fallback:<name>` source; None for "gguf".

    Raises:
        KeyError: `source` names no known fallback.
    """
    if source == SOURCE_GGUF:
        return None
    prefix, _, name = source.partition(":")
    if prefix != "fallback":
        raise KeyError(source)
    return FALLBACKS[name]
