"""The model host with real llama.cpp workers: two models side by side, idle unload, refusal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from app.engine import LoadPlan, ModelHost
from app.memory import GIB, WontFit
from runtimes.base import CancelToken, ChatMessage, ChatRequest, GenerationParams, LoadOptions
from runtimes.base import join_text as text_of
from runtimes.llamacpp import LlamaCppModel, wheel_backend

pytestmark = pytest.mark.integration

GPU_LAYERS = -1 if wheel_backend() != "CPU" else 0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _plan(keep_alive_s: float | None) -> LoadPlan:
    options = LoadOptions(
        n_ctx=1024, n_threads=1, n_gpu_layers=GPU_LAYERS, keep_alive_s=keep_alive_s
    )
    return LoadPlan(options, wheel_backend(), "integration test")


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def host(clock: Clock) -> Iterator[ModelHost]:
    host = ModelHost(clock=clock)
    yield host
    host.unload_all()


def test_two_workers_at_once_and_only_the_idle_one_is_unloaded(
    host: ModelHost, clock: Clock, smollm2_path: Path
) -> None:
    idle = host.load_model("idle", smollm2_path, _plan(keep_alive_s=30))
    busy = host.load_model("busy", smollm2_path, _plan(keep_alive_s=30))
    assert isinstance(idle, LlamaCppModel) and isinstance(busy, LlamaCppModel)
    assert idle.pid != busy.pid
    assert psutil.pid_exists(idle.pid) and psutil.pid_exists(busy.pid)
    estimates = [e.estimated_bytes for e in host.loaded()]
    assert estimates[0] == estimates[1] > 0

    clock.now = 25.0
    with host.using("busy") as model:
        reply = model.chat(
            ChatRequest((ChatMessage("user", "Say hi."),), GenerationParams(max_tokens=4)),
            CancelToken(),
        )
        assert text_of(list(reply)).strip()
    clock.now = 40.0  # "idle" unused for 40 s, "busy" for 15 s

    assert host.unload_idle() == ["idle"]
    assert not idle.alive and busy.alive
    assert not psutil.pid_exists(idle.pid) or psutil.Process(idle.pid).status() == "zombie"
    assert [e.key for e in host.loaded()] == ["busy"]


def test_a_load_that_would_not_fit_starts_no_worker(smollm2_path: Path) -> None:
    host = ModelHost(available_memory=lambda: GIB + 100 * 1024**2)
    before = set(psutil.Process().children(recursive=True))
    with pytest.raises(WontFit) as caught:
        host.load_model("x", smollm2_path, _plan(keep_alive_s=None))
    # The 98 MB file + 10 % and 22.5 MiB of KV at 1024 tokens: over the 100 MiB left above
    # the 1 GiB margin.
    needed = int(smollm2_path.stat().st_size * 1.1) + 1024 * 22.5 * 1024
    assert caught.value.needed_bytes == needed
    assert caught.value.message.startswith(
        f"Loading {smollm2_path.name} needs ~{needed / 1024**2:.0f} MiB but only 100 MiB is free."
    )
    assert set(psutil.Process().children(recursive=True)) == before
    assert host.loaded() == []
