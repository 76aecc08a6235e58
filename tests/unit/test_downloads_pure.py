"""Pure parts of downloads: safe names, cache paths, choosing files, the queue, progress."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import pytest

from app.cli_download import AmbiguousChoice, ProgressBar, choose_files, group_choices, quant_of
from app.downloads import DownloadProgress, DownloadQueue, QueueEntry
from app.errors import ExternalFailure
from app.hf_cache import (
    GatedRepo,
    InvalidRepoId,
    RemoteFileNotFound,
    UnsafeFileName,
    check_filename,
    check_repo_id,
    default_cache_dir,
    hf_token,
    link_snapshot,
    repo_folder,
)


@pytest.mark.parametrize(
    "name",
    ["../x.gguf", "a/../../x.gguf", "/etc/passwd", "C:/x.gguf", "a\\..\\x", "", "a//b", "./x"],
)
def test_unsafe_file_names_are_refused(name: str) -> None:
    with pytest.raises(UnsafeFileName):
        check_filename(name)


def test_a_file_in_a_subfolder_is_fine() -> None:
    assert str(check_filename("Q4_K_M/m-Q4_K_M.gguf")) == "Q4_K_M/m-Q4_K_M.gguf"


@pytest.mark.parametrize("repo_id", ["../x", "a/b/c", "a--b/c", "", "/abs"])
def test_bad_repo_ids_are_refused(repo_id: str) -> None:
    with pytest.raises(InvalidRepoId):
        check_repo_id(repo_id)


def test_repo_folder_follows_the_hf_cache_naming(tmp_path: Path) -> None:
    assert repo_folder(tmp_path, "org/My.Model-GGUF") == tmp_path / "models--org--My.Model-GGUF"


def test_snapshot_link_is_relative_to_the_blob(tmp_path: Path) -> None:
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / "abc").write_bytes(b"x")

    link = link_snapshot(tmp_path, "c0ffee", "sub/dir/m.gguf", "abc")

    assert link == tmp_path / "snapshots" / "c0ffee" / "sub" / "dir" / "m.gguf"
    assert os.readlink(link) == "../../../../blobs/abc"
    assert link.read_bytes() == b"x"


def test_default_cache_dir_honours_hf_hub_cache_then_hf_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    assert default_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert default_cache_dir() == tmp_path / "hub"


def test_hf_token_prefers_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    assert hf_token() == "hf_env"


def test_gated_error_names_the_license_page() -> None:
    error = GatedRepo("meta/Llama", "http://hub.test/", has_token=False)

    assert error.license_url == "http://hub.test/meta/Llama"
    assert "http://hub.test/meta/Llama" in str(error)
    assert "token is needed" in str(error)


@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "Q4_1"),
        ("gemma-3-270m-q4_k_m.gguf", "Q4_K_M"),
        ("Q8_0/m-Q8_0-00001-of-00002.gguf", "Q8_0"),
        ("Llama-IQ4_XS.gguf", "IQ4_XS"),
        ("model-f16.gguf", "F16"),
        ("model.gguf", ""),
    ],
)
def test_quant_is_read_from_the_file_name(name: str, quant: str) -> None:
    assert quant_of(name) == quant


FILES = [
    "README.md",
    "m-Q4_K_M.gguf",
    "m-Q4_K_S.gguf",
    "Q8_0/m-Q8_0-00002-of-00002.gguf",
    "Q8_0/m-Q8_0-00001-of-00002.gguf",
]


def test_split_sets_are_one_choice() -> None:
    assert [(c.quant, c.files) for c in group_choices(FILES)] == [
        ("Q8_0", ("Q8_0/m-Q8_0-00001-of-00002.gguf", "Q8_0/m-Q8_0-00002-of-00002.gguf")),
        ("Q4_K_M", ("m-Q4_K_M.gguf",)),
        ("Q4_K_S", ("m-Q4_K_S.gguf",)),
    ]


def test_choose_by_quant_file_or_part() -> None:
    assert choose_files("o/r", FILES, "q4_k_m").files == ("m-Q4_K_M.gguf",)
    assert choose_files("o/r", FILES, "m-Q4_K_S.gguf").files == ("m-Q4_K_S.gguf",)
    assert len(choose_files("o/r", FILES, "m-Q8_0-00002-of-00002.gguf").files) == 2
    assert choose_files("o/r", ["only.Q5_0.gguf"], "").files == ("only.Q5_0.gguf",)


def test_choose_without_a_choice_lists_every_model() -> None:
    with pytest.raises(AmbiguousChoice) as caught:
        choose_files("o/r", FILES, "")

    assert len(caught.value.choices) == 3
    assert "Q8_0 (2 parts): Q8_0/m-Q8_0-00001-of-00002.gguf" in str(caught.value)


def test_choose_an_unknown_quant_says_what_there_is() -> None:
    with pytest.raises(RemoteFileNotFound, match=re.escape("Q4_K_S: m-Q4_K_S.gguf")):
        choose_files("o/r", FILES, "Q2_K")


def test_queue_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "queue.json"
    queue = DownloadQueue(path)
    first = queue.add("org/a", ["a.gguf"])
    second = queue.add("org/b", ["b-00001-of-00002.gguf", "b-00002-of-00002.gguf"], "v1")
    queue.set_state(first, "paused")
    queue.set_state(second, "failed", "disk full")

    again = DownloadQueue(path)

    assert again.pending() == [QueueEntry("org/a", ("a.gguf",), "main", "paused")]
    assert again.entries[1] == QueueEntry(
        "org/b", ("b-00001-of-00002.gguf", "b-00002-of-00002.gguf"), "v1", "failed", "disk full"
    )
    again.remove(again.entries[0])
    assert [e.repo_id for e in DownloadQueue(path).entries] == ["org/b"]


def test_queue_refuses_unsafe_names(tmp_path: Path) -> None:
    with pytest.raises(UnsafeFileName):
        DownloadQueue(tmp_path / "q.json").add("org/a", ["../evil.gguf"])
    assert not (tmp_path / "q.json").exists()


def test_a_damaged_queue_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "q.json"
    path.write_text(json.dumps({"downloads": [{"repo_id": "x"}]}))

    with pytest.raises(ExternalFailure, match="cannot be read"):
        DownloadQueue(path)


def _progress(done: int) -> DownloadProgress:
    return DownloadProgress("o/r", "m.gguf", done, 1000, 2e6, 1.0, "downloading", 1)


def test_progress_without_a_tty_prints_a_line_per_ten_percent() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream)

    for done in range(0, 1001, 25):
        bar(_progress(done))

    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == [f"{p}%" for p in range(0, 101, 10)]
    assert lines[5] == "m.gguf:  50% 0.0/0.0 MB 2.0 MB/s ETA 0:01 downloading"
