"""A short check of the llama.cpp runtime on a GPU build: full offload, then CPU only.

Prints what the wheel was built with, what the load really offloaded (parsed from llama.cpp's
log in the worker), and decode speed with every layer on the GPU vs none, side by side:

    .venv/bin/python benchmarks/gpu_check.py MODEL.gguf
"""

from __future__ import annotations

import sys
import time

from runtimes.base import CancelToken, ChatMessage, ChatRequest, Done, GenerationParams, LoadOptions
from runtimes.llamacpp import LlamaCppRuntime, default_threads, wheel_backend

PROMPT = "Write a short paragraph about lighthouses."


def run(path: str, gpu_layers: int) -> tuple[str, float, float, int]:
    """Load with `gpu_layers`, generate 128 greedy tokens twice; returns the best figures."""
    runtime = LlamaCppRuntime()
    start = time.perf_counter()
    model = runtime.load(path, LoadOptions(n_ctx=2048, n_gpu_layers=gpu_layers))
    load_s = time.perf_counter() - start
    info = model.info
    where = f"{info.n_gpu_layers}/{info.n_layers} layers on GPU, backend {info.backend}"
    best_tps, tokens = 0.0, 0
    request = ChatRequest(
        (ChatMessage("user", PROMPT),),
        GenerationParams(temperature=0.0, seed=1, max_tokens=128),
    )
    for _ in range(2):
        for event in model.chat(request, CancelToken()):
            if isinstance(event, Done):
                best_tps = max(best_tps, event.stats.decode_tps)
                tokens = event.stats.completion_tokens
    model.unload()
    return where, load_s, best_tps, tokens


def main(path: str) -> None:
    """Full offload vs CPU, one line each."""
    print(f"wheel backend: {wheel_backend()} · default threads: {default_threads()}")
    for label, layers in (("all layers on the GPU", -1), ("CPU only", 0)):
        where, load_s, tps, tokens = run(path, layers)
        print(f"{label:<22} | {where} | load {load_s:.2f} s | {tps:7.1f} tok/s ({tokens} tokens)")


if __name__ == "__main__":
    main(sys.argv[1])
