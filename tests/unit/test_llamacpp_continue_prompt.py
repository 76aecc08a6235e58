"""Continuing a cut reply: the prompt ends with the partial assistant text, left open."""

from __future__ import annotations

import pytest
from llama_cpp.llama_chat_format import LLAMA3_INSTRUCT_CHAT_TEMPLATE

from runtimes.base import ChatMessage, ChatRequest
from runtimes.llamacpp import protocol
from runtimes.llamacpp.chat_template import GGUFTemplate
from runtimes.llamacpp.protocol import ProtocolError
from runtimes.llamacpp.templates import render_chatml, render_gemma, render_prompt_text

HEAD = (ChatMessage("system", "Be brief."), ChatMessage("user", "Why is the sky blue?"))
PARTIAL = ChatMessage("assistant", "Because air scatters ")
CUT = (*HEAD, PARTIAL)


def test_chatml_continue_prompt_is_the_new_reply_prompt_then_the_partial_text() -> None:
    text = render_prompt_text(render_chatml, CUT, continue_last=True)
    assert text == render_chatml(HEAD) + "Because air scatters "
    assert text.endswith("<|im_start|>assistant\nBecause air scatters ")
    assert text.count("<|im_start|>assistant") == 1  # no new turn


def test_gemma_continue_keeps_the_partial_text_verbatim_with_its_trailing_space() -> None:
    # Gemma's renderer trims turns; the partial reply must not be trimmed, or the model
    # would continue "scatters" into "scattersblue".
    text = render_prompt_text(render_gemma, CUT, continue_last=True)
    assert text.endswith("<end_of_turn>\n<start_of_turn>model\nBecause air scatters ")
    assert not text.endswith("<end_of_turn>\n")


def test_gguf_jinja_template_continue_prompt_leaves_the_assistant_turn_open() -> None:
    # A file's own Jinja template (Llama 3's, which trims contents): the partial text follows
    # the generation prompt untrimmed, with no <|eot_id|> after it.
    template = GGUFTemplate(
        LLAMA3_INSTRUCT_CHAT_TEMPLATE, bos_text="<|begin_of_text|>", eos_text="<|eot_id|>", eos_id=2
    )
    opener = "<|start_header_id|>assistant<|end_header_id|>\n\n"
    text = render_prompt_text(template.render, CUT, continue_last=True)
    assert text == template.render(HEAD) + "Because air scatters "
    assert text.rpartition(opener)[2] == "Because air scatters "
    assert text.count(opener) == 1
    # Without continue_last the same messages close the partial turn and open a new one.
    assert template.render(CUT).endswith("Because air scatters<|eot_id|>" + opener)


def test_without_continue_last_the_conversation_renders_as_before() -> None:
    assert render_prompt_text(render_chatml, CUT) == render_chatml(CUT)


def test_continue_needs_an_assistant_message_at_the_end() -> None:
    with pytest.raises(ValueError, match="assistant message at the end"):
        render_prompt_text(render_chatml, HEAD, continue_last=True)
    with pytest.raises(ValueError, match="assistant message at the end"):
        ChatRequest(HEAD, continue_last=True)
    with pytest.raises(ValueError, match="assistant message at the end"):
        ChatRequest((), continue_last=True)
    assert ChatRequest(CUT, continue_last=True).continue_last


def test_continue_flag_on_the_wire_is_optional_and_must_be_a_boolean() -> None:
    assert protocol.get_flag({"op": "chat"}, "continue_last") is False
    assert protocol.get_flag({"op": "chat", "continue_last": True}, "continue_last") is True
    with pytest.raises(ProtocolError):
        protocol.get_flag({"op": "chat", "continue_last": 1}, "continue_last")
