"""Library sources on fixture trees laid out like the HF cache, Ollama and LM Studio."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
from pathlib import Path

import gguf
import numpy as np
import pytest

from app import library, library_sources
from app.cli_library import models_json, run_rm
from app.errors import UserFacingError
from app.gguf import ModelMetadata, read_model_metadata
from app.library import LocalModel, ModelLibrary, is_owned, mark_owned
from app.library_sources import (
    default_locations,
    hf_cache_dir,
    ollama_dirs,
    ollama_name,
    scan_hf_cache,
    scan_lmstudio,
    scan_ollama,
)
from app.paths import AppPaths, app_paths

MODEL_LAYER = "application/vnd.ollama.image.model"


def write_gguf(path: Path, *, name: str = "Tiny", file_type: int = 15, rows: int = 4) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(4096)
    writer.add_file_type(file_type)
    writer.add_tensor("token_embd.weight", np.zeros((rows, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def link_real(src: Path, dst: Path) -> Path:
    """Hard-link a real model into a tree (a symlink across file systems): no 98 MB copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        dst.symlink_to(src)
    return dst


def hf_repo(cache: Path, repo: str, files: dict[str, Path], commit: str = "c" * 40) -> Path:
    """A `models--org--name` folder: blobs named by sha256, relative snapshot links, refs/main."""
    repo_dir = cache / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    for name, source in files.items():
        sha = hashlib.sha256(source.read_bytes()).hexdigest()
        blob = repo_dir / "blobs" / sha
        if not blob.exists():
            blob.parent.mkdir(parents=True, exist_ok=True)
            os.link(source, blob)
        link = repo_dir / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return repo_dir


def ollama_model(store: Path, name: str, blob_source: Path, media: str = MODEL_LAYER) -> Path:
    """A manifest under `manifests/<host>/<namespace>/<model>/<tag>` and its model blob."""
    host, namespace, model, tag = name.split("/")
    digest = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
    blob = store / "blobs" / digest.replace(":", "-")
    link_real(blob_source, blob)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": "sha256:" + "0" * 64, "size": 10},
        "layers": [
            {"mediaType": media, "digest": digest, "size": blob.stat().st_size},
            {"mediaType": "application/vnd.ollama.image.template",
             "digest": "sha256:" + "1" * 64, "size": 20},
            {"mediaType": "application/vnd.ollama.image.params",
             "digest": "sha256:" + "2" * 64, "size": 30},
        ],
    }  # fmt: skip
    path = store / "manifests" / host / namespace / model / tag
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest))
    return blob


@pytest.fixture()
def user_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workbench_home: Path) -> Path:
    """A fake $HOME with no tool variables set, so the real user folders are never read
    (set after `workbench_home`, which points HOME elsewhere)."""
    home = tmp_path / "user"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    monkeypatch.setattr(library_sources, "SYSTEM_OLLAMA_MODELS", tmp_path / "no-system-ollama")
    monkeypatch.setattr(library, "demo_model_file", lambda: None)
    return home


@pytest.fixture()
def paths(workbench_home: Path, user_home: Path) -> AppPaths:
    return app_paths().ensure()


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    return write_gguf(tmp_path / "src" / "tiny.gguf")


def by_source(models: list[LocalModel], source: str) -> list[LocalModel]:
    return [m for m in models if m.source == source]


def test_tool_folders_follow_the_environment(tmp_path: Path) -> None:
    home = tmp_path / "h"
    assert hf_cache_dir({}, home) == home / ".cache/huggingface/hub"
    assert hf_cache_dir({"XDG_CACHE_HOME": "/x"}, home) == Path("/x/huggingface/hub")
    assert hf_cache_dir({"HF_HOME": "/hf"}, home) == Path("/hf/hub")
    assert hf_cache_dir({"HF_HOME": "/hf", "HF_HUB_CACHE": "/c"}, home) == Path("/c")
    assert ollama_dirs({"OLLAMA_MODELS": "/o"}, home) == (Path("/o"),)
    assert ollama_dirs({}, home)[0] == home / ".ollama/models"
    where = default_locations({}, home)
    assert where.lmstudio == (home / ".lmstudio/models", home / ".cache/lm-studio/models")


def test_ollama_names_drop_default_host_and_namespace() -> None:
    assert ollama_name("registry.ollama.ai", "library", "llama3.2", "3b") == "llama3.2:3b"
    assert ollama_name("registry.ollama.ai", "jmorgan", "tiny", "latest") == "jmorgan/tiny:latest"
    assert (
        ollama_name("hf.co", "bartowski", "Llama-3.2-1B-Instruct-GGUF", "Q4_K_M")
        == "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"
    )


def test_hf_cache_lists_the_main_snapshot_with_the_repo_id(tmp_path: Path, tiny: Path) -> None:
    cache = tmp_path / "hub"
    old = write_gguf(tmp_path / "src" / "old.gguf", name="Old", rows=8)
    hf_repo(cache, "org/Tiny-GGUF", {"Tiny-Q4_K_M.gguf": old}, commit="a" * 40)
    repo_dir = hf_repo(cache, "org/Tiny-GGUF", {"Tiny-Q4_K_M.gguf": tiny}, commit="b" * 40)
    (repo_dir / "blobs" / ("d" * 64 + ".incomplete")).write_bytes(b"GGUF partial")
    (repo_dir / "snapshots" / ("b" * 40) / "Part-Q8_0.gguf").symlink_to(
        "../../blobs/" + "d" * 64 + ".incomplete"
    )

    (found,) = scan_hf_cache(cache)
    assert found.repo == "org/Tiny-GGUF" and found.source == "huggingface"
    assert found.path == repo_dir / "snapshots" / ("b" * 40) / "Tiny-Q4_K_M.gguf"
    assert found.path.is_symlink()


def test_hf_cache_without_refs_lists_every_snapshot(tmp_path: Path, tiny: Path) -> None:
    repo_dir = hf_repo(tmp_path / "hub", "org/x", {"A-Q4_K_M.gguf": tiny}, commit="a" * 40)
    hf_repo(tmp_path / "hub", "org/x", {"B-Q4_K_M.gguf": tiny}, commit="b" * 40)
    (repo_dir / "refs" / "main").unlink()
    assert [c.path.name for c in scan_hf_cache(tmp_path / "hub")] == [
        "A-Q4_K_M.gguf",
        "B-Q4_K_M.gguf",
    ]


def test_ollama_store_gives_name_tag_and_the_real_blob(
    tmp_path: Path, paths: AppPaths, smollm2_path: Path, tiny: Path
) -> None:
    store = tmp_path / "ollama"
    blob = ollama_model(store, "registry.ollama.ai/library/smollm2/135m", smollm2_path)
    ollama_model(store, "registry.ollama.ai/library/adapter-only/latest", tiny,
                 media="application/vnd.ollama.image.adapter")  # fmt: skip
    (store / "manifests/registry.ollama.ai/library/broken").mkdir(parents=True)
    (store / "manifests/registry.ollama.ai/library/broken/latest").write_text("{not json")

    assert [(c.repo, c.path) for c in scan_ollama(store)] == [("smollm2:135m", blob)]
    lib = ModelLibrary(paths, locations=library.Locations(ollama=(store,)))
    (model,) = by_source(lib.scan(), "ollama")
    assert (model.name, model.repo, model.path) == ("smollm2:135m", "smollm2:135m", blob)
    assert (model.architecture, model.quant, model.context_length) == ("llama", "Q4_1", 8192)
    assert model.parameters == 134_515_008 and model.has_chat_template
    assert model.size_bytes == smollm2_path.stat().st_size and not model.owned


def test_a_corrupt_ollama_blob_is_listed_with_its_problem(
    tmp_path: Path, paths: AppPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "ollama"
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x00" * 64)
    ollama_model(store, "hf.co/org/repo/Q4_K_M", bad)
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    (model,) = by_source(ModelLibrary(paths).scan(), "ollama")
    assert model.name == "hf.co/org/repo:Q4_K_M"
    assert model.problem == 'it does not start with "GGUF"' and not model.usable


def test_lm_studio_folders_skip_projectors(user_home: Path, paths: AppPaths, tiny: Path) -> None:
    root = user_home / ".lmstudio" / "models" / "lmstudio-community" / "Tiny-GGUF"
    write_gguf(root / "Tiny-Q4_K_M.gguf")
    write_gguf(root / "mmproj-Tiny-F16.gguf", file_type=1)
    write_gguf(user_home / ".cache/lm-studio/models/old/Legacy-GGUF/Legacy-Q8_0.gguf", file_type=7)

    assert [c.repo for c in scan_lmstudio(user_home / ".lmstudio" / "models")] == [
        "lmstudio-community/Tiny-GGUF"
    ]
    found = by_source(ModelLibrary(paths).scan(), "lmstudio")
    assert [(m.name, m.repo) for m in found] == [
        ("Tiny · Q4_K_M", "lmstudio-community/Tiny-GGUF"),
        ("Legacy · Q8_0", "old/Legacy-GGUF"),
    ]


def test_every_source_from_the_default_folders(
    user_home: Path, paths: AppPaths, tiny: Path, smollm2_path: Path, tmp_path: Path
) -> None:
    hf_repo(user_home / ".cache/huggingface/hub", "org/Tiny-GGUF", {"model.gguf": tiny})
    ollama_model(
        user_home / ".ollama/models", "registry.ollama.ai/library/smollm2/135m", smollm2_path
    )
    write_gguf(user_home / ".lmstudio/models/pub/Other-GGUF/Other-Q4_K_M.gguf", rows=6)
    write_gguf(paths.models_dir / "Mine-Q4_K_M.gguf", rows=7)
    extra = write_gguf(tmp_path / "added" / "deep" / "Added-Q4_K_M.gguf", rows=9)
    models = ModelLibrary(paths, folders=[tmp_path / "added"]).scan()
    assert [(m.source, m.name) for m in models] == [
        ("models-folder", "Mine · Q4_K_M"),
        ("huggingface", "Tiny · Q4_K_M"),  # "model.gguf" takes the repo name
        ("ollama", "smollm2:135m"),
        ("lmstudio", "Other · Q4_K_M"),
        ("folder", "Added · Q4_K_M"),
    ]
    assert [m.owned for m in models] == [True, False, False, False, False]
    assert models[-1].path == extra and models[-1].modified == extra.stat().st_mtime


def test_a_file_reached_twice_is_listed_once_under_the_most_specific_source(
    user_home: Path, paths: AppPaths, tiny: Path, tmp_path: Path
) -> None:
    repo_dir = hf_repo(
        user_home / ".cache/huggingface/hub", "org/Tiny-GGUF", {"Tiny-Q4_K_M.gguf": tiny}
    )
    snapshot_file = next((repo_dir / "snapshots").rglob("*.gguf"))
    lms = user_home / ".lmstudio/models/org/Tiny-GGUF/Tiny-Q4_K_M.gguf"
    lms.parent.mkdir(parents=True)
    lms.symlink_to(snapshot_file)  # LM Studio pointing into the HF cache
    os.link(tiny, paths.models_dir / "Hard-Q4_K_M.gguf")  # the same bytes, hard-linked
    models = ModelLibrary(paths, [snapshot_file]).scan()
    assert [(m.source, m.path) for m in models] == [("huggingface", snapshot_file)]


def test_split_sets_appear_once_with_the_total_size(paths: AppPaths, tmp_path: Path) -> None:
    folder = tmp_path / "split"
    first = write_gguf(folder / "Big-Q4_K_M-00001-of-00003.gguf")
    (folder / "Big-Q4_K_M-00002-of-00003.gguf").write_bytes(b"x" * 1000)
    (folder / "Big-Q4_K_M-00003-of-00003.gguf").write_bytes(b"y" * 500)
    (model,) = ModelLibrary(paths, folders=[folder]).scan()
    assert (model.name, model.path) == ("Big · Q4_K_M", first)
    assert model.size_bytes == first.stat().st_size + 1500


def test_names_are_unique_across_sources(user_home: Path, paths: AppPaths, tiny: Path) -> None:
    write_gguf(paths.models_dir / "Twin-Q4_K_M.gguf", rows=5)
    hf_repo(user_home / ".cache/huggingface/hub", "a/Twin-GGUF", {"Twin-Q4_K_M.gguf": tiny})
    write_gguf(user_home / ".lmstudio/models/b/Twin-GGUF/Twin-Q4_K_M.gguf", rows=6)
    names = [m.name for m in ModelLibrary(paths).scan()]
    assert names == ["Twin · Q4_K_M", "Twin · Q4_K_M (2)", "Twin · Q4_K_M (3)"]


def count_header_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []

    def counting(p: Path) -> ModelMetadata:
        calls.append(p)
        return read_model_metadata(p)

    monkeypatch.setattr(library, "read_model_metadata", counting)
    return calls


def test_a_second_scan_reads_no_header(
    paths: AppPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(3):
        write_gguf(paths.models_dir / f"M{i}-Q4_K_M.gguf", rows=4 + i)
    (paths.models_dir / "bad.gguf").write_bytes(b"nope")
    calls = count_header_reads(monkeypatch)
    first = ModelLibrary(paths).scan()
    assert len(calls) == 4
    second = ModelLibrary(paths).scan()  # a new process: the cache is on disk
    assert len(calls) == 4
    assert second == first and second[-1].problem == first[-1].problem != ""


def test_a_corrupt_header_cache_is_ignored_and_rewritten(
    paths: AppPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_gguf(paths.models_dir / "M-Q4_K_M.gguf")
    cache_file = paths.data_dir / library.HEADER_CACHE_FILE
    cache_file.write_text('{"version": 1, "entries": {"x": {"bogus": 1}')
    calls = count_header_reads(monkeypatch)
    (model,) = ModelLibrary(paths).scan()
    assert model.quant == "Q4_K_M" and len(calls) == 1
    assert len(json.loads(cache_file.read_text())["entries"]) == 1
    ModelLibrary(paths).scan()
    assert len(calls) == 1


def test_deleting_a_models_folder_file_frees_its_bytes(paths: AppPaths) -> None:
    path = write_gguf(paths.models_dir / "Gone-Q4_K_M.gguf")
    size = path.stat().st_size
    lib = ModelLibrary(paths)
    (model,) = lib.scan()
    assert model.owned
    assert lib.delete(model) == size
    assert not path.exists() and lib.scan() == []


def test_deleting_an_own_hf_download_keeps_a_blob_another_snapshot_uses(
    user_home: Path, paths: AppPaths, tiny: Path
) -> None:
    cache = user_home / ".cache/huggingface/hub"
    repo_dir = hf_repo(cache, "org/T-GGUF", {"T-Q4_K_M.gguf": tiny}, commit="a" * 40)
    hf_repo(cache, "org/T-GGUF", {"T-Q4_K_M.gguf": tiny}, commit="b" * 40)
    old_link = repo_dir / "snapshots" / ("a" * 40) / "T-Q4_K_M.gguf"
    mark_owned(paths, old_link)
    (repo_dir / "refs" / "main").write_text("a" * 40)
    lib = ModelLibrary(paths)
    (model,) = lib.scan()
    assert model.owned and is_owned(paths, old_link)

    assert lib.delete(model) == 0  # the other snapshot still links to the blob
    assert not (repo_dir / "snapshots" / ("a" * 40)).exists()
    assert len(list((repo_dir / "blobs").iterdir())) == 1
    assert not is_owned(paths, old_link)


def test_deleting_the_last_snapshot_removes_blob_and_folders(
    user_home: Path, paths: AppPaths, tiny: Path
) -> None:
    cache = user_home / ".cache/huggingface/hub"
    repo_dir = hf_repo(cache, "org/T-GGUF", {"sub/T-Q4_K_M.gguf": tiny})
    keep = write_gguf(tiny.with_name("keep.gguf"), rows=5)
    other = hf_repo(cache, "org/Keep-GGUF", {"K-Q4_K_M.gguf": keep})
    link = next((repo_dir / "snapshots").rglob("*.gguf"))
    mark_owned(paths, link)
    lib = ModelLibrary(paths)
    model = lib.find("org/T-GGUF")
    assert lib.delete(model) == tiny.stat().st_size
    assert not repo_dir.exists() and other.exists()


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "ollama",
            "This model belongs to Ollama (smollm2:135m); remove it with `ollama rm smollm2:135m`.",
        ),
        ("lmstudio", "This model belongs to LM Studio (pub/T-GGUF); remove it in LM Studio"),
        ("huggingface", "remove it with `huggingface-cli delete-cache`. It lives at"),
        ("folder", "This file is in your own folder ("),
    ],
)  # fmt: skip
def test_models_of_other_tools_are_not_deleted(
    user_home: Path, paths: AppPaths, tiny: Path, smollm2_path: Path, tmp_path: Path,
    source: str, expected: str,
) -> None:  # fmt: skip
    ollama_model(
        user_home / ".ollama/models", "registry.ollama.ai/library/smollm2/135m", smollm2_path
    )
    write_gguf(user_home / ".lmstudio/models/pub/T-GGUF/L-Q4_K_M.gguf", rows=5)
    hf_repo(user_home / ".cache/huggingface/hub", "org/T-GGUF", {"H-Q4_K_M.gguf": tiny})
    write_gguf(tmp_path / "mine" / "F-Q4_K_M.gguf", rows=6)
    lib = ModelLibrary(paths, folders=[tmp_path / "mine"])
    (model,) = by_source(lib.scan(), source)
    with pytest.raises(UserFacingError) as info:
        lib.delete(model)
    assert expected in info.value.message
    assert model.path.exists()


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def rm_args(model: str, *, yes: bool = False) -> argparse.Namespace:
    return argparse.Namespace(model=model, yes=yes)


def test_rm_deletes_an_owned_model_and_prints_the_bytes_freed(paths: AppPaths) -> None:
    path = write_gguf(paths.models_dir / "Gone-Q4_K_M.gguf")
    size = path.stat().st_size
    out = io.StringIO()
    assert run_rm(rm_args("gone", yes=True), out, io.StringIO()) == 0
    assert f"freed {size:,} bytes" in out.getvalue() and not path.exists()


def test_rm_asks_on_a_terminal_and_needs_yes_elsewhere(paths: AppPaths) -> None:
    path = write_gguf(paths.models_dir / "Kept-Q4_K_M.gguf")
    err = io.StringIO()
    assert run_rm(rm_args("kept"), io.StringIO(), err, FakeTerminal("n\n")) == 1
    assert err.getvalue().startswith("Delete Kept · Q4_K_M (") and path.exists()
    with pytest.raises(UserFacingError, match="add --yes"):
        run_rm(rm_args("kept"), io.StringIO(), io.StringIO(), io.StringIO("y\n"))
    assert path.exists()
    assert run_rm(rm_args("kept"), io.StringIO(), io.StringIO(), FakeTerminal("y\n")) == 0
    assert not path.exists()


def test_rm_refuses_another_tools_model_before_asking(
    user_home: Path, paths: AppPaths, smollm2_path: Path
) -> None:
    store = user_home / ".ollama/models"
    blob = ollama_model(store, "registry.ollama.ai/library/smollm2/135m", smollm2_path)
    with pytest.raises(UserFacingError, match="ollama rm smollm2:135m"):
        run_rm(rm_args("smollm2:135m"), io.StringIO(), io.StringIO(), FakeTerminal("y\n"))
    assert blob.exists()


def test_models_json_rows_carry_source_repo_and_header_facts(
    user_home: Path, paths: AppPaths, smollm2_path: Path
) -> None:
    ollama_model(
        user_home / ".ollama/models", "registry.ollama.ai/library/smollm2/135m", smollm2_path
    )
    (row,) = models_json(ModelLibrary(paths).scan())
    assert row == {
        "name": "smollm2:135m",
        "path": row["path"],
        "size_bytes": smollm2_path.stat().st_size,
        "source": "ollama",
        "repo": "smollm2:135m",
        "owned": False,
        "architecture": "llama",
        "parameters": 134_515_008,
        "quant": "Q4_1",
        "context_length": 8192,
        "problem": "",
    }
    assert json.loads(json.dumps(row)) == row
