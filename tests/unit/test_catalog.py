"""The shipped model catalog and its loader: coverage, architecture sanity, validation."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from app.catalog import (
    ARCH_KEYS,
    CATALOG_ENV,
    LLAMA_FILE_TYPES,
    CatalogError,
    CatalogModel,
    UnknownCatalogModel,
    default_catalog_path,
    find_model,
    format_parameter_count,
    load_catalog,
    require_model,
)
from app.errors import UserFacingError

EXPECTED_IDS = {
    "llama-3.3-70b-instruct",
    "mistral-large-instruct-2407",
    "deepseek-v3",
    "llama-3.1-8b-instruct",
    "llama-3.2-1b-instruct",
    "llama-3.2-3b-instruct",
    "mistral-7b-instruct-v0.3",
    "mistral-small-24b-instruct-2501",
    "qwen2.5-0.5b-instruct",
    "qwen2.5-1.5b-instruct",
    "qwen2.5-3b-instruct",
    "qwen2.5-7b-instruct",
    "qwen2.5-14b-instruct",
    "qwen2.5-32b-instruct",
    "qwen2.5-72b-instruct",
    "qwen2.5-coder-7b-instruct",
    "qwen2.5-coder-32b-instruct",
    "qwen3-4b",
    "qwen3-8b",
    "qwen3-14b",
    "qwen3-32b",
    "qwen3-30b-a3b",
    "gemma-3-1b-it",
    "gemma-3-4b-it",
    "gemma-3-12b-it",
    "gemma-3-27b-it",
    "phi-4",
    "deepseek-r1-distill-qwen-1.5b",
    "deepseek-r1-distill-qwen-7b",
    "deepseek-r1-distill-llama-8b",
    "deepseek-r1-distill-qwen-14b",
    "deepseek-r1-distill-qwen-32b",
    "deepseek-r1-distill-llama-70b",
    "smollm2-135m-instruct",
    "smollm2-360m-instruct",
    "smollm2-1.7b-instruct",
}
# Configs that set head_dim explicitly, so key_length x head_count need not equal n_embd.
EXPLICIT_HEAD_DIM = {"mistral-small-24b-instruct-2501"}
GGUF_ARCHS = {"llama", "qwen2", "qwen3", "qwen3moe", "gemma3", "phi3", "deepseek2"}
SHIPPED = Path(__file__).resolve().parents[2] / "resources" / "catalog.json"


@pytest.fixture(scope="module")
def catalog() -> tuple[CatalogModel, ...]:
    return load_catalog(SHIPPED)


@pytest.fixture
def document() -> dict[str, object]:
    return json.loads(SHIPPED.read_text(encoding="utf-8"))


def by_id(catalog: tuple[CatalogModel, ...], model_id: str) -> CatalogModel:
    return next(m for m in catalog if m.id == model_id)


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


# --- the shipped catalog -------------------------------------------------------------------


def test_default_path_is_the_shipped_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CATALOG_ENV, raising=False)
    assert default_catalog_path() == SHIPPED
    assert {m.id for m in load_catalog()} == EXPECTED_IDS


def test_environment_variable_overrides_the_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, document: dict[str, object]
) -> None:
    models = document["models"]
    assert isinstance(models, list)
    document["models"] = models[:1]
    monkeypatch.setenv(CATALOG_ENV, str(write(tmp_path, document)))
    assert [m.id for m in load_catalog()] == ["llama-3.3-70b-instruct"]


def test_catalog_covers_every_requested_model(catalog: tuple[CatalogModel, ...]) -> None:
    ids = [m.id for m in catalog]
    assert set(ids) == EXPECTED_IDS
    assert len(ids) == len(set(ids))


def test_every_arch_has_exactly_the_synth_keys(catalog: tuple[CatalogModel, ...]) -> None:
    for model in catalog:
        assert set(model.arch) == ARCH_KEYS, model.id
        assert model.arch["architecture"] in GGUF_ARCHS, model.id
        assert model.arch_source.startswith("https://huggingface.co/"), model.id
        assert model.arch_source.endswith("/config.json"), model.id


def test_head_counts_are_consistent(catalog: tuple[CatalogModel, ...]) -> None:
    for model in catalog:
        arch = model.arch
        head_count, kv = arch["head_count"], arch["head_count_kv"]
        assert isinstance(head_count, int) and isinstance(kv, int)
        assert head_count % kv == 0, model.id
        assert arch["context_length"] == model.context_length, model.id
        if arch["architecture"] in {"llama", "qwen2", "phi3"} and model.id not in EXPLICIT_HEAD_DIM:
            assert arch["key_length"] == arch["value_length"], model.id
            assert arch["key_length"] * head_count == arch["embedding_length"], model.id


def test_known_shapes_match_the_published_configs(catalog: tuple[CatalogModel, ...]) -> None:
    llama70 = by_id(catalog, "llama-3.3-70b-instruct").arch
    assert (llama70["block_count"], llama70["embedding_length"], llama70["head_count_kv"]) == (
        80,
        8192,
        8,
    )
    assert llama70["vocab_size"] == 128256
    qwen7 = by_id(catalog, "qwen2.5-7b-instruct").arch
    assert (qwen7["block_count"], qwen7["head_count"], qwen7["head_count_kv"]) == (28, 28, 4)
    assert qwen7["attention_bias"] is True
    smol = by_id(catalog, "smollm2-135m-instruct").arch
    assert (smol["embedding_length"], smol["head_count"], smol["tied_embeddings"]) == (
        576,
        9,
        True,
    )
    mistral_small = by_id(catalog, "mistral-small-24b-instruct-2501").arch
    assert mistral_small["key_length"] == 128
    assert mistral_small["embedding_length"] == 5120


def test_moe_models_have_experts_and_dense_models_none(
    catalog: tuple[CatalogModel, ...],
) -> None:
    for model in catalog:
        experts = model.arch["expert_count"]
        assert isinstance(experts, int)
        if "moe" in model.tags:
            used = model.arch["expert_used_count"]
            assert isinstance(used, int)
            assert 0 < used < experts, model.id
            assert model.arch["expert_feed_forward_length"], model.id
            assert model.active_parameters < model.parameters, model.id
        else:
            assert experts == 0, model.id
            assert model.active_parameters == model.parameters, model.id
    qwen_moe = by_id(catalog, "qwen3-30b-a3b").arch
    assert (qwen_moe["expert_count"], qwen_moe["expert_used_count"]) == (128, 8)


def test_deepseek_v3_has_mla_ranks(catalog: tuple[CatalogModel, ...]) -> None:
    arch = by_id(catalog, "deepseek-v3").arch
    assert arch["architecture"] == "deepseek2"
    assert (arch["kv_lora_rank"], arch["q_lora_rank"]) == (512, 1536)
    assert (arch["qk_rope_head_dim"], arch["qk_nope_head_dim"], arch["v_head_dim"]) == (
        64,
        128,
        128,
    )
    assert (arch["expert_count"], arch["expert_used_count"], arch["expert_shared_count"]) == (
        256,
        8,
        1,
    )
    assert arch["leading_dense_block_count"] == 3
    assert arch["block_count"] == 61


def test_only_deepseek_uses_mla(catalog: tuple[CatalogModel, ...]) -> None:
    for model in catalog:
        if model.arch["architecture"] != "deepseek2":
            assert model.arch["kv_lora_rank"] == 0, model.id


def test_gemma3_has_sliding_window_and_pattern(catalog: tuple[CatalogModel, ...]) -> None:
    windows = {}
    for model in catalog:
        if model.arch["architecture"] == "gemma3":
            assert model.arch["sliding_window_pattern"] == 6, model.id
            windows[model.id] = model.arch["sliding_window"]
        else:
            assert model.arch["sliding_window_pattern"] == 0, model.id
            assert model.arch["sliding_window"] == 0, model.id
    assert windows == {
        "gemma-3-1b-it": 512,
        "gemma-3-4b-it": 1024,
        "gemma-3-12b-it": 1024,
        "gemma-3-27b-it": 1024,
    }


@pytest.mark.parametrize(
    ("size_class", "low", "high"),
    [
        ("tiny", 0, 3e9),
        ("small", 3e9, 10e9),
        ("medium", 10e9, 36e9),
        ("large", 36e9, 130e9 + 1),
        ("huge", 130e9, 1e13),
    ],
)
def test_size_classes_agree_with_parameters(
    catalog: tuple[CatalogModel, ...], size_class: str, low: float, high: float
) -> None:
    members = [m for m in catalog if m.size_class == size_class]
    assert members
    for model in members:
        assert low <= model.parameters < high, model.id


def test_quants_are_llama_cpp_file_types_with_matching_files(
    catalog: tuple[CatalogModel, ...],
) -> None:
    for model in catalog:
        for quant in model.quants:
            assert quant.quant in LLAMA_FILE_TYPES
            assert quant.quality.startswith(f"{quant.quant}:"), (model.id, quant.quant)
            if quant.size_bytes is None:
                assert quant.size_source is None
            for index, file in enumerate(quant.files, start=1):
                assert file.endswith(".gguf")
                assert quant.quant.lower() in file.lower(), file
                if quant.is_split:
                    assert file.endswith(f"-{index:05d}-of-{len(quant.files):05d}.gguf"), file


def test_every_model_offers_q4_k_m(catalog: tuple[CatalogModel, ...]) -> None:
    for model in catalog:
        assert model.quant("q4_k_m") is not None, model.id
    assert by_id(catalog, "qwen2.5-7b-instruct").quant("IQ1_S") is None


def test_big_files_are_split_like_the_repositories(catalog: tuple[CatalogModel, ...]) -> None:
    llama = by_id(catalog, "llama-3.3-70b-instruct")
    q8 = llama.quant("Q8_0")
    assert q8 is not None
    assert q8.files == (
        "Llama-3.3-70B-Instruct-Q8_0/Llama-3.3-70B-Instruct-Q8_0-00001-of-00002.gguf",
        "Llama-3.3-70B-Instruct-Q8_0/Llama-3.3-70B-Instruct-Q8_0-00002-of-00002.gguf",
    )
    q4 = llama.quant("Q4_K_M")
    assert q4 is not None and q4.files == ("Llama-3.3-70B-Instruct-Q4_K_M.gguf",)
    deepseek_q4 = by_id(catalog, "deepseek-v3").quant("Q4_K_M")
    assert deepseek_q4 is not None and len(deepseek_q4.files) == 9


# --- labels and lookup ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "label"),
    [
        (134_515_008, "135M"),
        (494_032_768, "494M"),
        (1_000_000_000, "1B"),
        (7_615_616_512, "7.6B"),
        (70_553_706_496, "70.6B"),
        (671_026_419_200, "671B"),
    ],
)
def test_format_parameter_count(count: int, label: str) -> None:
    assert format_parameter_count(count) == label


def test_parameters_label(catalog: tuple[CatalogModel, ...]) -> None:
    assert by_id(catalog, "qwen2.5-7b-instruct").parameters_label == "7.6B"
    assert by_id(catalog, "smollm2-135m-instruct").parameters_label == "135M"
    assert by_id(catalog, "deepseek-v3").parameters_label == "671B (37.6B active)"
    assert by_id(catalog, "qwen3-30b-a3b").parameters_label == "30.5B (3.4B active)"


def test_find_model_by_id_name_or_repo(catalog: tuple[CatalogModel, ...]) -> None:
    assert find_model(catalog, "phi-4") is by_id(catalog, "phi-4")
    assert find_model(catalog, "  QWEN 2.5 7B instruct ") is by_id(catalog, "qwen2.5-7b-instruct")
    assert find_model(catalog, "bartowski/Llama-3.3-70B-Instruct-GGUF") is by_id(
        catalog, "llama-3.3-70b-instruct"
    )
    assert find_model(catalog, "https://huggingface.co/unsloth/DeepSeek-V3-GGUF") is by_id(
        catalog, "deepseek-v3"
    )
    assert find_model(catalog, "no-such-model") is None
    assert find_model(catalog, "") is None


def test_require_model_names_the_choices(catalog: tuple[CatalogModel, ...]) -> None:
    with pytest.raises(UnknownCatalogModel, match=r"'gpt-5'.*phi-4") as info:
        require_model(catalog, "gpt-5")
    assert isinstance(info.value, UserFacingError)
    assert require_model(catalog, "gemma-3-27b-it").name == "Gemma 3 27B IT"


# --- malformed catalogs --------------------------------------------------------------------


def test_missing_file_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="does not exist"):
        load_catalog(tmp_path / "nope.json")


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text('{"version": 1,\n "models": [}', encoding="utf-8")
    with pytest.raises(CatalogError, match="not valid JSON \\(line 2"):
        load_catalog(path)


def first_model(document: dict[str, object]) -> dict[str, object]:
    models = document["models"]
    assert isinstance(models, list)
    model = models[0]
    assert isinstance(model, dict)
    return model


def test_wrong_version_is_rejected(tmp_path: Path, document: dict[str, object]) -> None:
    document["version"] = 2
    with pytest.raises(CatalogError, match="unsupported catalog version 2"):
        load_catalog(write(tmp_path, document))


def test_missing_model_key_is_named(tmp_path: Path, document: dict[str, object]) -> None:
    del first_model(document)["repo"]
    with pytest.raises(CatalogError, match=r"model #1 \('llama-3\.3-70b-instruct'\).*repo"):
        load_catalog(write(tmp_path, document))


def test_missing_arch_key_is_named(tmp_path: Path, document: dict[str, object]) -> None:
    arch = first_model(document)["arch"]
    assert isinstance(arch, dict)
    del arch["head_count_kv"]
    with pytest.raises(CatalogError, match=r"arch: missing key.*head_count_kv"):
        load_catalog(write(tmp_path, document))


def test_unknown_arch_key_is_named(tmp_path: Path, document: dict[str, object]) -> None:
    arch = first_model(document)["arch"]
    assert isinstance(arch, dict)
    arch["n_heads"] = 64
    with pytest.raises(CatalogError, match=r"unknown key.*n_heads"):
        load_catalog(write(tmp_path, document))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("parameters", "70B", "'parameters' must be an integer"),
        ("parameters", True, "'parameters' must be an integer"),
        ("tags", "chat", "'tags' must be a list of strings"),
        ("size_class", "gigantic", "unknown size_class 'gigantic'"),
        ("name", "", "'name' must be a non-empty string"),
        ("quants", [], "'quants' must be a non-empty list"),
    ],
)
def test_wrong_model_values_are_named(
    tmp_path: Path, document: dict[str, object], key: str, value: object, message: str
) -> None:
    first_model(document)[key] = value
    with pytest.raises(CatalogError, match=message):
        load_catalog(write(tmp_path, document))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("block_count", 80.5, "'block_count' must be an integer"),
        ("head_count", 0, "'head_count' must be positive"),
        ("tied_embeddings", 0, "'tied_embeddings' must be true or false"),
        ("rope_freq_base", "big", "'rope_freq_base' must be a number"),
    ],
)
def test_wrong_arch_values_are_named(
    tmp_path: Path, document: dict[str, object], key: str, value: object, message: str
) -> None:
    arch = first_model(document)["arch"]
    assert isinstance(arch, dict)
    arch[key] = value
    with pytest.raises(CatalogError, match=message):
        load_catalog(write(tmp_path, document))


def test_unknown_quant_type_is_named(tmp_path: Path, document: dict[str, object]) -> None:
    quants = first_model(document)["quants"]
    assert isinstance(quants, list)
    quants[0]["quant"] = "Q4_K_XXL"
    with pytest.raises(CatalogError, match=r"'Q4_K_XXL' is not a llama\.cpp file type"):
        load_catalog(write(tmp_path, document))


def test_size_without_source_is_rejected(tmp_path: Path, document: dict[str, object]) -> None:
    quants = first_model(document)["quants"]
    assert isinstance(quants, list)
    quants[0]["size_bytes"] = 123
    quants[0]["size_source"] = None
    with pytest.raises(CatalogError, match="size_bytes and size_source go together"):
        load_catalog(write(tmp_path, document))


def test_duplicate_ids_are_rejected(tmp_path: Path, document: dict[str, object]) -> None:
    models = document["models"]
    assert isinstance(models, list)
    models.append(copy.deepcopy(models[0]))
    with pytest.raises(CatalogError, match=r"duplicate model id 'llama-3\.3-70b-instruct'"):
        load_catalog(write(tmp_path, document))


def test_not_an_object_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="must be a JSON object"):
        load_catalog(write(tmp_path, [1, 2, 3]))
