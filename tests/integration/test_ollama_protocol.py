"""The Ollama test server speaks Ollama's documented protocol, raw and to the official client."""

from __future__ import annotations

import json

import httpx
import ollama
import pytest

from tests.servers.fixtures_ollama import COPY, SMOLLM2, OllamaTestServer

pytestmark = pytest.mark.integration

CHAT = {
    "model": SMOLLM2,
    "messages": [{"role": "user", "content": "Name three colours."}],
    "options": {"num_ctx": 1024, "temperature": 0, "seed": 3, "num_predict": 12},
}
DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


@pytest.fixture(autouse=True)
def _fresh_server(ollama_server: OllamaTestServer) -> None:
    ollama_server.reset()


def test_chat_streams_one_ndjson_line_per_token(ollama_server: OllamaTestServer) -> None:
    with httpx.stream("POST", f"{ollama_server.url}/api/chat", json=CHAT, timeout=60) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "application/x-ndjson"
        chunks = [json.loads(line) for line in reply.iter_lines()]
    *pieces, final = chunks
    for piece in pieces:
        assert piece["model"] == SMOLLM2
        assert piece["done"] is False
        assert piece["message"]["role"] == "assistant"
        assert piece["message"]["content"]
        assert piece["created_at"].endswith("Z")
    assert final["done"] is True
    assert final["done_reason"] == "length"
    assert final["eval_count"] == 12
    assert final["eval_count"] - 1 <= len(pieces) <= final["eval_count"]  # a token, a line
    assert final["prompt_eval_count"] > 0
    for key in DURATIONS:
        assert isinstance(final[key], int) and final[key] >= 0  # nanoseconds
    assert final["total_duration"] >= final["prompt_eval_duration"] + final["eval_duration"]


def test_chat_without_streaming_answers_one_object(ollama_server: OllamaTestServer) -> None:
    reply = httpx.post(f"{ollama_server.url}/api/chat", json={**CHAT, "stream": False}, timeout=60)
    answer = reply.json()
    assert answer["done"] is True
    assert answer["message"]["role"] == "assistant"
    assert len(answer["message"]["content"]) > 5
    assert answer["eval_count"] == 12


def test_errors_are_answered_as_ollama_does(ollama_server: OllamaTestServer) -> None:
    url = ollama_server.url
    chat = httpx.post(f"{url}/api/chat", json={**CHAT, "model": "nope"}, timeout=10)
    assert (chat.status_code, chat.json()) == (
        404,
        {"error": 'model "nope" not found, try pulling it first'},
    )
    show = httpx.post(f"{url}/api/show", json={"model": "nope"}, timeout=10)
    assert (show.status_code, show.json()) == (404, {"error": "model 'nope' not found"})
    gone = httpx.request("DELETE", f"{url}/api/delete", json={"model": "nope"}, timeout=10)
    assert (gone.status_code, gone.json()) == (404, {"error": "model 'nope' not found"})
    with httpx.stream("POST", f"{url}/api/pull", json={"model": "nope"}, timeout=10) as pull:
        lines = [json.loads(line) for line in pull.iter_lines()]
    assert lines == [
        {"status": "pulling manifest"},
        {"error": "pull model manifest: file does not exist"},
    ]


def test_empty_prompts_load_and_unload(ollama_server: OllamaTestServer) -> None:
    url = ollama_server.url
    load = httpx.post(
        f"{url}/api/generate", json={"model": SMOLLM2, "options": {"num_ctx": 1024}}, timeout=60
    ).json()
    assert (load["done"], load["done_reason"], load["response"]) == (True, "load", "")
    assert [m["name"] for m in httpx.get(f"{url}/api/ps").json()["models"]] == [SMOLLM2]
    unload = httpx.post(
        f"{url}/api/chat", json={"model": SMOLLM2, "messages": [], "keep_alive": 0}, timeout=10
    ).json()
    assert (unload["done_reason"], unload["message"]["content"]) == ("unload", "")
    assert httpx.get(f"{url}/api/ps").json() == {"models": []}


def test_the_official_client_reads_every_answer(ollama_server: OllamaTestServer) -> None:
    client = ollama.Client(host=ollama_server.url)
    assert {m.model for m in client.list().models} == {SMOLLM2, COPY}
    shown = client.show(SMOLLM2)
    assert shown.modelinfo is not None
    assert shown.modelinfo["llama.context_length"] == 8192
    assert shown.details is not None and shown.details.quantization_level == "Q4_1"
    parts = list(
        client.chat(SMOLLM2, messages=CHAT["messages"], options=CHAT["options"], stream=True)
    )
    assert parts[-1].done and parts[-1].eval_count == 12
    assert "".join(p.message.content or "" for p in parts).strip()
    (running,) = client.ps().models
    assert running.model == SMOLLM2 and running.size_vram == 0
    steps = [s.status for s in client.pull(SMOLLM2, stream=True)]
    assert steps[0] == "pulling manifest" and steps[-1] == "success"
    client.delete(COPY)
    assert COPY not in {m.model for m in client.list().models}
    with pytest.raises(ollama.ResponseError) as caught:
        client.delete(COPY)
    assert caught.value.status_code == 404
    client.close()
