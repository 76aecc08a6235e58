"""The Ollama runtime's pure parts: request options, figures from the final chunk, errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runtimes.base import GenerationParams, LoadOptions
from runtimes.errors import ExternalFailure, UserFacingError
from runtimes.ollama_errors import error_text, http_error
from runtimes.ollama_model import chat_options, keep_alive_value, message_text, stats_from_final
from runtimes.ollama_types import (
    OllamaModelDetails,
    PullProgress,
    RunningModel,
    build_info,
    full_name,
    load_options,
)

DETAILS = OllamaModelDetails("llama3.2:3b", "llama", "llama", "3.2B", "Q4_K_M", 131072, 28, True)
GIB = 1024**3

# The final chunk of docs/api.md's streaming chat example, with a done_reason.
DOCS_FINAL = {
    "model": "llama3.2",
    "created_at": "2023-08-04T19:22:45.499127Z",
    "done": True,
    "done_reason": "length",
    "total_duration": 4883583458,
    "load_duration": 1334875,
    "prompt_eval_count": 26,
    "prompt_eval_duration": 342546000,
    "eval_count": 282,
    "eval_duration": 4535599000,
}


def _running(size: int, vram: int) -> RunningModel:
    return RunningModel("llama3.2:3b", size, vram, datetime(2030, 1, 1, tzinfo=UTC), 4096)


@pytest.mark.parametrize(
    ("size", "vram", "where"),
    [(4 * GIB, 4 * GIB, "GPU"), (4 * GIB, 0, "CPU"), (100, 48, "48% GPU"), (0, 0, "CPU")],
)
def test_running_model_says_where_it_runs(size: int, vram: int, where: str) -> None:
    assert _running(size, vram).where == where


def test_a_model_wholly_in_vram_counts_as_on_the_gpu() -> None:
    info = build_info(
        version="0.21.0",
        details=DETAILS,
        options=LoadOptions(n_ctx=8192),
        running=_running(4 * GIB, 4 * GIB),
        load_time_s=1.5,
    )
    assert (info.n_gpu_layers, info.n_layers) == (1, 1)
    assert "100% GPU" in info.notice
    assert info.backend == "Ollama 0.21.0"
    assert info.n_ctx == 8192
    assert info.architecture == "llama"
    assert info.chat_template == "ollama"
    assert info.load_time_s == 1.5


def test_a_split_model_is_told_in_the_notice() -> None:
    info = build_info(
        version="0.21.0",
        details=DETAILS,
        options=LoadOptions(),
        running=_running(10 * GIB, 4 * GIB),
        load_time_s=1.0,
    )
    assert (info.n_gpu_layers, info.n_layers) == (0, 0)
    assert "40% GPU" in info.notice
    assert "4.0 of 10.0 GiB" in info.notice


def test_a_model_on_the_cpu_has_no_notice() -> None:
    info = build_info(
        version="0.21.0",
        details=DETAILS,
        options=LoadOptions(),
        running=_running(4 * GIB, 0),
        load_time_s=1.0,
    )
    assert (info.n_gpu_layers, info.n_layers, info.notice) == (0, 0, "")


def test_server_wide_options_are_named_when_asked_for() -> None:
    info = build_info(
        version="0.21.0",
        details=DETAILS,
        options=LoadOptions(flash_attn=True, kv_cache_type="q8_0"),
        running=None,
        load_time_s=1.0,
    )
    assert "OLLAMA_FLASH_ATTENTION" in info.notice
    assert "OLLAMA_KV_CACHE_TYPE" in info.notice


def test_load_options_always_set_the_context_and_leave_the_gpu_split_to_the_server() -> None:
    assert load_options(LoadOptions(n_ctx=2048)) == {"num_ctx": 2048}
    assert load_options(LoadOptions(n_ctx=2048, n_gpu_layers=-1)) == {"num_ctx": 2048}
    assert load_options(
        LoadOptions(n_ctx=2048, n_gpu_layers=20, n_threads=4, n_batch=256, use_mmap=False)
    ) == {"num_ctx": 2048, "num_gpu": 20, "num_thread": 4, "num_batch": 256, "use_mmap": False}


def test_chat_options_repeat_the_load_options_and_map_sampling() -> None:
    params = GenerationParams(
        temperature=0.0,
        top_p=0.9,
        top_k=20,
        min_p=0.1,
        repeat_penalty=1.2,
        max_tokens=64,
        seed=7,
        stop=("\n\n",),
    )
    assert chat_options(params, {"num_ctx": 2048, "num_gpu": 20}) == {
        "num_ctx": 2048,
        "num_gpu": 20,
        "temperature": 0.0,
        "top_p": 0.9,
        "top_k": 20,
        "min_p": 0.1,
        "repeat_penalty": 1.2,
        "num_predict": 64,
        "seed": 7,
        "stop": ["\n\n"],
    }


def test_chat_options_leave_out_a_random_seed_and_no_stops() -> None:
    options = chat_options(GenerationParams(seed=None, max_tokens=0), {"num_ctx": 512})
    assert "seed" not in options
    assert "stop" not in options
    assert options["num_predict"] == -2  # no limit: fill the context, then end


@pytest.mark.parametrize(("seconds", "sent"), [(None, None), (300.0, 300), (0.0, 0), (-5, 0)])
def test_keep_alive_is_seconds_or_the_servers_default(seconds: float | None, sent: int) -> None:
    assert keep_alive_value(seconds) == sent


def test_figures_come_from_the_servers_final_chunk() -> None:
    stats = stats_from_final(DOCS_FINAL)
    assert stats.prompt_tokens == 26
    assert stats.completion_tokens == 282
    assert stats.load_time_s == pytest.approx(0.001334875)
    assert stats.ttft_s == pytest.approx((1334875 + 342546000) / 1e9)
    assert stats.decode_tps == pytest.approx(282 / 4.535599)
    assert stats.total_time_s == pytest.approx(4.883583458)
    assert stats.stop_reason == "length"


def test_a_final_chunk_without_figures_gives_zeros_and_stop() -> None:
    stats = stats_from_final({"done": True})
    assert (stats.completion_tokens, stats.decode_tps, stats.stop_reason) == (0, 0.0, "stop")


@pytest.mark.parametrize("bad", ["282", -1, 2.5, True])
def test_a_malformed_count_is_a_malformed_reply(bad: object) -> None:
    with pytest.raises(ExternalFailure, match="malformed reply"):
        stats_from_final({**DOCS_FINAL, "eval_count": bad})


def test_message_text_reads_content_and_rejects_junk() -> None:
    assert message_text({"message": {"role": "assistant", "content": "Hi"}}) == "Hi"
    assert message_text({"done": True}) == ""
    with pytest.raises(ExternalFailure, match="malformed reply"):
        message_text({"message": "Hi"})
    with pytest.raises(ExternalFailure, match="malformed reply"):
        message_text({"message": {"content": 5}})


def test_model_names_get_ollamas_default_tag() -> None:
    assert full_name("llama3.2") == "llama3.2:latest"
    assert full_name("llama3.2:3b") == "llama3.2:3b"
    assert full_name("registry.local:5000/team/model") == "registry.local:5000/team/model:latest"
    assert full_name("hf.co/org/repo:Q4_K_M") == "hf.co/org/repo:Q4_K_M"


def test_pull_progress_fraction() -> None:
    assert PullProgress("pulling abc", "sha256:abc", 25, 100).fraction == 0.25
    assert PullProgress("pulling manifest").fraction == 0.0


def test_a_missing_model_is_the_users_to_fix() -> None:
    error = http_error(404, 'model "llama3.2" not found, try pulling it first', "llama3.2")
    assert isinstance(error, UserFacingError)
    assert "ollama pull llama3.2" in error.message


def test_other_client_errors_are_user_errors_and_server_errors_external() -> None:
    assert isinstance(http_error(400, "invalid options", "m"), UserFacingError)
    error = http_error(500, "llama runner process has terminated", "m")
    assert isinstance(error, ExternalFailure)
    assert "llama runner process has terminated" in error.message


def test_error_text_reads_ollamas_error_body() -> None:
    assert error_text('{"error": "model \'x\' not found"}') == "model 'x' not found"
    assert error_text("<html>Bad Gateway</html>") == "<html>Bad Gateway</html>"
    assert error_text("") == "no reason given"
