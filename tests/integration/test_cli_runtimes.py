"""`llm-workbench runtimes` and `chat --runtime` against real servers on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _cli(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "LLM_WORKBENCH_HOME": str(home), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "ui.entry", *args],
        check=False,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=180,
        cwd=ROOT,
    )


def test_runtimes_lists_each_state(workbench_home: Path, ollama_server) -> None:
    result = _cli(workbench_home, "runtimes", "--json", env={"OLLAMA_HOST": ollama_server.url})
    assert result.returncode == 0, result.stderr
    rows = {row["key"]: row for row in json.loads(result.stdout)}
    assert rows["llamacpp"]["state"] == "available"
    assert rows["ollama"]["state"] == "available"
    assert rows["ollama"]["endpoint"] == ollama_server.url.rstrip("/")
    assert rows["ollama"]["version"]


def test_runtimes_says_what_to_do_when_ollama_is_not_running(workbench_home: Path) -> None:
    result = _cli(workbench_home, "runtimes", env={"OLLAMA_HOST": "http://127.0.0.1:9"})
    assert result.returncode == 0
    assert "○ Ollama" in result.stdout
    assert "ollama serve" in result.stdout


def test_chat_through_ollama(workbench_home: Path, ollama_server) -> None:
    result = _cli(
        workbench_home,
        "chat",
        "--runtime",
        "ollama",
        "--base-url",
        ollama_server.url,
        "smollm2:135m",
        "Say hello.",
        "--max-tokens",
        "10",
        "--temperature",
        "0",
        "--seed",
        "1",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "tok/s" in result.stderr
    assert "TTFT" in result.stderr


def test_chat_through_an_openai_compatible_server(workbench_home: Path, llama_cpp_server) -> None:
    result = _cli(
        workbench_home,
        "chat",
        "--runtime",
        "openai",
        "--base-url",
        llama_cpp_server.base_url,
        llama_cpp_server.model,
        "Say hello.",
        "--max-tokens",
        "10",
        "--temperature",
        "0",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "tok/s" in result.stderr


def test_chat_with_a_server_that_is_down_is_a_clear_error(workbench_home: Path) -> None:
    result = _cli(
        workbench_home,
        "chat",
        "--runtime",
        "ollama",
        "--base-url",
        "http://127.0.0.1:9",
        "smollm2:135m",
        "hi",
    )
    assert result.returncode in (2, 3)
    assert "error:" in result.stderr
    assert "Traceback" not in result.stderr


def test_openai_runtime_needs_a_url(workbench_home: Path) -> None:
    result = _cli(workbench_home, "chat", "--runtime", "openai", "some-model", "hi")
    assert result.returncode == 2
    assert "--base-url" in result.stderr
