"""The model host: keyed models side by side, memory refusals, keep-alive and keep-warm.

A stand-in runtime, an injected clock and injected free memory; the real two-worker case is
in tests/integration/test_llamacpp_model_host.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engine import LoadPlan, ModelHost
from app.errors import ModelLoadFailed, ModelNotLoaded
from app.memory import GIB, MemoryEstimate, WontFit
from runtimes.base import (
    CancelToken,
    ChatMessage,
    ChatRequest,
    LoadedModelInfo,
    LoadOptions,
    ProgressCallback,
    StreamEvent,
)

INFO = LoadedModelInfo("CPU", 2048, 0, 30, 2, "llama", "gguf", "", 0.1)


class FakeModel:
    """A loaded model that only knows whether it is alive."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.alive = True
        self.unloads = 0

    @property
    def info(self) -> LoadedModelInfo:
        return INFO

    def chat(self, request: ChatRequest, cancel: CancelToken) -> Iterator[StreamEvent]:
        raise NotImplementedError

    def count_tokens(self, messages: tuple[ChatMessage, ...]) -> int | None:
        return None

    def unload(self) -> None:
        self.alive = False
        self.unloads += 1


class FakeRuntime:
    """Loads `FakeModel`s; a path containing "broken" fails like llama.cpp would."""

    name = "llamacpp"

    def __init__(self) -> None:
        self.models: list[FakeModel] = []

    def load(
        self,
        model_path: str,
        options: LoadOptions,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> FakeModel:
        if "broken" in model_path:
            raise ModelLoadFailed("llama.cpp could not load it")
        self.models.append(FakeModel(model_path))
        return self.models[-1]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


SIZES = {"/m/small.gguf": 1 * GIB, "/m/mid.gguf": 3 * GIB, "/m/big.gguf": 6 * GIB}


def _estimate(path: str, options: LoadOptions) -> MemoryEstimate:
    return MemoryEstimate(SIZES.get(path, GIB // 2), 0)


def _plan(keep_alive_s: float | None = None) -> LoadPlan:
    return LoadPlan(LoadOptions(n_ctx=2048, keep_alive_s=keep_alive_s), "CPU", "test plan")


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def free() -> list[int]:
    return [8 * GIB]


@pytest.fixture()
def host(clock: Clock, free: list[int]) -> ModelHost:
    return ModelHost(
        FakeRuntime(), estimator=_estimate, available_memory=lambda: free[0], clock=clock
    )


def test_models_load_side_by_side_under_their_keys(host: ModelHost, clock: Clock) -> None:
    a = host.load_model("a", "/m/small.gguf", _plan())
    clock.now += 5
    b = host.load_model("b", "/m/mid.gguf", _plan(), keep_warm=True)
    assert (host.get("a"), host.get("b"), host.get("c")) == (a, b, None)
    entries = host.loaded()
    assert [(e.key, e.path, e.loaded_at, e.keep_warm) for e in entries] == [
        ("a", "/m/small.gguf", 1000.0, False),
        ("b", "/m/mid.gguf", 1005.0, True),
    ]
    assert [e.estimated_bytes for e in entries] == [1 * GIB, 3 * GIB]
    assert a.alive and b.alive


def test_loading_a_key_again_replaces_its_model(host: ModelHost) -> None:
    first = host.load_model("a", "/m/small.gguf", _plan())
    second = host.load_model("a", "/m/small.gguf", _plan(keep_alive_s=60))
    assert not first.alive and host.get("a") is second
    assert [e.keep_alive_s for e in host.loaded()] == [60]


def test_a_load_that_would_not_fit_is_refused_with_numbers(host: ModelHost) -> None:
    host.load_model("a", "/m/small.gguf", _plan())
    host.load_model("b", "/m/mid.gguf", _plan())
    # 8 GiB available - 4 GiB loaded - 1 GiB margin = 3 GiB free; "big" needs 6.
    with pytest.raises(WontFit) as caught:
        host.load_model("c", "/m/big.gguf", _plan())
    assert caught.value.message == (
        "Loading big.gguf needs ~6.0 GiB but only 3.0 GiB is free "
        "(2 models loaded use 4.0 GiB). Unload a model or choose a smaller quantization."
    )
    assert [e.key for e in host.loaded()] == ["a", "b"], "nothing was started or unloaded"


def test_it_fits_after_unloading(host: ModelHost) -> None:
    host.load_model("a", "/m/mid.gguf", _plan())
    with pytest.raises(WontFit):
        host.load_model("c", "/m/big.gguf", _plan())
    host.unload("a")
    host.load_model("c", "/m/big.gguf", _plan())
    assert [e.key for e in host.loaded()] == ["c"]


def test_a_dead_model_no_longer_counts(host: ModelHost) -> None:
    host.load_model("a", "/m/mid.gguf", _plan())
    model = host.get("a")
    assert model is not None
    model.alive = False  # type: ignore[misc]  # its worker crashed
    assert host.get("a") is None and host.loaded() == []
    host.load_model("c", "/m/big.gguf", _plan())  # 8 - 6 - 1 >= 0


def test_a_discrete_gpu_adds_its_budget_when_the_plan_offloads(host: ModelHost) -> None:
    cuda = LoadPlan(LoadOptions(n_gpu_layers=-1), "CUDA", "test", 4 * GIB)
    host.load_model("big", "/m/big.gguf", cuda)
    host.load_model("mid", "/m/mid.gguf", cuda)  # 8 + 4 - 6 - 1 = 5 GiB free


def test_unified_memory_and_cpu_plans_get_no_extra(host: ModelHost) -> None:
    metal = LoadPlan(LoadOptions(n_gpu_layers=-1), "Metal", "test", 4 * GIB)
    cpu_on_cuda = LoadPlan(LoadOptions(n_gpu_layers=0), "CUDA", "test", 4 * GIB)
    host.load_model("big", "/m/big.gguf", metal)
    for plan in (metal, cpu_on_cuda):
        with pytest.raises(WontFit):
            host.load_model("mid", "/m/mid.gguf", plan)


def test_a_failed_load_releases_its_reservation(host: ModelHost) -> None:
    with pytest.raises(ModelLoadFailed):
        host.load_model("x", "/m/broken.gguf", _plan())
    host.load_model("c", "/m/big.gguf", _plan())  # would not fit if "broken" still counted


def test_server_runtimes_are_not_checked_against_local_memory() -> None:
    runtime = FakeRuntime()
    runtime.name = "ollama"
    host = ModelHost(runtime, available_memory=lambda: 0)
    host.load_model("ollama:llama3.2", "llama3.2", _plan())
    assert [e.estimated_bytes for e in host.loaded()] == [0]


def test_idle_models_past_their_keep_alive_are_unloaded(host: ModelHost, clock: Clock) -> None:
    short = host.load_model("short", "/m/small.gguf", _plan(keep_alive_s=60))
    long = host.load_model("long", "/m/small.gguf", _plan(keep_alive_s=600))
    never = host.load_model("never", "/m/small.gguf", _plan(keep_alive_s=None))
    assert host.unload_idle(now=1060.0) == [], "exactly the keep-alive is not past it"
    assert host.unload_idle(now=1061.0) == ["short"]
    assert (short.alive, long.alive, never.alive) == (False, True, True)
    clock.now = 10_000.0
    assert host.unload_idle() == ["long"]
    assert [e.key for e in host.loaded()] == ["never"]


def test_touch_restarts_the_keep_alive(host: ModelHost, clock: Clock) -> None:
    host.load_model("a", "/m/small.gguf", _plan(keep_alive_s=60))
    clock.now += 50
    host.touch("a")
    assert host.unload_idle(now=clock.now + 59) == []
    assert host.loaded()[0].last_used == 1050.0
    assert host.unload_idle(now=clock.now + 61) == ["a"]


def test_keep_warm_spares_an_idle_model_until_it_is_cleared(host: ModelHost) -> None:
    host.load_model("a", "/m/small.gguf", _plan(keep_alive_s=1))
    host.set_keep_warm("a", True)
    assert host.unload_idle(now=99_999.0) == []
    host.set_keep_warm("a", False)
    assert host.unload_idle(now=99_999.0) == ["a"]


def test_a_model_in_use_is_not_unloaded_and_counts_as_used_after(
    host: ModelHost, clock: Clock
) -> None:
    model = host.load_model("a", "/m/small.gguf", _plan(keep_alive_s=10))
    with host.using("a") as used:
        assert used is model
        clock.now += 100  # a long reply
        assert host.unload_idle() == []
    assert host.loaded()[0].last_used == clock.now
    assert host.unload_idle(now=clock.now + 11) == ["a"]


def test_unknown_keys_are_model_not_loaded(host: ModelHost) -> None:
    for call in (
        lambda: host.touch("nope"),
        lambda: host.set_keep_warm("nope", True),
        lambda: host.using("nope").__enter__(),
    ):
        with pytest.raises(ModelNotLoaded, match="nope"):
            call()
    host.unload("nope")  # unloading is idempotent


def test_unload_all_ends_every_worker(host: ModelHost) -> None:
    models = [host.load_model(k, "/m/small.gguf", _plan()) for k in ("a", "b")]
    host.unload_all()
    assert host.loaded() == [] and [m.alive for m in models] == [False, False]


def test_single_model_load_unloads_the_others_and_becomes_current(host: ModelHost) -> None:
    side = host.load_model("side", "/m/small.gguf", _plan())
    assert host.current is None and host.current_path == ""
    model = host.load(Path("/m/mid.gguf"), _plan())
    assert not side.alive
    assert host.current is model and host.current_path == "/m/mid.gguf"
    assert [e.key for e in host.loaded()] == ["llamacpp:/m/mid.gguf"]
    host.unload()
    assert host.current is None and host.current_path == "" and not model.alive


def test_single_model_load_is_refused_too_when_it_cannot_fit(
    host: ModelHost, free: list[int]
) -> None:
    free[0] = 2 * GIB
    with pytest.raises(WontFit, match=r"^Loading big.gguf needs ~6.0 GiB but only 1.0 GiB"):
        host.load(Path("/m/big.gguf"), _plan())
    assert host.current is None
