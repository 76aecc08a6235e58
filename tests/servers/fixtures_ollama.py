"""Fixtures: an Ollama-protocol server on loopback that generates real tokens with llama.cpp.

The server (`tests/servers/ollama_server.py`) runs in its own process, started once per test
session; it serves the SmolLM2 demo model as `smollm2:135m` (and as `smollm2:copy`, for
tests that delete a model) and can pull `smollm2:pull-test`.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtimes.ollama import OllamaRuntime

SMOLLM2 = "smollm2:135m"
COPY = "smollm2:copy"
PULLABLE = "smollm2:pull-test"
_REPO = Path(__file__).resolve().parents[2]
_START_TIMEOUT_S = 60.0


@dataclass
class OllamaTestServer:
    """A running Ollama-protocol test server and its test controls.

    Attributes:
        url: its base URL, e.g. "http://127.0.0.1:43121".
        log_path: where its stderr (llama.cpp's log, tracebacks) goes.
    """

    url: str
    log_path: Path
    process: subprocess.Popen[bytes]

    def fault(
        self, kind: str, *, after: int = 2, seconds: float = 5.0, message: str | None = None
    ) -> None:
        """Make the next reply fail: "drop", "malformed", "stall" (streamed), "http500"."""
        body: dict[str, object] = {"kind": kind, "after": after, "seconds": seconds}
        if message is not None:
            body["message"] = message
        self._post("/_test/fault", body)

    def reset(self) -> None:
        """Forget faults, pulls and deletions; report the start version again."""
        self._post("/_test/reset", {})

    def set_version(self, version: str) -> None:
        """Report `version` from /api/version until the next reset."""
        self._post("/_test/version", {"version": version})

    def last_final(self) -> dict[str, Any]:
        """The last final chunk the server sent (its own figures)."""
        final = httpx.get(f"{self.url}/_test/last_final", timeout=5).json()["final"]
        assert isinstance(final, dict), "the server has sent no final chunk yet"
        return final

    def last_run(self) -> dict[str, Any] | None:
        """How the server's last generation ended: {"eval_count", "reason"}, or None."""
        run = httpx.get(f"{self.url}/_test/last_run", timeout=5).json()["run"]
        assert run is None or isinstance(run, dict)
        return run

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log, for failure messages."""
        return self.log_path.read_text(errors="replace")[-chars:]

    def _post(self, path: str, body: dict[str, object]) -> None:
        httpx.post(f"{self.url}{path}", json=body, timeout=5).raise_for_status()


def _first_line(process: subprocess.Popen[bytes], timeout_s: float) -> str:
    lines: queue.Queue[bytes] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout_s).decode().strip()
    except queue.Empty:
        return ""


@pytest.fixture(scope="session")
def ollama_server(
    smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OllamaTestServer]:
    """The Ollama-protocol server on 127.0.0.1 (an ephemeral port), for the whole session."""
    log_path = tmp_path_factory.mktemp("ollama-server") / "server.log"
    command = [
        sys.executable,
        "-m",
        "tests.servers.ollama_server",
        "--model",
        f"{SMOLLM2}={smollm2_path}",
        "--model",
        f"{COPY}={smollm2_path}",
        "--pullable",
        f"{PULLABLE}={smollm2_path}",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=_REPO, stdout=subprocess.PIPE, stderr=log)
    first = _first_line(process, _START_TIMEOUT_S)
    if not first.startswith("listening on "):
        process.kill()
        process.wait()
        pytest.fail(f"the Ollama test server did not start: {log_path.read_text()[-3000:]}")
    server = OllamaTestServer(first.removeprefix("listening on "), log_path, process)
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture()
def ollama_runtime(ollama_server: OllamaTestServer) -> Iterator[OllamaRuntime]:
    """An `OllamaRuntime` on the test server; the server's state is reset afterwards."""
    runtime = OllamaRuntime(ollama_server.url)
    try:
        yield runtime
    finally:
        runtime.close()
        ollama_server.reset()
