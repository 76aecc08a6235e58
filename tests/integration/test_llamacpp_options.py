"""Load options reach real llama.cpp: flash attention, quantized KV cache, mmap, mlock.

What the notice says is read from llama.cpp's own log in the worker; where the operating
system can tell (Linux /proc), the test checks the process itself too.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from runtimes.base import CancelToken, ChatMessage, ChatRequest, GenerationParams, LoadOptions
from runtimes.base import join_text as text_of
from runtimes.llamacpp import LlamaCppModel, LlamaCppRuntime, wheel_backend

pytestmark = pytest.mark.integration

GPU_LAYERS = -1 if wheel_backend() != "CPU" else 0
GREEDY = GenerationParams(temperature=0.0, seed=7, max_tokens=40)
QUESTION = (
    ChatMessage("system", "Be brief."),
    ChatMessage("user", "What is the capital of France?"),
)
LINUX = sys.platform.startswith("linux")


def _options(**changes: object) -> LoadOptions:
    return LoadOptions(n_ctx=2048, n_threads=2, n_gpu_layers=GPU_LAYERS, **changes)  # type: ignore[arg-type]


def _reply(model: LlamaCppModel, params: GenerationParams = GREEDY) -> str:
    return text_of(list(model.chat(ChatRequest(QUESTION, params), CancelToken())))


def _maps_file(model: LlamaCppModel, path: Path) -> bool:
    """Whether the worker has the model file mapped into memory."""
    with open(f"/proc/{model.pid}/maps", encoding="utf-8") as maps:
        return any(line.rstrip().endswith(str(path)) for line in maps)


def test_q8_0_kv_cache_with_flash_attention_loads_and_chats(smollm2_path: Path) -> None:
    runtime = LlamaCppRuntime()
    model = runtime.load(str(smollm2_path), _options(flash_attn=True, kv_cache_type="q8_0"))
    try:
        # llama.cpp's log: "size = 23.91 MiB (2048 cells, 30 layers), K (q8_0), V (q8_0)".
        assert model.info.notice == "Flash attention on · KV cache q8_0 (23.9 MiB)."
        assert "Paris" in _reply(model)
    finally:
        model.unload()


def test_q8_0_kv_cache_without_flash_attention_gets_it_turned_on(smollm2_path: Path) -> None:
    # llama.cpp alone would refuse ("quantized V cache requires flash_attn to be enabled").
    model = LlamaCppRuntime().load(str(smollm2_path), _options(kv_cache_type="q8_0"))
    try:
        assert model.info.notice == (
            "Flash attention on (turned on: a q8_0 KV cache needs it) · KV cache q8_0 (23.9 MiB)."
        )
        assert "Paris" in _reply(model)
    finally:
        model.unload()


def test_q4_0_kv_cache_on_gemma_with_its_256_wide_heads(gemma_path: Path) -> None:
    model = LlamaCppRuntime().load(str(gemma_path), _options(kv_cache_type="q4_0"))
    try:
        # 36 MiB in f16 -> 36 x 18 / 64 = 10.125 MiB in q4_0 (global + sliding-window caches).
        assert "KV cache q4_0 (10.1 MiB)" in model.info.notice
        assert _reply(model, GenerationParams(temperature=0.0, max_tokens=8)).strip()
    finally:
        model.unload()


def test_mmap_off_loads_and_reads_the_file_instead_of_mapping_it(smollm2_path: Path) -> None:
    runtime = LlamaCppRuntime()
    model = runtime.load(str(smollm2_path), _options(use_mmap=False))
    try:
        assert model.info.notice == "Weights read into RAM (mmap off)."
        if LINUX:
            assert not _maps_file(model, smollm2_path)
        assert "Paris" in _reply(model)
    finally:
        model.unload()
    mapped = runtime.load(str(smollm2_path), _options())
    try:
        assert mapped.info.notice == ""
        if LINUX:
            assert _maps_file(mapped, smollm2_path), "the default does map the file"
    finally:
        mapped.unload()


def _locked_kib(model: LlamaCppModel) -> int:
    with open(f"/proc/{model.pid}/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith("VmLck:"):
                return int(line.split()[1])
    raise AssertionError("no VmLck line")


def _can_lock_100_mb() -> bool:
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    return os.geteuid() == 0 or soft == resource.RLIM_INFINITY or soft >= 200 * 1024**2


@pytest.mark.skipif(not LINUX, reason="reads /proc and RLIMIT_MEMLOCK (Linux)")
def test_mlock_pins_the_weights(smollm2_path: Path) -> None:
    if not _can_lock_100_mb():
        pytest.skip("this user may not lock 100 MB (RLIMIT_MEMLOCK); the failure test covers it")
    model = LlamaCppRuntime().load(str(smollm2_path), _options(use_mlock=True))
    try:
        assert model.info.notice == "Locked in RAM (mlock)."
        assert _locked_kib(model) * 1024 > 90 * 1024**2  # the 92 MiB of weights
    finally:
        model.unload()


def _worker_that_cannot_lock() -> list[str]:
    """A worker command with a 64 KiB locked-memory limit (and, as root, no CAP_IPC_LOCK)."""
    python = [sys.executable, "-m", "runtimes.llamacpp.worker"]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: mlock cannot be made to fail")
        python = [setpriv, "--inh-caps=-all", "--bounding-set=-ipc_lock", *python]
    return ["/bin/sh", "-c", 'ulimit -l 64 && exec "$@"', "sh", *python]


@pytest.mark.skipif(not LINUX, reason="sets RLIMIT_MEMLOCK with the shell's ulimit (Linux)")
def test_a_failed_mlock_is_reported_and_the_model_still_works(smollm2_path: Path) -> None:
    runtime = LlamaCppRuntime(worker_command=_worker_that_cannot_lock())
    model = runtime.load(str(smollm2_path), _options(use_mlock=True))
    try:
        assert model.info.notice == (
            "Locking the model in RAM (mlock) failed (Cannot allocate memory), so it may be "
            "swapped out. Raise the locked-memory limit (ulimit -l) or turn mlock off."
        )
        assert "Paris" in _reply(model)
    finally:
        model.unload()
