"""Memory estimates: KV cache to llama.cpp's byte, weights, and the refusal with numbers.

KV figures are llama.cpp's own log lines ("llama_kv_cache: size = ...") for the real models,
and reference/fit.md §2.9 (llama.cpp dry runs) for the 70B and Mistral shapes.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from app.errors import InvalidModelFile, UserFacingError
from app.memory import (
    GIB,
    MIB,
    KVGeometry,
    MemoryEstimate,
    WontFit,
    check_fits,
    estimate_load,
    kv_cache_bytes,
)
from runtimes.base import KVCacheType, LoadOptions
from runtimes.gguf_header import read_header


def write_header(
    path: Path,
    *,
    arch: str = "llama",
    layers: int = 80,
    embedding: int = 8192,
    heads: int | list[int] = 64,
    kv_heads: int | list[int] | None = 8,
    key_length: int | None = None,
    value_length: int | None = None,
    context: int = 131072,
) -> Path:
    """A GGUF file with a model's attention shape and one tiny tensor (no real weights)."""
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(layers)
    writer.add_embedding_length(embedding)
    writer.add_context_length(context)
    for key, value in (("head_count", heads), ("head_count_kv", kv_heads)):
        if isinstance(value, list):
            writer.add_array(f"{arch}.attention.{key}", value)
        elif value is not None:
            writer.add_uint32(f"{arch}.attention.{key}", value)
    if key_length is not None:
        writer.add_key_length(key_length)
    if value_length is not None:
        writer.add_value_length(value_length)
    writer.add_tensor("output_norm.weight", np.zeros((16,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _kv(path: Path, n_ctx: int, kv_type: KVCacheType = "f16") -> int:
    return kv_cache_bytes(KVGeometry.from_header(read_header(path)), n_ctx, kv_type)


@pytest.mark.parametrize(
    ("n_ctx", "kv_type", "mib"),
    [(2048, "f16", 45.0), (8192, "f16", 180.0), (2048, "q8_0", 23.90625)],
)
def test_smollm2_kv_cache_is_what_llama_cpp_allocates(
    smollm2_path: Path, n_ctx: int, kv_type: KVCacheType, mib: float
) -> None:
    # llama.cpp: "size = 45.00 MiB (2048 cells, 30 layers)", q8_0 "23.91 MiB".
    assert _kv(smollm2_path, n_ctx, kv_type) == mib * MIB


def test_smollm2_takes_22_5_kib_per_token_in_f16(smollm2_path: Path) -> None:
    geometry = KVGeometry.from_header(read_header(smollm2_path))
    assert geometry.bytes_per_cell("f16") == 22.5 * 1024
    assert geometry.k_widths == (192,) * 30  # 64-value heads x 3 KV heads


@pytest.mark.parametrize(("n_ctx", "mib"), [(2048, 36.0), (4096, 72.0), (32768, 576.0)])
def test_gemma3_kv_cache_uses_its_key_length_and_full_swa_caches(
    gemma_path: Path, n_ctx: int, mib: float
) -> None:
    # llama.cpp: 6.00 + 30.00 MiB at 2048, 12.00 + 60.00 at 4096 (global + SWA caches, full
    # size: llama-cpp-python keeps swa_full on). Heads are 256 wide, not 640 / 4 = 160.
    assert _kv(gemma_path, n_ctx) == mib * MIB


@pytest.mark.parametrize(("kv_type", "mib"), [("f16", 2560), ("q8_0", 1360), ("q4_0", 720)])
def test_llama_70b_shape_matches_llama_cpp_dry_run(
    tmp_path: Path, kv_type: KVCacheType, mib: int
) -> None:
    path = write_header(tmp_path / "70b.gguf")
    assert _kv(path, 8192, kv_type) == mib * MIB


def test_context_is_padded_to_256_cells(tmp_path: Path) -> None:
    path = write_header(tmp_path / "m.gguf", layers=32, embedding=4096, heads=32, kv_heads=8)
    assert _kv(path, 4096) == 512 * MIB  # Mistral 7B at 4096 (fit.md §2.9)
    assert _kv(path, 4000) == _kv(path, 4096)
    assert _kv(path, 4097) == _kv(path, 4096 + 256)


def test_no_kv_head_count_means_one_kv_head_per_query_head(tmp_path: Path) -> None:
    path = write_header(tmp_path / "m.gguf", layers=2, embedding=256, heads=4, kv_heads=None)
    # 2 layers x (256 K + 256 V) x 2 bytes x 256 cells.
    assert _kv(path, 256) == 2 * 512 * 2 * 256


def test_per_layer_kv_heads_and_explicit_head_sizes(tmp_path: Path) -> None:
    path = write_header(
        tmp_path / "m.gguf",
        layers=3,
        embedding=512,
        heads=[8, 8, 8],
        kv_heads=[2, 0, 4],  # a layer without attention keeps no cache
        key_length=128,
        value_length=64,
    )
    geometry = KVGeometry.from_header(read_header(path))
    assert geometry.k_widths == (256, 0, 512)
    assert geometry.v_widths == (128, 0, 256)
    assert _kv(path, 256) == (256 + 512 + 128 + 256) * 2 * 256


def test_estimate_adds_a_tenth_to_the_file_and_uses_the_trained_context_for_zero(
    tmp_path: Path,
) -> None:
    path = write_header(tmp_path / "m.gguf", layers=2, embedding=256, heads=4, context=1024)
    estimate = estimate_load(path, LoadOptions(n_ctx=0))
    assert estimate.weights_bytes == int(path.stat().st_size * 1.1)
    assert estimate.kv_bytes == _kv(path, 1024)
    assert estimate.total_bytes == estimate.weights_bytes + estimate.kv_bytes


def test_estimate_of_smollm2_at_2048(smollm2_path: Path) -> None:
    estimate = estimate_load(smollm2_path, LoadOptions(n_ctx=2048))
    assert estimate.kv_bytes == 45 * MIB
    assert estimate.weights_bytes == int(smollm2_path.stat().st_size * 1.1)


def test_estimate_of_a_file_that_is_not_gguf_is_invalid_model_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model at all" * 10)
    with pytest.raises(InvalidModelFile):
        estimate_load(bad, LoadOptions())


NEEDS_5_2 = MemoryEstimate(weights_bytes=int(4.8 * GIB), kv_bytes=int(0.4 * GIB))


def test_a_load_that_fits_passes() -> None:
    check_fits("/m/x.gguf", NEEDS_5_2, available_bytes=7 * GIB)


def test_refusal_names_the_model_and_gives_the_numbers_with_models_loaded() -> None:
    with pytest.raises(WontFit) as caught:
        check_fits("/m/big.Q4_K_M.gguf", NEEDS_5_2, int(8.1 * GIB), loaded=(2, 4 * GIB))
    error = caught.value
    assert isinstance(error, UserFacingError)
    assert error.message == (
        "Loading big.Q4_K_M.gguf needs ~5.2 GiB but only 3.1 GiB is free "
        "(2 models loaded use 4.0 GiB). Unload a model or choose a smaller quantization."
    )
    assert (error.needed_bytes, error.loaded_count, error.loaded_bytes) == (
        NEEDS_5_2.total_bytes,
        2,
        4 * GIB,
    )
    assert "KV cache 410 MiB" in error.details


def test_refusal_with_nothing_loaded_suggests_a_smaller_file_or_context() -> None:
    with pytest.raises(WontFit) as caught:
        check_fits("x.gguf", NEEDS_5_2, available_bytes=2 * GIB)
    assert caught.value.message == (
        "Loading x.gguf needs ~5.2 GiB but only 1.0 GiB is free. "
        "Choose a smaller quantization or a shorter context."
    )


def test_one_loaded_model_is_singular_and_free_memory_never_shows_negative() -> None:
    with pytest.raises(WontFit) as caught:
        check_fits("x.gguf", NEEDS_5_2, available_bytes=2 * GIB, loaded=(1, 3 * GIB))
    assert "only 0 MiB is free (1 model loaded uses 3.0 GiB)" in caught.value.message
    assert caught.value.free_bytes == -2 * GIB


def test_the_margin_is_kept_free() -> None:
    exact = MemoryEstimate(weights_bytes=3 * GIB, kv_bytes=0)
    check_fits("x.gguf", exact, available_bytes=4 * GIB)
    with pytest.raises(WontFit):
        check_fits("x.gguf", exact, available_bytes=4 * GIB - 1)
    check_fits("x.gguf", exact, available_bytes=3 * GIB, margin_bytes=0)
