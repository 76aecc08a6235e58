"""Continuing a cut reply on OpenAI-compatible servers: what is sent, and who takes it.

vLLM continues the final assistant message when the body says `continue_final_message: true,
add_generation_prompt: false` (its "extra parameters for the chat API"); llama-server
continues it by default and reads the same two fields in newer builds. llama-cpp-python's
own server (the loopback server here) ignores unknown fields: it takes the request but opens
a new assistant turn after the old text.
"""

from __future__ import annotations

import openai
import pytest

from runtimes.base import (
    CancelToken,
    ChatMessage,
    ChatRequest,
    Done,
    GenerationParams,
    LoadedModelInfo,
    LoadOptions,
    join_text,
)
from runtimes.errors import UserFacingError
from runtimes.openai_compat import OpenAICompatRuntime
from runtimes.openai_model import OpenAIModel, ServerEndpoint
from tests.servers.openai_servers import FaultServer, LlamaCppServer

pytestmark = pytest.mark.integration

CUT = (
    ChatMessage("user", "What is the capital of France?"),
    ChatMessage("assistant", "The capital of France"),
)
PARAMS = GenerationParams(temperature=0.0, seed=7, max_tokens=8)
INFO = LoadedModelInfo("server", 2048, 0, 0, 0, "", "", "", 0.0)


def test_continue_sends_the_partial_reply_and_vllms_continue_fields(
    fault_server: FaultServer,
) -> None:
    model = OpenAICompatRuntime(fault_server.base_url).load(
        fault_server.plan.models[0], LoadOptions()
    )
    list(model.chat(ChatRequest(CUT, PARAMS, continue_last=True), CancelToken()))
    body = fault_server.requests[-1].body
    assert body["messages"][-1] == {"role": "assistant", "content": "The capital of France"}
    assert (body["continue_final_message"], body["add_generation_prompt"]) == (True, False)
    assert body["top_k"] == PARAMS.top_k  # the sampling extras still go with them
    list(model.chat(ChatRequest(CUT, PARAMS), CancelToken()))
    assert "continue_final_message" not in fault_server.requests[-1].body
    assert "add_generation_prompt" not in fault_server.requests[-1].body


def test_continue_on_a_server_without_extra_fields_says_it_cannot(
    fault_server: FaultServer,
) -> None:
    base_url = OpenAICompatRuntime(fault_server.base_url).base_url
    client = openai.OpenAI(base_url=base_url, api_key="not-needed", max_retries=0)
    strict = ServerEndpoint(client, base_url, 5.0, sampling_extras=False)
    model = OpenAIModel(strict, fault_server.plan.models[0], INFO)
    sent = len(fault_server.requests)
    with pytest.raises(UserFacingError, match="cannot continue a reply"):
        list(model.chat(ChatRequest(CUT, PARAMS, continue_last=True), CancelToken()))
    assert len(fault_server.requests) == sent  # refused before asking the server
    list(model.chat(ChatRequest(CUT, PARAMS), CancelToken()))  # a plain reply still works


def test_llama_cpp_python_server_takes_a_continue_request(
    llama_cpp_server: LlamaCppServer,
) -> None:
    model = OpenAICompatRuntime(llama_cpp_server.base_url).load(
        llama_cpp_server.model, LoadOptions(n_ctx=2048)
    )
    events = list(model.chat(ChatRequest(CUT, PARAMS, continue_last=True), CancelToken()))
    done = events[-1]
    assert isinstance(done, Done)
    assert done.stats.stop_reason in ("stop", "length")
    assert join_text(events)
    assert model.count_tokens(CUT) is None
