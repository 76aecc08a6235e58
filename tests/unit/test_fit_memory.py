"""Memory of a placement: KV cache to the byte, compute formulas, placement rules, residency.

Expected values are worked out by hand from reference/fit.md §2 (llama.cpp's allocations), on
small hand-built shapes whose every number is visible in the test.
"""

from __future__ import annotations

import dataclasses

import pytest

from app.fit_memory import (
    GPU_OVERHEAD_BYTES,
    PROCESS_BASE_BYTES,
    Measured,
    attention_phase_bytes,
    breakdown,
    compute_bytes_formula,
    cpu_work_bytes,
    ffn_phase_bytes,
    kv_cache_bytes,
    kv_layer_bytes,
    logits_phase_bytes,
    output_buffer_bytes,
    pad_cells,
    resident_cpu_bytes,
    vocab_bytes,
)
from app.fit_types import MIB, FitRequest
from app.model_shape import ModelShape

MB = 1_000_000


def make_shape(**changes: object) -> ModelShape:
    """A 4-layer GQA model: 8 heads, 2 KV heads of 64 (K and V width 128), vocab 1000."""
    n = int(changes.pop("n_layers", 4))  # type: ignore[call-overload]
    base = ModelShape(
        name="toy",
        architecture="llama",
        n_layers=n,
        n_embd=512,
        n_ff=1536,
        n_head=8,
        n_vocab=1000,
        n_ctx_train=8192,
        k_widths=(128,) * n,
        v_widths=(128,) * n,
        swa_layers=(False,) * n,
        n_swa=0,
        is_mla=False,
        expert_count=0,
        expert_used_count=0,
        layer_bytes=tuple(10 * MB + il for il in range(n)),
        layer_expert_bytes=(0,) * n,
        input_bytes=3 * MB,
        output_bytes=5 * MB,
        tied_embeddings=False,
        layer_repack_bytes=(4 * MB,) * n,
        n_merges=500,
        weights_bytes=sum(10 * MB + il for il in range(n)) + 3 * MB + 5 * MB,
        file_size=0,
        parameter_count=1_000_000,
        quantization="Q4_K_M",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# --- KV cache ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_ctx", "cells"), [(1, 256), (256, 256), (257, 512), (1000, 1024), (8192, 8192)]
)
def test_context_is_padded_to_multiples_of_256_cells(n_ctx: int, cells: int) -> None:
    assert pad_cells(n_ctx) == cells


def test_f16_kv_cache_of_1000_tokens_holds_1024_cells_of_k_and_v() -> None:
    shape = make_shape()
    # 1024 cells x (128 K + 128 V) x 2 bytes, per layer
    assert kv_layer_bytes(shape, 1000, FitRequest()) == (1024 * 256 * 2,) * 4
    assert kv_cache_bytes(shape, 1000, FitRequest()) == 4 * 1024 * 256 * 2


@pytest.mark.parametrize(("kv_type", "per_row"), [("f16", 256), ("q8_0", 136), ("q4_0", 72)])
def test_quantized_kv_caches_use_ggml_block_sizes(kv_type: str, per_row: int) -> None:
    # 256 values a cell: f16 2 B each; q8_0 8 blocks x 34 B; q4_0 8 blocks x 18 B
    request = FitRequest(kv_cache_type=kv_type, flash_attn=True)
    assert kv_cache_bytes(make_shape(), 2048, request) == 4 * 2048 * per_row * 2


def test_gqa_caches_only_the_kv_heads() -> None:
    mha = make_shape(k_widths=(512,) * 4, v_widths=(512,) * 4)  # 8 KV heads of 64
    gqa = make_shape()  # 2 KV heads of 64
    assert kv_cache_bytes(mha, 4096, FitRequest()) == 4 * kv_cache_bytes(gqa, 4096, FitRequest())


def gemma_like() -> ModelShape:
    """12 layers in Gemma 3's pattern 6 (5 sliding-window layers, then 1 global), window 512."""
    swa = tuple(il % 6 < 5 for il in range(12))
    return make_shape(n_layers=12, swa_layers=swa, n_swa=512, architecture="gemma3")


def test_sliding_window_layers_keep_full_caches_with_swa_full() -> None:
    shape = gemma_like()
    request = FitRequest(n_ctx=32768, swa_full=True)
    assert kv_layer_bytes(shape, 32768, request) == (32768 * 512,) * 12


@pytest.mark.parametrize(
    ("n_ctx", "n_ubatch", "swa_cells"),
    [(32768, 512, 1024), (32768, 128, 768), (32768, 2048, 2560), (600, 512, 768)],
)
def test_sliding_window_layers_get_window_plus_ubatch_cells_without_swa_full(
    n_ctx: int, n_ubatch: int, swa_cells: int
) -> None:
    # cells_swa = pad256(min(n_ctx, n_swa + n_ubatch)); global layers keep pad256(n_ctx)
    shape = gemma_like()
    request = FitRequest(n_ctx=n_ctx, swa_full=False, n_ubatch=n_ubatch)
    per_layer = kv_layer_bytes(shape, n_ctx, request)
    full = pad_cells(n_ctx)
    assert per_layer == tuple((swa_cells if il % 6 < 5 else full) * 512 for il in range(12))
    assert kv_cache_bytes(shape, n_ctx, request) == (10 * swa_cells + 2 * full) * 512


def test_mla_caches_only_the_latent_k() -> None:
    # DeepSeek V3: 61 layers, K = kv_lora_rank 512 + rope 64 = 576 values, no V
    shape = make_shape(n_layers=61, k_widths=(576,) * 61, v_widths=(0,) * 61, is_mla=True)
    assert kv_cache_bytes(shape, 8192, FitRequest()) == 61 * 8192 * 576 * 2
    assert round(kv_cache_bytes(shape, 8192, FitRequest()) / MIB, 2) == 549.0


# --- compute buffer ---------------------------------------------------------------------


def test_logits_phase_is_four_bytes_per_ubatch_token_of_vocab_plus_two_embeddings() -> None:
    shape = make_shape(n_vocab=128256, n_embd=8192)
    assert logits_phase_bytes(shape, 512) == 4 * 512 * (128256 + 2 * 8192)
    assert logits_phase_bytes(shape, 128) == 4 * 128 * (128256 + 2 * 8192)


def test_attention_phase_without_flash_attention_holds_scores_of_every_head() -> None:
    shape = make_shape()
    request = FitRequest(n_ctx=4096, flash_attn=False)
    # cells x (8 heads + 1 mask) + n_ff + 3 n_embd, f32, per ubatch token
    expected = 4 * 512 * (4096 * 9 + 1536 + 3 * 512)
    assert attention_phase_bytes(shape, 4096, request) == expected


def test_attention_phase_with_flash_attention_holds_only_the_mask() -> None:
    shape = make_shape()
    request = FitRequest(n_ctx=4096, flash_attn=True)
    assert attention_phase_bytes(shape, 4096, request) == 4 * 512 * (4096 + 1536 + 3 * 512)


def test_sliding_window_models_carry_a_second_mask() -> None:
    shape = gemma_like()
    no_fa = FitRequest(n_ctx=4096)
    fa = FitRequest(n_ctx=4096, flash_attn=True)
    assert attention_phase_bytes(shape, 4096, no_fa) == 4 * 512 * (4096 * 10 + 1536 + 1536)
    assert attention_phase_bytes(shape, 4096, fa) == 4 * 512 * (4096 * 2 + 1536 + 1536)


def test_mla_attention_adds_absorbed_queries_of_every_head() -> None:
    shape = make_shape(k_widths=(576,) * 4, v_widths=(0,) * 4, is_mla=True)
    request = FitRequest(n_ctx=1024, flash_attn=True)
    expected = 4 * 512 * (1024 + 1536 + 3 * 512 + 2 * 576 * 8)
    assert attention_phase_bytes(shape, 1024, request) == expected


def test_ffn_phase_holds_gate_up_and_product_and_the_f16_mask_with_flash_attention() -> None:
    # Mistral Large 2 shapes: llama.cpp's dry run reserves 264.50 MiB at ctx 512 with FA
    shape = make_shape(n_embd=12288, n_ff=28672)
    fa = FitRequest(n_ctx=512, flash_attn=True)
    assert ffn_phase_bytes(shape, 512, fa) == 4 * 512 * (3 * 28672 + 4 * 12288) + 2 * 512 * 512
    assert ffn_phase_bytes(shape, 512, fa) == int(264.5 * MIB)
    assert ffn_phase_bytes(shape, 512, FitRequest(n_ctx=512)) == 264 * MIB


def test_compute_buffer_is_the_largest_phase() -> None:
    big_vocab = make_shape(n_vocab=262144)
    request = FitRequest(n_ctx=4096, flash_attn=True)
    assert compute_bytes_formula(big_vocab, 4096, request) == logits_phase_bytes(big_vocab, 512)
    no_fa = FitRequest(n_ctx=32768)
    assert compute_bytes_formula(big_vocab, 32768, no_fa) == attention_phase_bytes(
        big_vocab, 32768, no_fa
    )
    small_vocab = make_shape(n_vocab=32768, n_embd=12288, n_ff=28672)
    assert compute_bytes_formula(small_vocab, 4096, request) == ffn_phase_bytes(
        small_vocab, 4096, request
    )


def test_cpu_work_buffer_holds_f16_scores_without_flash_attention_only() -> None:
    shape = make_shape()
    assert cpu_work_bytes(shape, 1000, FitRequest()) == 2 * 1024 * 512 * 8
    assert cpu_work_bytes(shape, 1000, FitRequest(flash_attn=True)) == 0


def test_vocabulary_and_output_buffer_sizes() -> None:
    shape = make_shape()
    assert vocab_bytes(shape) == 160 * 1000 + 100 * 500
    assert output_buffer_bytes(shape) == 4 * 1000


# --- placement ----------------------------------------------------------------------------


def test_the_last_layers_go_to_the_gpu_with_their_kv_cache() -> None:
    shape = make_shape()
    request = FitRequest(n_ctx=1024)
    mem = breakdown(shape, 1024, request, 2, "CUDA")
    assert mem.weights_gpu_bytes == shape.layer_bytes[2] + shape.layer_bytes[3]
    assert mem.kv_gpu_bytes == 2 * 1024 * 512
    assert mem.kv_cache_bytes == 4 * 1024 * 512
    assert mem.weights_bytes == shape.weights_bytes


def test_the_output_layer_goes_to_the_gpu_only_beyond_all_layers() -> None:
    shape = make_shape()
    all_layers = breakdown(shape, 1024, FitRequest(), 4, "CUDA")
    with_output = breakdown(shape, 1024, FitRequest(), 5, "CUDA")
    assert all_layers.weights_gpu_bytes == sum(shape.layer_bytes)
    assert with_output.weights_gpu_bytes == sum(shape.layer_bytes) + shape.output_bytes


def test_a_tied_embedding_is_copied_to_vram_on_cuda_but_mapped_on_metal() -> None:
    shape = make_shape(tied_embeddings=True)
    cuda = breakdown(shape, 1024, FitRequest(), 5, "CUDA")
    metal = breakdown(shape, 1024, FitRequest(), 5, "Metal")
    assert cuda.weights_bytes == shape.weights_bytes + shape.output_bytes
    assert metal.weights_bytes == shape.weights_bytes
    assert cuda.weights_gpu_bytes == metal.weights_gpu_bytes


def test_gpu_overhead_depends_on_backend_and_gpu_count() -> None:
    shape = make_shape()
    host = PROCESS_BASE_BYTES + vocab_bytes(shape)
    cuda2 = breakdown(shape, 1024, FitRequest(), 5, "CUDA", n_gpus=2)
    metal = breakdown(shape, 1024, FitRequest(), 5, "Metal")
    cpu = breakdown(shape, 1024, FitRequest(), 5, "CPU")
    assert cuda2.overhead_gpu_bytes == 2 * 457 * MIB == 2 * GPU_OVERHEAD_BYTES["CUDA"]
    assert cuda2.overhead_bytes == host + 2 * 457 * MIB
    assert metal.overhead_gpu_bytes == 256 * MIB
    assert (cpu.overhead_gpu_bytes, cpu.gpu_bytes, cpu.overhead_bytes) == (0, 0, host)


def test_gpu_compute_and_host_compute_split() -> None:
    shape = make_shape()
    request = FitRequest(n_ctx=1024)
    compute = compute_bytes_formula(shape, 1024, request)
    full = breakdown(shape, 1024, request, 5, "CUDA")
    partial = breakdown(shape, 1024, request, 2, "CUDA")
    inputs = 4 * 512 * 512
    assert full.compute_gpu_bytes == compute
    assert full.compute_bytes == compute + inputs
    assert partial.compute_bytes == compute + inputs + logits_phase_bytes(shape, 512)


def test_cpu_only_compute_includes_the_work_buffer() -> None:
    shape = make_shape()
    request = FitRequest(n_ctx=1024)
    mem = breakdown(shape, 1024, request, 0, "CUDA")
    assert mem.gpu_bytes == 0
    assert mem.compute_bytes == compute_bytes_formula(shape, 1024, request) + cpu_work_bytes(
        shape, 1024, request
    )


def test_repacked_weights_count_only_with_cpu_repack_and_only_for_cpu_layers() -> None:
    shape = make_shape()
    request = FitRequest(n_ctx=1024)
    plain = breakdown(shape, 1024, request, 0, "CPU")
    repacked = breakdown(shape, 1024, request, 0, "CPU", cpu_repack=True)
    assert repacked.resident_bytes - plain.resident_bytes == 4 * 4 * MB
    assert repacked.weights_bytes == plain.weights_bytes == shape.weights_bytes


def test_dry_run_figures_replace_formulas_and_say_so() -> None:
    shape = make_shape()
    request = FitRequest(n_ctx=1024)
    kv = kv_cache_bytes(shape, 1024, request)
    measured = Measured(kv_bytes=kv, compute_bytes=7 * MIB, output_bytes=MIB)
    mem = breakdown(shape, 1024, request, 0, "CPU", measured=measured)
    assert mem.source == "llama.cpp dry run"
    assert mem.compute_bytes == 7 * MIB + cpu_work_bytes(shape, 1024, request)
    assert mem.output_bytes == MIB
    assert breakdown(shape, 1024, request, 0, "CPU").source == "formula"


def test_a_dry_run_kv_total_that_differs_is_trusted_and_split_like_the_formula() -> None:
    shape = make_shape()
    request = FitRequest(n_ctx=1024)
    kv = kv_cache_bytes(shape, 1024, request)
    measured = Measured(kv_bytes=2 * kv, compute_bytes=MIB, output_bytes=0)
    mem = breakdown(shape, 1024, request, 2, "CUDA", measured=measured)
    assert mem.kv_cache_bytes == 2 * kv
    assert mem.kv_gpu_bytes == kv


def test_totals_add_up() -> None:
    mem = breakdown(make_shape(), 1024, FitRequest(), 2, "CUDA")
    assert mem.total_bytes == (
        mem.weights_bytes
        + mem.kv_cache_bytes
        + mem.compute_bytes
        + mem.output_bytes
        + mem.overhead_bytes
    )
    assert mem.host_bytes == mem.total_bytes - mem.gpu_bytes


# --- resident memory ----------------------------------------------------------------------


def test_resident_bytes_count_what_a_cpu_run_touches() -> None:
    shape = make_shape()
    request = FitRequest(n_ctx=1024)
    got = resident_cpu_bytes(shape, 1024, request, kv_bytes=1000, extra_bytes=7, process_base=9)
    weights = sum(shape.layer_bytes) + shape.output_bytes  # not the untied input embedding
    compute = attention_phase_bytes(shape, 1024, request)  # larger than one token's logits
    assert compute > 4 * (1000 + 2 * 512 * 512)
    assert got == 9 + weights + 1000 + compute + 7


def test_resident_bytes_are_less_than_allocated_for_a_big_vocabulary() -> None:
    shape = make_shape(n_vocab=151936)
    request = FitRequest(n_ctx=1024, flash_attn=True)
    mem = breakdown(shape, 1024, request, 0, "CPU")
    # allocated: the logits of all 512 ubatch rows; written: the feed-forward phase (larger
    # than one token's logits here); the untied input embedding is only looked up
    written = ffn_phase_bytes(shape, 1024, request)
    assert written > 4 * (151936 + 2 * 512 * 512)
    unwritten = logits_phase_bytes(shape, 512) - written
    assert mem.total_bytes - mem.resident_bytes == shape.input_bytes + unwritten
    assert breakdown(shape, 1024, request, 4, "Metal").resident_bytes == 0
