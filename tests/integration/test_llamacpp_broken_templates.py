"""Real llama.cpp with chat templates that break: copies of SmolLM2 with another template.

A GGUF chat template is a string in the header, so a copy with another template is the
header rewritten (the string's length prefix changes, then padding restores the alignment of
the tensor data) followed by the original tensor data.
"""

from __future__ import annotations

import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtimes.base import (
    CancelToken,
    ChatMessage,
    ChatRequest,
    Done,
    GenerationParams,
    LoadOptions,
    join_text,
)
from runtimes.errors import ChatTemplateFailed
from runtimes.gguf_header import GGUFTensor, read_header
from runtimes.llamacpp import LlamaCppModel, LlamaCppRuntime

pytestmark = pytest.mark.integration

KEY = "tokenizer.chat_template"
OPTIONS = LoadOptions(n_ctx=512, n_threads=2)
GREEDY = GenerationParams(temperature=0.0, seed=7, max_tokens=12)
QUESTION = (ChatMessage("user", "What is the capital of France?"),)
CHATML_QUESTION = (
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
)
DOES_NOT_COMPILE = "{% for message in messages %}{{ message['content'] }}{% if %}{% endfor %}"
FAILS_ALWAYS = "{{ raise_exception('This template takes no conversations') }}"
ONE_MESSAGE_ONLY = (
    "{% if messages | length > 1 %}{{ raise_exception('Send one message at a time') }}"
    "{% endif %}{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{{ '<|im_start|>assistant\\n' }}"
)


def _gguf_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _tensor_info(tensor: GGUFTensor) -> bytes:
    return (
        _gguf_string(tensor.name)
        + struct.pack("<I", len(tensor.shape))
        + b"".join(struct.pack("<Q", dim) for dim in tensor.shape)
        + struct.pack("<IQ", tensor.ggml_type, tensor.offset)
    )


def with_chat_template(source: Path, target: Path, template: str) -> Path:
    """Copy `source` with its chat template replaced by `template`."""
    header = read_header(source)
    old_template = header.get_str(KEY)
    assert old_template is not None
    string_type = struct.pack("<I", 8)
    old_kv = _gguf_string(KEY) + string_type + _gguf_string(old_template)
    new_kv = _gguf_string(KEY) + string_type + _gguf_string(template)
    last_info = _tensor_info(header.tensors[-1])
    with source.open("rb") as src, target.open("wb") as dst:
        head = src.read(header.data_offset)
        assert head.count(old_kv) == 1
        infos_end = head.rindex(last_info) + len(last_info)  # the rest is alignment padding
        new_head = head[:infos_end].replace(old_kv, new_kv)
        dst.write(new_head + bytes(-len(new_head) % header.alignment))
        shutil.copyfileobj(src, dst, 1 << 20)
    copied = read_header(target)
    assert copied.get_str(KEY) == template and copied.is_complete
    assert [t.offset for t in copied.tensors] == [t.offset for t in header.tensors]
    return target


@pytest.fixture(scope="module")
def runtime() -> LlamaCppRuntime:
    return LlamaCppRuntime()


@pytest.fixture(scope="module")
def templates_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("templates")


def _load(runtime: LlamaCppRuntime, smollm2: Path, folder: Path, template: str) -> LlamaCppModel:
    path = with_chat_template(smollm2, folder / "smollm2.gguf", template)
    try:
        return runtime.load(str(path), OPTIONS)
    finally:
        path.unlink()  # the worker has it open; the next test writes its own copy


@pytest.fixture()
def load_with(
    runtime: LlamaCppRuntime, smollm2_path: Path, templates_dir: Path
) -> Iterator[object]:
    loaded: list[LlamaCppModel] = []

    def load(template: str) -> LlamaCppModel:
        loaded.append(_load(runtime, smollm2_path, templates_dir, template))
        return loaded[-1]

    yield load
    for model in loaded:
        model.unload()


def _ask(model: LlamaCppModel, messages: tuple[ChatMessage, ...]) -> tuple[str, Done]:
    events = list(model.chat(ChatRequest(messages, GREEDY), CancelToken()))
    done = events[-1]
    assert isinstance(done, Done)
    return join_text(events), done


def test_template_that_does_not_compile_falls_back_and_the_model_still_chats(
    load_with,
) -> None:
    model = load_with(DOES_NOT_COMPILE)
    assert model.info.chat_template == "fallback:chatml"
    assert model.info.notice == (
        "This model's chat template could not be used (syntax error on line 1: Expected an "
        "expression, got 'end of statement block'); using the ChatML format, a common default "
        "(architecture: llama)."
    )
    assert model.render_prompt(QUESTION).text == CHATML_QUESTION
    reply, done = _ask(model, QUESTION)
    assert "Paris" in reply and "<|im_" not in reply
    assert done.stats.completion_tokens > 0


def test_template_that_fails_on_every_conversation_falls_back(load_with) -> None:
    model = load_with(FAILS_ALWAYS)
    assert model.info.chat_template == "fallback:chatml"
    assert model.info.notice.startswith(
        "This model's chat template could not be used (it fails on a one-message "
        "conversation: This template takes no conversations); using the ChatML format"
    )
    assert "Paris" in _ask(model, QUESTION)[0]


def test_template_that_rejects_one_conversation_fails_that_request_only(load_with) -> None:
    model = load_with(ONE_MESSAGE_ONLY)
    assert (model.info.chat_template, model.info.notice) == ("gguf", "")
    two_turns = (ChatMessage("system", "Be brief."), *QUESTION)
    with pytest.raises(ChatTemplateFailed) as caught:
        _ask(model, two_turns)
    assert caught.value.message.startswith(
        "This model's chat template failed on this conversation: Send one message at a time. "
    )
    with pytest.raises(ChatTemplateFailed):
        model.render_prompt(two_turns)
    assert model.alive
    assert model.render_prompt(QUESTION).text == CHATML_QUESTION
    assert "Paris" in _ask(model, QUESTION)[0]
