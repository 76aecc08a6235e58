"""Hugging Face listings turned into model files: quantization names, split sets, projectors."""

from __future__ import annotations

import pytest

from app.errors import UserFacingError
from app.hub_search import HubRepoInfo, group_gguf_files, quant_of, search_hub, with_quant


@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("Qwen2.5-7B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("qwen2.5-7b-instruct-q4_k_m.gguf", "Q4_K_M"),
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "Q4_1"),
        ("Meta-Llama-3.1-8B-Instruct-IQ4_XS.gguf", "IQ4_XS"),
        ("gemma-3-27b-it-UD-Q4_K_XL.gguf", "UD-Q4_K_XL"),
        ("model-f16.gguf", "F16"),
        ("model-bf16.gguf", "BF16"),
        ("Q8_0/Llama-3.3-70B-Instruct-Q8_0-00001-of-00002.gguf", "Q8_0"),
        ("gpt-oss-20b-MXFP4.gguf", "MXFP4"),
        ("tinyllama.gguf", ""),
    ],
)
def test_quant_is_read_from_the_file_name(name: str, quant: str) -> None:
    assert quant_of(name) == quant


def test_split_sets_are_one_entry_and_projectors_are_left_out() -> None:
    listing = [
        ("README.md", 5_000, None),
        ("mmproj-model-f16.gguf", 800_000_000, "a" * 64),
        ("m-Q4_K_M.gguf", 4_000, "b" * 64),
        ("Q8_0/m-Q8_0-00002-of-00002.gguf", 3_000, "d" * 64),
        ("Q8_0/m-Q8_0-00001-of-00002.gguf", 5_000, "c" * 64),
        ("m-Q2_K.gguf", 2_000, None),
    ]
    files = group_gguf_files(listing)
    assert [(f.quant, f.files, f.size_bytes) for f in files] == [
        ("Q2_K", ("m-Q2_K.gguf",), 2_000),
        ("Q4_K_M", ("m-Q4_K_M.gguf",), 4_000),
        (
            "Q8_0",
            ("Q8_0/m-Q8_0-00001-of-00002.gguf", "Q8_0/m-Q8_0-00002-of-00002.gguf"),
            8_000,
        ),
    ]
    assert files[2].sha256 == ("c" * 64, "d" * 64)
    assert files[0].sha256 == (None,)


def test_a_missing_quant_names_the_ones_there_are() -> None:
    info = HubRepoInfo("org/m", "0" * 40, "", "mit", group_gguf_files([("m-Q2_K.gguf", 1, None)]))
    assert with_quant(info, "q2_k").files == ("m-Q2_K.gguf",)
    with pytest.raises(UserFacingError, match="org/m has no Q4_K_M file; it has Q2_K"):
        with_quant(info, "Q4_K_M")


def test_an_unknown_sort_is_refused_before_any_request() -> None:
    with pytest.raises(UserFacingError, match="Sort by one of downloads"):
        search_hub("qwen", sort="size", endpoint="http://127.0.0.1:9")
