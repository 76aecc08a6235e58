"""Recommendations: every catalog model × quantization judged for this machine, offline.

Each catalog entry carries its published architecture; `app.synth_gguf` turns it into the exact
tensor table llama-quantize writes for a quantization, so weights per layer are exact before
any download, and the KV cache and compute buffers follow `app.fit_memory`. Per model, the
best quantization is the highest-quality one that gets the best placement any of its
quantizations gets (full GPU, else partial, else CPU) with headroom.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.catalog import CatalogModel, CatalogQuant, load_catalog
from app.fit import Budget, fit_shape, machine_budget
from app.fit_types import FitRequest, FitVerdict, Recommendation
from app.hardware import HardwareProfile
from app.model_shape import SWA_PATTERNS, ModelShape, tensor_groups
from app.speed import Calibration
from app.synth_gguf import ArchConfig, tensor_data_bytes, tensor_plan

QUALITY_ORDER: tuple[str, ...] = (
    "F32",
    "BF16",
    "F16",
    "Q8_0",
    "Q6_K",
    "Q5_K_M",
    "Q5_K_S",
    "Q5_1",
    "Q5_0",
    "Q4_K_M",
    "Q4_K_S",
    "IQ4_NL",
    "IQ4_XS",
    "Q4_1",
    "Q4_0",
    "Q3_K_L",
    "Q3_K_M",
    "IQ3_M",
    "IQ3_S",
    "Q3_K_S",
    "IQ3_XXS",
    "Q2_K",
    "IQ2_M",
    "IQ2_XS",
    "IQ2_XXS",
    "IQ1_M",
    "IQ1_S",
)
"""Quantizations from least to most quality loss (reference/fit.md §3.3)."""
PLACEMENT_RANK = {"full_gpu": 0, "partial": 1, "cpu_only": 2, "wont_fit": 3, "unknown": 4}
SIZE_CLASS_ORDER = ("tiny", "small", "medium", "large", "huge")


def quality_rank(quant: str) -> int:
    """Position in `QUALITY_ORDER` (unknown labels last)."""
    return QUALITY_ORDER.index(quant) if quant in QUALITY_ORDER else len(QUALITY_ORDER)


_SHAPES: dict[tuple[str, str, int], ModelShape] = {}


def _shape_cached(model: CatalogModel, quant: str) -> ModelShape:
    """`shape_for_quant`, remembered per model id, quantization and architecture."""
    key = (model.id, quant, hash(tuple(sorted(model.arch.items()))))
    shape = _SHAPES.get(key)
    if shape is None:
        shape = _SHAPES[key] = shape_for_quant(model, quant)
    return shape


def shape_for_quant(model: CatalogModel, quant: str) -> ModelShape:
    """The shape of a catalog model's quantized file, from its architecture alone.

    Raises:
        ValueError, KeyError: the architecture or the quantization is not one the
            synthesizer knows.
    """
    config = ArchConfig.from_dict(model.arch)
    plan = tensor_plan(config, quant)
    groups = tensor_groups(
        ((t.name, t.n_bytes, t.ggml_type, tuple(t.shape)) for t in plan), config.block_count
    )
    n = config.block_count
    if config.kv_lora_rank:  # MLA: one latent "head" of kv_lora_rank + rope dims, K only
        k_widths = (config.kv_lora_rank + config.qk_rope_head_dim,) * n
        v_widths = (0,) * n
    else:
        k_widths = (config.head_dim_k * config.n_head_kv,) * n
        v_widths = (config.head_dim_v * config.n_head_kv,) * n
    pattern = config.sliding_window_pattern or SWA_PATTERNS.get(config.architecture, 0)
    if config.sliding_window and pattern > 1:
        swa = tuple(il % pattern < pattern - 1 for il in range(n))
    else:
        swa = (False,) * n
    return ModelShape(
        name=f"{model.name} {quant}",
        architecture=config.architecture,
        n_layers=n,
        n_embd=config.embedding_length,
        n_ff=config.feed_forward_length,
        n_head=config.head_count,
        n_vocab=config.vocab_size,
        n_ctx_train=config.context_length or model.context_length,
        k_widths=k_widths,
        v_widths=v_widths,
        swa_layers=swa,
        n_swa=config.sliding_window,
        is_mla=bool(config.kv_lora_rank),
        expert_count=config.expert_count,
        expert_used_count=config.expert_used_count,
        layer_bytes=groups.layers,
        layer_expert_bytes=groups.experts,
        input_bytes=groups.input_bytes,
        output_bytes=groups.output_bytes,
        tied_embeddings=groups.tied,
        layer_repack_bytes=groups.repack,
        n_merges=0 if config.architecture == "gemma3" else config.vocab_size,
        weights_bytes=tensor_data_bytes(plan),
        file_size=_file_size(model, quant, plan),
        parameter_count=model.parameters,
        quantization=quant,
    )


def _file_size(model: CatalogModel, quant: str, plan: Sequence[object]) -> int:
    entry = model.quant(quant)
    if entry is not None and entry.size_bytes:
        return entry.size_bytes
    return tensor_data_bytes(tuple(plan))  # type: ignore[arg-type]


def judge_quant(
    model: CatalogModel,
    quant: CatalogQuant,
    budget: Budget | None,
    request: FitRequest,
    profile: HardwareProfile | None = None,
    calibration: Calibration | None = None,
) -> FitVerdict:
    """The fit of one catalog file on `budget` (formulas; no download, no llama.cpp)."""
    from app.fit_types import unknown_verdict

    try:
        shape = _shape_cached(model, quant.quant)
    except (ValueError, KeyError) as exc:
        return unknown_verdict(f"cannot size {quant.quant} of {model.name}: {exc}", request)
    key = f"{quant.files[0]}|{shape.file_size}" if quant.files else ""
    return fit_shape(shape, budget, request, profile=profile, calibration=calibration, file_key=key)


def recommend(
    profile: HardwareProfile | None,
    request: FitRequest,
    *,
    catalog: Sequence[CatalogModel] | None = None,
    backend: str | None = None,
    calibration: Calibration | None = None,
    local_files: Mapping[str, str] | None = None,
) -> tuple[Recommendation, ...]:
    """Every catalog file judged for this machine, grouped by size class, best marked.

    Args:
        profile: the probed hardware (None: every verdict is "unknown").
        request: context length, KV cache type, flash attention (n_ctx 0 = each model's
            trained context).
        catalog: the models (default: the shipped catalog).
        backend: the llama.cpp build (default: the installed one).
        calibration: this machine's measured runs.
        local_files: file name -> path of models already on disk.
    """
    from app.fit_service import installed_backend

    models = tuple(catalog) if catalog is not None else load_catalog()
    budget = machine_budget(profile, backend or installed_backend())
    local = local_files or {}
    rows: list[Recommendation] = []
    for model in sorted(models, key=_model_order):
        judged = [
            (q, judge_quant(model, q, budget, request, profile, calibration))
            for q in sorted(model.quants, key=lambda q: quality_rank(q.quant))
        ]
        best = _best(judged)
        for quant, verdict in judged:
            rows.append(_row(model, quant, verdict, quant is best, local))
    return tuple(rows)


def _model_order(model: CatalogModel) -> tuple[int, int, str]:
    size = model.size_class
    rank = SIZE_CLASS_ORDER.index(size) if size in SIZE_CLASS_ORDER else len(SIZE_CLASS_ORDER)
    return rank, model.parameters, model.name


def _best(judged: Sequence[tuple[CatalogQuant, FitVerdict]]) -> CatalogQuant | None:
    """The highest-quality quant among those with the best placement, preferring headroom."""
    fitting = [(q, v) for q, v in judged if v.verdict in ("full_gpu", "partial", "cpu_only")]
    if not fitting:
        return None
    top = min(PLACEMENT_RANK[v.verdict] for _, v in fitting)
    candidates = [(q, v) for q, v in fitting if PLACEMENT_RANK[v.verdict] == top]
    roomy = [(q, v) for q, v in candidates if not v.tight] or candidates
    return min(roomy, key=lambda qv: quality_rank(qv[0].quant))[0]


def _row(
    model: CatalogModel,
    quant: CatalogQuant,
    verdict: FitVerdict,
    best: bool,
    local: Mapping[str, str],
) -> Recommendation:
    size = verdict.memory.weights_bytes if verdict.memory is not None else 0
    shape_size = quant.size_bytes or size
    path = next((local[f] for f in quant.files if f in local), "")
    return Recommendation(
        model_id=model.id,
        model_name=model.name,
        size_class=model.size_class,  # type: ignore[arg-type]
        parameters_label=model.parameters_label,
        quant=quant.quant,
        repo=model.repo,
        file_name=quant.files[0] if quant.files else "",
        file_size_bytes=shape_size,
        quality_note=quant.quality,
        verdict=verdict,
        best=best,
        local_path=path,
    )
