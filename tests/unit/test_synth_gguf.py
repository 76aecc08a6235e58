"""Synthetic GGUF plans match real files, published sizes and llama-quantize's mix rules."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from gguf import GGMLQuantizationType as T

from app.quant_mix import QUANT_NAMES
from app.synth_gguf import (
    ArchConfig,
    file_size_bytes,
    header_size_bytes,
    tensor_data_bytes,
    tensor_plan,
    write_sparse_gguf,
)
from runtimes.gguf_header import GGUFHeader, read_header

CONFIGS = Path(__file__).parent.parent / "fixtures" / "model_configs.json"


def published(key: str) -> ArchConfig:
    return ArchConfig.from_dict(json.loads(CONFIGS.read_text())[key])


def config_from_header(h: GGUFHeader) -> ArchConfig:
    """Read the ArchConfig keys from a real file's metadata."""
    m = h.metadata
    arch = str(m["general.architecture"])

    def get(key: str) -> object:
        return m.get(f"{arch}.{key}", 0)

    return ArchConfig.from_dict(
        {
            "architecture": arch,
            "block_count": get("block_count"),
            "embedding_length": get("embedding_length"),
            "feed_forward_length": get("feed_forward_length"),
            "head_count": get("attention.head_count"),
            "head_count_kv": get("attention.head_count_kv"),
            "key_length": get("attention.key_length"),
            "value_length": get("attention.value_length"),
            "vocab_size": h.array_lengths["tokenizer.ggml.tokens"],
            "context_length": get("context_length"),
            "tied_embeddings": all(t.name != "output.weight" for t in h.tensors),
            "sliding_window": get("attention.sliding_window"),
            "rope_freq_base": get("rope.freq_base"),
            "rms_norm_eps": get("attention.layer_norm_rms_epsilon"),
        }
    )


def table(tensors: object) -> dict[str, tuple[tuple[int, ...], int]]:
    return {t.name: (tuple(t.shape), t.ggml_type) for t in tensors}  # type: ignore[attr-defined]


def types_of(plan: tuple, suffix: str) -> list[str]:  # type: ignore[type-arg]
    return [T(t.ggml_type).name for t in plan if t.name == suffix or t.name.endswith("." + suffix)]


def test_smollm2_q4_1_plan_is_the_real_tensor_table(smollm2_path: Path) -> None:
    real = read_header(smollm2_path)
    config = config_from_header(real)
    plan = tensor_plan(config, "Q4_1")
    assert table(plan) == table(real.tensors)
    assert len(plan) == 272
    # The tied embedding: Q4_1 -> output rule Q6_K -> 576 % 256 != 0 -> Q8_0.
    assert table(plan)["token_embd.weight"] == ((576, 49152), T.Q8_0)


def test_smollm2_data_bytes_are_exact_and_header_differs_only_by_tokenizer(
    smollm2_path: Path,
) -> None:
    real = read_header(smollm2_path)
    config = config_from_header(real)
    data = real.file_size - real.data_offset
    assert tensor_data_bytes(tensor_plan(config, "Q4_1")) == data == 96_576_768
    # The real header carries BPE merges, long token strings and a chat template.
    assert file_size_bytes(config, "Q4_1") == header_size_bytes(config, "Q4_1") + data
    assert real.data_offset - header_size_bytes(config, "Q4_1") == 1_785_664 - 1_088_032


def test_gemma3_q4_k_m_plan_is_the_real_tensor_table_in_order(gemma_path: Path) -> None:
    real = read_header(gemma_path)
    config = config_from_header(real)
    plan = tensor_plan(config, "Q4_K_M")
    assert [(t.name, t.shape, t.ggml_type) for t in plan] == [
        (t.name, t.shape, t.ggml_type) for t in real.tensors
    ]
    assert tensor_data_bytes(plan) == real.file_size - real.data_offset == 246_587_904
    # 640-wide rows cannot hold K-quants: Q4_K -> Q5_0, Q6_K -> Q8_0.
    assert set(types_of(plan, "attn_q.weight")) == {"Q5_0"}
    assert Counter(types_of(plan, "attn_v.weight")) == Counter({"Q8_0": 9, "Q5_0": 9})


@pytest.mark.parametrize(
    ("key", "published_gb"),
    [
        ("mistral-7b-v0.3", 4.37),  # bartowski/Mistral-7B-Instruct-v0.3-GGUF
        ("qwen2.5-7b-instruct", 4.68),  # Qwen/Qwen2.5-7B-Instruct-GGUF q4_k_m
        ("llama-3.3-70b-instruct", 42.5),  # bartowski/Llama-3.3-70B-Instruct-GGUF
    ],
)
def test_q4_k_m_file_size_matches_published_files(key: str, published_gb: float) -> None:
    size = file_size_bytes(published(key), "Q4_K_M")
    assert size / 1e9 == pytest.approx(published_gb, rel=0.01)


def test_q4_k_m_mix_of_a_32_layer_model_is_llama_quantizes() -> None:
    plan = tensor_plan(published("mistral-7b-v0.3"), "Q4_K_M")
    # Same counts llama-quantize prints for any 32-layer untied llama: 65 f32, 193 q4_K, 33 q6_K.
    assert Counter(T(t.ggml_type).name for t in plan) == {"F32": 65, "Q4_K": 193, "Q6_K": 33}
    more_bits = [i for i, name in enumerate(types_of(plan, "ffn_down.weight")) if name == "Q6_K"]
    assert more_bits == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
    assert types_of(plan, "output.weight") == ["Q6_K"]
    assert types_of(plan, "token_embd.weight") == ["Q4_K"]


def test_70b_models_get_the_attn_v_bump() -> None:
    llama = tensor_plan(published("llama-3.3-70b-instruct"), "Q4_K_M")
    assert Counter(types_of(llama, "attn_v.weight")) == {"Q6_K": 40, "Q5_K": 40}
    mistral_large = tensor_plan(published("mistral-large-2407"), "Q4_K_M")  # 88 layers: no bump
    assert "Q4_K" in types_of(mistral_large, "attn_v.weight")


def test_qwen2_72b_ffn_down_rows_fall_back_to_legacy_types() -> None:
    plan = tensor_plan(published("qwen2.5-72b-instruct"), "Q4_K_M")
    assert Counter(types_of(plan, "ffn_down.weight")) == {"Q8_0": 40, "Q5_0": 40}  # 29568 % 256
    assert types_of(plan, "blk.0.attn_q.bias") == ["F32"]


def test_q4_k_s_and_q3_k_m_rules() -> None:
    config = published("mistral-7b-v0.3")
    s = tensor_plan(config, "Q4_K_S")
    assert types_of(s, "attn_v.weight")[:5] == ["Q5_K"] * 4 + ["Q4_K"]
    assert types_of(s, "ffn_down.weight")[:5] == ["Q5_K"] * 4 + ["Q4_K"]
    m = tensor_plan(config, "Q3_K_M")
    assert types_of(m, "attn_v.weight")[:3] == ["Q5_K", "Q5_K", "Q4_K"]
    assert types_of(m, "ffn_down.weight")[:3] == ["Q5_K", "Q5_K", "Q4_K"]
    assert set(types_of(m, "attn_output.weight")) == {"Q4_K"}


def test_f16_file_is_two_bytes_per_weight_and_f32_norms() -> None:
    # Mistral-7B-v0.3: 7,248,023,552 parameters, of which 266,240 are norm weights.
    data = tensor_data_bytes(tensor_plan(published("mistral-7b-v0.3"), "F16"))
    assert data == 2 * 7_248_023_552 + 2 * 266_240


def test_deepseek2_plan_uses_split_mla_tensors_and_experts() -> None:
    plan = {t.name: t for t in tensor_plan(published("deepseek-v3"), "Q4_K_M")}
    assert plan["blk.0.attn_k_b.weight"].shape == (128, 512, 128)
    assert plan["blk.0.attn_v_b.weight"].shape == (512, 128, 128)
    assert plan["blk.0.attn_kv_a_mqa.weight"].shape == (7168, 576)
    assert plan["blk.0.ffn_down.weight"].shape == (18432, 7168)
    assert "blk.2.ffn_gate_exps.weight" not in plan
    assert plan["blk.3.ffn_down_exps.weight"].shape == (2048, 7168, 256)
    assert plan["blk.3.ffn_gate_inp.weight"].ggml_type == T.F32
    assert plan["blk.3.exp_probs_b.bias"].shape == (256,)
    assert plan["blk.60.ffn_up_shexp.weight"].shape == (7168, 2048)


def test_phi3_and_qwen3moe_fused_and_expert_shapes() -> None:
    phi = {t.name: t for t in tensor_plan(published("phi-4"), "Q4_K_M")}
    assert phi["blk.0.attn_qkv.weight"].shape == (5120, 5120 + 2 * 1280)
    assert phi["blk.0.ffn_up.weight"].shape == (5120, 2 * 17920)
    moe = {t.name: t for t in tensor_plan(published("qwen3-30b-a3b"), "Q4_K_M")}
    assert moe["blk.0.ffn_gate_exps.weight"].shape == (2048, 768, 128)
    assert moe["blk.0.attn_q.weight"].shape == (2048, 4096)
    assert moe["blk.0.attn_k_norm.weight"].shape == (128,)


@pytest.mark.parametrize("quant", QUANT_NAMES)
def test_every_file_type_writes_a_parseable_file_of_the_planned_size(
    quant: str, tmp_path: Path
) -> None:
    config = published("mistral-7b-v0.3")
    path = write_sparse_gguf(config, quant, tmp_path / "m.gguf")
    header = read_header(path)
    assert path.stat().st_size == file_size_bytes(config, quant) == header.expected_size
    assert table(header.tensors) == table(tensor_plan(config, quant))


def test_70b_header_is_sparse_and_fast(tmp_path: Path) -> None:
    config = published("llama-3.3-70b-instruct")
    start = time.perf_counter()
    path = write_sparse_gguf(config, "Q4_K_M", tmp_path / "70b.gguf", name="Llama 3.3 70B")
    assert time.perf_counter() - start < 10.0  # writing 42 GB of zeros would take minutes
    assert path.stat().st_size == file_size_bytes(config, "Q4_K_M", name="Llama 3.3 70B")
    assert path.stat().st_blocks * 512 < 16 * 2**20
    assert read_header(path).metadata["general.name"] == "Llama 3.3 70B"


def test_arch_config_round_trips_and_rejects_unknown_types() -> None:
    config = published("deepseek-v3")
    assert ArchConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["kv_lora_rank"] == 512
    with pytest.raises(ValueError, match="unsupported file type"):
        tensor_plan(config, "Q9_K")
    with pytest.raises(ValueError, match="unsupported architecture"):
        tensor_plan(ArchConfig("gpt2", 1, 8, 8, 1), "F16")
