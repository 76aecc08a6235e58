"""Recommendations over the shipped catalog: every quant judged, grouped, best marked."""

from __future__ import annotations

import dataclasses

from app.catalog import find_model, load_catalog
from app.fit_types import GIB, FitRequest
from app.hardware import AppleSilicon, CPUInfo, HardwareProfile, MemoryInfo, OSInfo
from app.recommend import (
    PLACEMENT_RANK,
    SIZE_CLASS_ORDER,
    quality_rank,
    recommend,
    shape_for_quant,
)
from app.synth_gguf import ArchConfig, tensor_data_bytes, tensor_plan

APPLE = AppleSilicon("Apple M3 Max", 12, 4, 40, 64 * GIB, 48 * GIB, "metal", 0)
MAC = HardwareProfile(
    OSInfo("macOS", "15.1", "arm64"),
    CPUInfo("Apple M3 Max", 16, 12, 4, 16, ("NEON",)),
    MemoryInfo(64 * GIB, 56 * GIB, 0, 0),
    apple=APPLE,
)
CATALOG = load_catalog()


def test_every_catalog_quant_is_judged_grouped_by_size_class() -> None:
    rows = recommend(MAC, FitRequest(n_ctx=8192), backend="Metal")
    assert len(rows) == sum(len(m.quants) for m in CATALOG)
    assert {(r.model_id, r.quant) for r in rows} == {
        (m.id, q.quant) for m in CATALOG for q in m.quants
    }
    classes = [SIZE_CLASS_ORDER.index(r.size_class) for r in rows]
    assert classes == sorted(classes)


def test_best_is_marked_at_most_once_per_model_on_the_best_placement() -> None:
    rows = recommend(MAC, FitRequest(n_ctx=8192), backend="Metal")
    by_model: dict[str, list] = {}  # type: ignore[type-arg]
    for row in rows:
        by_model.setdefault(row.model_id, []).append(row)
    for model_id, quants in by_model.items():
        best = [r for r in quants if r.best]
        fitting = [r for r in quants if r.verdict.verdict in ("full_gpu", "partial", "cpu_only")]
        assert len(best) == (1 if fitting else 0), model_id
        if not best:
            continue
        top = min(PLACEMENT_RANK[r.verdict.verdict] for r in fitting)
        chosen = best[0]
        assert PLACEMENT_RANK[chosen.verdict.verdict] == top, model_id
        same = [r for r in fitting if PLACEMENT_RANK[r.verdict.verdict] == top]
        roomy = [r for r in same if not r.verdict.tight] or same
        assert quality_rank(chosen.quant) == min(quality_rank(r.quant) for r in roomy), model_id


def test_a_64gb_mac_gets_llama_70b_q4_k_m_as_best_and_deepseek_nothing() -> None:
    rows = recommend(MAC, FitRequest(n_ctx=8192), backend="Metal")
    llama = {r.quant: r for r in rows if r.model_id == "llama-3.3-70b-instruct"}
    assert [q for q, r in llama.items() if r.best] == ["Q4_K_M"]
    assert llama["Q4_K_M"].verdict.verdict == "full_gpu"
    assert llama["Q5_K_M"].verdict.verdict != "full_gpu"
    deepseek = [r for r in rows if r.model_id == "deepseek-v3"]
    assert {r.verdict.verdict for r in deepseek} == {"wont_fit"}
    assert not any(r.best for r in deepseek)


def test_local_files_fill_local_path() -> None:
    model = find_model(CATALOG, "smollm2-135m-instruct")
    assert model is not None
    name = model.quants[0].files[0]
    rows = recommend(
        MAC, FitRequest(), catalog=[model], backend="Metal", local_files={name: "/m/x.gguf"}
    )
    local = {r.quant: r.local_path for r in rows}
    assert local == {q.quant: ("/m/x.gguf" if q is model.quants[0] else "") for q in model.quants}
    assert next(r for r in rows if r.local_path).file_name == name


def test_an_unknown_quant_gives_an_unknown_verdict() -> None:
    model = find_model(CATALOG, "smollm2-135m-instruct")
    assert model is not None
    odd = dataclasses.replace(model.quants[0], quant="Q9_X")
    broken = dataclasses.replace(model, quants=(odd,))
    (row,) = recommend(MAC, FitRequest(), catalog=[broken], backend="Metal")
    assert row.verdict.verdict == "unknown"
    assert row.verdict.reason.startswith("cannot size Q9_X of SmolLM2")
    assert not row.best


def test_shape_for_quant_sizes_equal_the_synthetic_tensor_data() -> None:
    for model_id in ("llama-3.3-70b-instruct", "deepseek-v3", "gemma-3-27b-it"):
        model = find_model(CATALOG, model_id)
        assert model is not None
        shape = shape_for_quant(model, "Q4_K_M")
        plan = tensor_plan(ArchConfig.from_dict(model.arch), "Q4_K_M")
        assert shape.weights_bytes == tensor_data_bytes(plan)
        blocks = sum(t.n_bytes for t in plan if t.name.startswith("blk."))
        assert sum(shape.layer_bytes) == blocks


def test_recommendations_follow_the_context_and_kv_type() -> None:
    model = find_model(CATALOG, "llama-3.3-70b-instruct")
    assert model is not None

    def q4(request: FitRequest):  # type: ignore[no-untyped-def]
        rows = recommend(MAC, request, catalog=[model], backend="Metal")
        return next(r.verdict for r in rows if r.quant == "Q4_K_M")

    short = q4(FitRequest(n_ctx=8192))
    long = q4(FitRequest(n_ctx=32768))
    q8 = q4(FitRequest(n_ctx=32768, kv_cache_type="q8_0", flash_attn=True))
    assert short.verdict == "full_gpu"
    assert long.verdict == "partial"
    assert q8.verdict == "full_gpu"
    assert long.memory is not None and q8.memory is not None
    assert q8.memory.kv_cache_bytes == long.memory.kv_cache_bytes * 17 // 32
