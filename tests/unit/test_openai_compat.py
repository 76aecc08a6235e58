"""OpenAI-compatible runtime: URLs, key warnings, model lists and error bodies, without a server."""

from __future__ import annotations

import time

import pytest

from runtimes.errors import UserFacingError
from runtimes.openai_compat import (
    OpenAICompatRuntime,
    insecure_key_warning,
    normalize_base_url,
    remote_model_from_entry,
)
from runtimes.openai_errors import server_message
from tests.servers.openai_servers import free_port


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1"),
        ("  https://gpu-box:8000/v1/ ", "https://gpu-box:8000/v1"),
        ("http://localhost:1234/api/v1", "http://localhost:1234/api/v1"),
    ],
)
def test_base_url_is_normalized_with_v1_for_a_bare_host(given: str, expected: str) -> None:
    assert normalize_base_url(given) == expected


@pytest.mark.parametrize("bad", ["", "gpu-box:8000", "ftp://gpu-box/v1", "http:///v1", "not a url"])
def test_a_base_url_that_is_not_http_is_refused_with_an_example(bad: str) -> None:
    with pytest.raises(UserFacingError, match=r"http://127\.0\.0\.1:8000/v1"):
        normalize_base_url(bad)
    with pytest.raises(UserFacingError):
        OpenAICompatRuntime(bad)


def test_a_key_over_plain_http_to_another_host_is_warned_about() -> None:
    warning = insecure_key_warning("http://10.0.0.5:8000/v1", "sk-secret")
    assert "10.0.0.5" in warning
    assert "unencrypted" in warning
    assert "sk-secret" not in warning


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://10.0.0.5:8000/v1", "sk-secret"),
        ("http://127.0.0.1:8000/v1", "sk-secret"),
        ("http://localhost:8000/v1", "sk-secret"),
        ("http://[::1]:8000/v1", "sk-secret"),
        ("http://10.0.0.5:8000/v1", ""),
    ],
)
def test_no_key_warning_over_https_on_loopback_or_without_a_key(url: str, key: str) -> None:
    assert insecure_key_warning(url, key) == ""


def test_status_carries_the_key_warning_and_never_waits_past_its_timeout() -> None:
    # 192.0.2.1 is TEST-NET-1: never routed, so a connect either fails or hangs.
    runtime = OpenAICompatRuntime("http://192.0.2.1:8000/v1", api_key="sk-secret")
    started = time.monotonic()
    status = runtime.status(timeout_s=0.5)
    assert time.monotonic() - started < 1.5
    assert status.state in ("not_found", "error")
    assert status.warnings == (insecure_key_warning(runtime.base_url, "sk-secret"),)


def test_status_is_not_found_with_what_to_do_when_nothing_listens() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    status = OpenAICompatRuntime(url).status()
    assert status.state == "not_found"
    assert status.endpoint == url
    assert status.detail == (
        f"No server answers at {url}. Start it (vLLM, llama-server, LM Studio) or check the URL."
    )
    assert status.warnings == ()


def test_model_entry_reads_vllm_max_model_len() -> None:
    entry = {"id": "Qwen/Qwen2.5-7B-Instruct", "owned_by": "vllm", "max_model_len": 32768}
    model = remote_model_from_entry(entry)
    assert model.name == "Qwen/Qwen2.5-7B-Instruct"
    assert model.context_length == 32768


def test_model_entry_reads_llama_server_meta() -> None:
    entry = {
        "id": "qwen2.5-7b-instruct-q4_k_m.gguf",
        "owned_by": "llamacpp",
        "meta": {"n_ctx_train": 32768, "n_params": 7615616512, "size": 4677120000},
    }
    model = remote_model_from_entry(entry)
    assert (model.context_length, model.parameter_size, model.size_bytes) == (
        32768,
        "7.6B",
        4677120000,
    )


def test_model_entry_of_llama_cpp_python_has_no_context_length() -> None:
    entry = {"id": "smollm2", "object": "model", "owned_by": "me", "permissions": []}
    assert remote_model_from_entry(entry).context_length == 0


def test_model_entry_without_an_id_is_malformed() -> None:
    with pytest.raises(ValueError, match="without an id"):
        remote_model_from_entry({"object": "model"})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"message": "Incorrect API key provided.", "type": "invalid_request_error"},
            "Incorrect API key provided.",
        ),
        ({"detail": "Invalid API key"}, "Invalid API key"),
        ({"error": {"message": "model not loaded"}}, "model not loaded"),
        ("upstream connect error\n", "upstream connect error"),
        ({"unexpected": 1}, ""),
        (None, ""),
    ],
)
def test_server_message_finds_the_human_part_of_an_error_body(body: object, expected: str) -> None:
    assert server_message(body) == expected
