"""LlamaCppRuntime when things go wrong: refused files, cancelled loads, broken workers."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import gguf
import psutil
import pytest

from runtimes.base import CancelToken, ChatMessage, ChatRequest, LoadOptions, LoadProgress
from runtimes.errors import ExternalFailure, LoadCancelled, ModelLoadFailed, RuntimeCrashed
from runtimes.llamacpp import LlamaCppRuntime
from runtimes.llamacpp import runtime as runtime_module
from runtimes.llamacpp.process import WorkerProcess
from runtimes.llamacpp.protocol import ProtocolError

pytestmark = pytest.mark.integration

OPTIONS = LoadOptions(n_ctx=512, n_threads=2)
REQUEST = ChatRequest((ChatMessage("user", "Hello"),))

# A stand-in worker: says hello, answers "load" as a real worker does, then misbehaves on
# "chat" in the way the test asks for (argv[1]).
FAKE_WORKER = r"""
import json, os, sys, time
def send(m):
    sys.stdout.write(json.dumps(m) + "\n"); sys.stdout.flush()
send({"ev": "hello", "pid": os.getpid(), "protocol": 1})
for line in sys.stdin:
    op = json.loads(line)["op"]
    if op == "load":
        if sys.argv[1] == "die-on-load":
            print("fake llama.cpp: GGML_ASSERT failed", file=sys.stderr, flush=True)
            os._exit(3)
        print("llm-workbench: model load finished", file=sys.stderr, flush=True)
        send({"ev": "loaded", "n_ctx": 512, "n_threads": 1, "backend": "CPU",
              "gpu_offload": False, "load_s": 0.0})
    elif op == "chat":
        send({"ev": "text", "id": 1, "text": "partial "})
        if sys.argv[1] == "garbage-on-chat":
            sys.stdout.write("this is not json\n"); sys.stdout.flush()
        time.sleep(60)
    elif op == "exit":
        break
"""


def _fake(mode: str) -> list[str]:
    return [sys.executable, "-c", FAKE_WORKER, mode]


def _record_spawns(monkeypatch: pytest.MonkeyPatch) -> list[WorkerProcess]:
    spawned: list[WorkerProcess] = []
    original = WorkerProcess.spawn

    def recording(command: list[str] | None = None) -> WorkerProcess:
        worker = original(command)
        spawned.append(worker)
        return worker

    monkeypatch.setattr(runtime_module.WorkerProcess, "spawn", recording)
    return spawned


def test_llama_cpp_refusal_is_model_load_failed_with_its_log(tmp_path: Path) -> None:
    path = tmp_path / "no-hparams.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(2)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelLoadFailed) as caught:
        LlamaCppRuntime().load(str(path), OPTIONS)
    assert "key not found in model: llama.context_length" in caught.value.message
    assert "llama_model_load" in caught.value.details


def test_cancel_during_load_kills_the_worker(
    smollm2_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned = _record_spawns(monkeypatch)
    cancel = CancelToken()

    def on_progress(progress: LoadProgress) -> None:
        if progress.stage == "loading weights":
            cancel.cancel()

    with pytest.raises(LoadCancelled):
        LlamaCppRuntime().load(str(smollm2_path), OPTIONS, on_progress, cancel)
    assert len(spawned) == 1
    assert not psutil.pid_exists(spawned[0].pid)


def test_worker_dying_during_load_is_runtime_crashed(smollm2_path: Path) -> None:
    runtime = LlamaCppRuntime(worker_command=_fake("die-on-load"))
    with pytest.raises(RuntimeCrashed) as caught:
        runtime.load(str(smollm2_path), OPTIONS)
    assert caught.value.exit_code == 3
    assert "GGML_ASSERT failed" in caught.value.stderr_tail


def test_garbage_on_the_pipe_is_a_clear_failure_not_a_hang(
    smollm2_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned = _record_spawns(monkeypatch)
    model = LlamaCppRuntime(worker_command=_fake("garbage-on-chat")).load(
        str(smollm2_path), OPTIONS
    )
    texts: list[str] = []
    started = time.monotonic()
    with pytest.raises(ProtocolError) as caught:
        for event in model.chat(REQUEST, CancelToken()):
            texts.append(getattr(event, "text", ""))
    assert time.monotonic() - started < 5
    assert isinstance(caught.value, ExternalFailure)
    assert "this is not json" in caught.value.details
    assert texts == ["partial "]
    assert not model.alive
    assert not psutil.pid_exists(spawned[0].pid)


def test_worker_that_never_starts_times_out(smollm2_path: Path) -> None:
    silent = [sys.executable, "-c", "import time; time.sleep(60)"]
    runtime = LlamaCppRuntime(start_timeout_s=1.0, worker_command=silent)
    started = time.monotonic()
    with pytest.raises(ExternalFailure, match="did not start"):
        runtime.load(str(smollm2_path), OPTIONS)
    assert time.monotonic() - started < 5
