"""Model references, Hugging Face resolve URLs and split-model part names."""

from __future__ import annotations

import pytest

from app.gguf_remote import hf_resolve_url, parse_model_ref, split_part_names
from runtimes.errors import UserFacingError


@pytest.fixture(autouse=True)
def _no_hf_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_ENDPOINT", raising=False)


def test_resolve_url_defaults_to_the_hub_and_main() -> None:
    url = hf_resolve_url("bartowski/Qwen2.5-7B-GGUF", "Qwen2.5-7B-Q4_K_M.gguf")

    assert url == (
        "https://huggingface.co/bartowski/Qwen2.5-7B-GGUF/resolve/main/Qwen2.5-7B-Q4_K_M.gguf"
    )


def test_resolve_url_honours_hf_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:8123/")

    assert (
        hf_resolve_url("org/repo", "m.gguf") == "http://127.0.0.1:8123/org/repo/resolve/main/m.gguf"
    )


def test_resolve_url_explicit_endpoint_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://ignored")

    url = hf_resolve_url("org/repo", "m.gguf", endpoint="https://hf-mirror.com")

    assert url == "https://hf-mirror.com/org/repo/resolve/main/m.gguf"


def test_resolve_url_quotes_revision_and_keeps_subfolders() -> None:
    url = hf_resolve_url("org/repo", "Q4 K/model-00001-of-00002.gguf", revision="refs/pr/1")

    assert url == (
        "https://huggingface.co/org/repo/resolve/refs%2Fpr%2F1/Q4%20K/model-00001-of-00002.gguf"
    )


@pytest.mark.parametrize(
    ("ref", "url"),
    [
        ("org/repo/m.gguf", "https://huggingface.co/org/repo/resolve/main/m.gguf"),
        ("hf://org/repo/m.gguf", "https://huggingface.co/org/repo/resolve/main/m.gguf"),
        ("hf://org/repo@v2/sub/m.gguf", "https://huggingface.co/org/repo/resolve/v2/sub/m.gguf"),
        ("  org/repo/m.gguf\n", "https://huggingface.co/org/repo/resolve/main/m.gguf"),
        ("https://example.com/files/m.gguf", "https://example.com/files/m.gguf"),
        ("http://127.0.0.1:9/m.gguf?x=1", "http://127.0.0.1:9/m.gguf?x=1"),
        (
            "https://huggingface.co/org/repo/blob/main/m.gguf",
            "https://huggingface.co/org/repo/resolve/main/m.gguf",
        ),
        (
            "https://huggingface.co/org/repo/resolve/main/m.gguf",
            "https://huggingface.co/org/repo/resolve/main/m.gguf",
        ),
        (
            "https://example.com/org/repo/blob/main/m.gguf",
            "https://example.com/org/repo/blob/main/m.gguf",
        ),
    ],
)
def test_model_ref_forms_become_urls(ref: str, url: str) -> None:
    assert parse_model_ref(ref) == url


def test_model_ref_uses_hf_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:8123")

    assert (
        parse_model_ref("hf://org/repo/m.gguf")
        == "http://127.0.0.1:8123/org/repo/resolve/main/m.gguf"
    )
    assert parse_model_ref("http://127.0.0.1:8123/org/repo/blob/dev/m.gguf") == (
        "http://127.0.0.1:8123/org/repo/resolve/dev/m.gguf"
    )


@pytest.mark.parametrize(
    "ref", ["m.gguf", "org/m.gguf", "hf://org", "/abs/org/m.gguf", "org//m", ""]
)
def test_bad_model_refs_say_which_forms_work(ref: str) -> None:
    with pytest.raises(UserFacingError) as info:
        parse_model_ref(ref)

    assert info.value.message == (
        f"{ref!r} is not a model reference. Use a URL, hf://org/repo/file.gguf "
        "or org/repo/file.gguf."
    )


def test_split_part_names_from_first_part() -> None:
    assert split_part_names("Llama-70B-Q4_K_M-00001-of-00003.gguf") == [
        "Llama-70B-Q4_K_M-00001-of-00003.gguf",
        "Llama-70B-Q4_K_M-00002-of-00003.gguf",
        "Llama-70B-Q4_K_M-00003-of-00003.gguf",
    ]


def test_split_part_names_from_any_part_keep_the_folder() -> None:
    assert split_part_names("/models/q4/m-00002-of-00002.gguf") == [
        "/models/q4/m-00001-of-00002.gguf",
        "/models/q4/m-00002-of-00002.gguf",
    ]


@pytest.mark.parametrize(
    "name",
    [
        "m.gguf",
        "m-00000-of-00002.gguf",
        "m-00003-of-00002.gguf",
        "m-1-of-2.gguf",
        "m-00001-of-00002.bin",
        "-00001-of-00002.gguf",
    ],
)
def test_names_that_are_not_parts_give_none(name: str) -> None:
    assert split_part_names(name) is None
