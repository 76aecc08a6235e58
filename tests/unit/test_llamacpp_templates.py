"""The fallback prompt formats for GGUF files without a chat template (no llama.cpp needed)."""

from __future__ import annotations

import pytest

from runtimes.base import ChatMessage
from runtimes.llamacpp.templates import (
    CHATML,
    GEMMA,
    LLAMA3,
    choose_template,
    fallback_by_source,
    fallback_for,
    render_chatml,
    render_gemma,
    render_llama3,
    replace_broken_template,
)


def _no_tokens(_token: str) -> bool:
    return False


def test_gemma_folds_system_prompt_into_first_user_turn() -> None:
    messages = (ChatMessage("system", "Be brief."), ChatMessage("user", "  Hi there \n"))
    assert render_gemma(messages) == (
        "<start_of_turn>user\nBe brief.\n\nHi there<end_of_turn>\n<start_of_turn>model\n"
    )


def test_gemma_names_assistant_turns_model_and_ends_with_open_model_turn() -> None:
    messages = (
        ChatMessage("user", "Hello"),
        ChatMessage("assistant", "Hi!"),
        ChatMessage("user", "Bye"),
    )
    assert render_gemma(messages) == (
        "<start_of_turn>user\nHello<end_of_turn>\n"
        "<start_of_turn>model\nHi!<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_gemma_keeps_a_lone_system_prompt_as_a_user_turn() -> None:
    assert render_gemma((ChatMessage("system", "Rules"),)) == (
        "<start_of_turn>user\nRules<end_of_turn>\n<start_of_turn>model\n"
    )


def test_gemma_text_never_contains_bos() -> None:
    assert "<bos>" not in render_gemma((ChatMessage("user", "x"),))


def test_chatml_layout() -> None:
    messages = (ChatMessage("system", "S"), ChatMessage("user", "U"))
    assert render_chatml(messages) == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    )


def test_llama3_layout() -> None:
    assert render_llama3((ChatMessage("user", "U "),)) == (
        "<|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


@pytest.mark.parametrize("arch", ["gemma", "gemma2", "gemma3", "gemma3n"])
def test_gemma_family_gets_gemma_format(arch: str) -> None:
    assert fallback_for(arch, _no_tokens) is GEMMA


def test_llama_with_header_tokens_gets_llama3() -> None:
    assert fallback_for("llama", lambda t: t == "<|start_header_id|>") is LLAMA3


def test_llama_without_header_tokens_gets_chatml() -> None:
    assert fallback_for("llama", _no_tokens) is CHATML


@pytest.mark.parametrize("arch", ["qwen2", "phi3", "mistral", ""])
def test_other_architectures_get_chatml(arch: str) -> None:
    assert fallback_for(arch, lambda _t: True) is CHATML


def test_file_template_wins_and_needs_no_notice() -> None:
    choice = choose_template("gemma3", True, _no_tokens)
    assert (choice.source, choice.fallback, choice.notice) == ("gguf", None, "")


def test_missing_template_gives_fallback_source_and_notice() -> None:
    choice = choose_template("gemma3", False, _no_tokens)
    assert choice.source == "fallback:gemma"
    assert choice.fallback is GEMMA
    assert choice.notice == (
        "This model file has no chat template; using the Gemma format for its architecture "
        "(gemma3)."
    )


def test_unknown_architecture_notice_says_default() -> None:
    choice = choose_template("", False, _no_tokens)
    assert choice.source == "fallback:chatml"
    assert "a common default (architecture: unknown)" in choice.notice


def test_fallback_by_source_round_trips() -> None:
    assert fallback_by_source("gguf") is None
    for fmt in (GEMMA, CHATML, LLAMA3):
        assert fallback_by_source(f"fallback:{fmt.name}") is fmt
    with pytest.raises(KeyError):
        fallback_by_source("fallback:nope")
    with pytest.raises(KeyError):
        fallback_by_source("weird")


def test_each_format_stops_on_its_turn_tokens() -> None:
    assert GEMMA.stop_texts == ("<end_of_turn>", "<start_of_turn>")
    assert CHATML.stop_texts == ("<|im_end|>", "<|im_start|>")
    assert LLAMA3.stop_texts == ("<|eot_id|>", "<|start_header_id|>")


def test_broken_gguf_template_is_replaced_by_the_architecture_format_with_its_reason() -> None:
    choice = replace_broken_template("gemma3", _no_tokens, "syntax error on line 1: oops")
    assert (choice.source, choice.fallback) == ("fallback:gemma", GEMMA)
    assert choice.notice == (
        "This model's chat template could not be used (syntax error on line 1: oops); "
        "using the Gemma format for its architecture (gemma3)."
    )


def test_broken_template_of_a_llama_without_header_tokens_says_chatml_is_a_default() -> None:
    choice = replace_broken_template("llama", _no_tokens, "it fails")
    assert (choice.source, choice.fallback) == ("fallback:chatml", CHATML)
    assert choice.notice.endswith(
        "(it fails); using the ChatML format, a common default (architecture: llama)."
    )
