"""The local model library: demo model, models folder, opened files, names, find, cache."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import gguf
import numpy as np
import pytest

from app import library
from app.errors import InvalidModelFile, ModelNotFound
from app.gguf import ModelMetadata, read_model_metadata
from app.library import LocalModel, ModelLibrary, demo_model_file
from app.paths import AppPaths, app_paths


def write_gguf(path: Path, *, name: str = "Tiny Llama", file_type: int = 15) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(2048)
    writer.add_file_type(file_type)
    writer.add_tensor("token_embd.weight", np.zeros((4, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(autouse=True)
def no_user_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point $HOME and the tools' variables at empty folders: never read the real ones."""
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "user" / "hf"))
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "user" / "ollama"))


@pytest.fixture()
def paths(workbench_home: Path) -> AppPaths:
    return app_paths().ensure()


def by_source(models: list[LocalModel], source: str) -> list[LocalModel]:
    return [m for m in models if m.source == source]


def test_demo_model_comes_first(paths: AppPaths, smollm2_path: Path) -> None:
    models = ModelLibrary(paths).scan()
    demo = models[0]
    assert demo.source == "demo"
    assert demo.path == smollm2_path == demo_model_file()
    assert demo.name == "SmolLM2 135M Instruct · Q4_1"
    assert (demo.architecture, demo.quant, demo.context_length) == ("llama", "Q4_1", 8192)
    assert demo.has_chat_template and demo.usable
    assert demo.size_bytes == smollm2_path.stat().st_size
    assert demo.parameters == 134_515_008


def test_models_folder_is_scanned_recursively_and_sorted(paths: AppPaths) -> None:
    root = paths.models_dir
    write_gguf(root / "b" / "Zeta-7B.Q8_0.gguf", file_type=7)
    write_gguf(root / "Alpha-1B-Q4_K_M.gguf")
    write_gguf(root / ".hidden" / "Secret.gguf")
    write_gguf(root / "Split-00001-of-00002.gguf")
    (root / "Split-00002-of-00002.gguf").write_bytes(b"second shard: no header of its own")
    (root / "notes.txt").write_text("not a model")
    (root / "partial.gguf.incomplete").write_bytes(b"GGUF")

    found = by_source(ModelLibrary(paths).scan(), "models-folder")

    assert [m.path.relative_to(root).as_posix() for m in found] == [
        "Alpha-1B-Q4_K_M.gguf",
        "Split-00001-of-00002.gguf",
        "b/Zeta-7B.Q8_0.gguf",
    ]
    assert [m.name for m in found] == [
        "Alpha 1B · Q4_K_M",
        "Split · Q4_K_M",
        "Zeta 7B · Q8_0",
    ]


def test_lower_case_file_names_use_general_name(paths: AppPaths) -> None:
    write_gguf(paths.models_dir / "tiny-llama-q4_k_m.gguf", name="Tiny Llama 1.1B")
    (model,) = by_source(ModelLibrary(paths).scan(), "models-folder")
    assert model.name == "Tiny Llama 1.1B · Q4_K_M"


def test_unreadable_files_are_listed_with_the_reason(paths: AppPaths, tmp_path: Path) -> None:
    (paths.models_dir / "broken.gguf").write_bytes(b"<html>rate limited</html>")
    missing = tmp_path / "gone.gguf"
    models = ModelLibrary(paths, [missing]).scan()

    broken = by_source(models, "models-folder")[0]
    assert (broken.name, broken.usable, broken.size_bytes) == ("broken", False, 25)
    assert broken.problem == 'it does not start with "GGUF"'
    (opened,) = by_source(models, "opened")
    assert (opened.path, opened.problem, opened.size_bytes) == (missing, "file not found", 0)


def test_truncated_file_is_listed_as_truncated(paths: AppPaths, smollm2_path: Path) -> None:
    cut = paths.models_dir / "SmolLM2-cut.gguf"
    with smollm2_path.open("rb") as src, cut.open("wb") as dst:
        dst.write(src.read(4_000_000))
    (model,) = by_source(ModelLibrary(paths).scan(), "models-folder")
    assert model.problem.startswith("truncated: 4,000,000 bytes of ")


def test_a_file_reachable_twice_is_listed_once(paths: AppPaths) -> None:
    path = write_gguf(paths.models_dir / "Same-Q4_K_M.gguf")
    models = ModelLibrary(paths, [path, Path(str(path))]).scan()
    assert [m.source for m in models if m.path == path] == ["models-folder"]


def test_copies_get_unique_names(paths: AppPaths, tmp_path: Path) -> None:
    write_gguf(paths.models_dir / "a" / "Twin-Q4_K_M.gguf")
    write_gguf(paths.models_dir / "b" / "Twin-Q4_K_M.gguf")
    opened = write_gguf(tmp_path / "Twin-Q4_K_M.gguf")
    names = [m.name for m in ModelLibrary(paths, [opened]).scan() if "Twin" in m.name]
    assert names == ["Twin · Q4_K_M", "Twin · Q4_K_M (2)", "Twin · Q4_K_M (3)"]


def test_find_by_path_name_and_substring(paths: AppPaths, tmp_path: Path) -> None:
    zeta = write_gguf(paths.models_dir / "Zeta-7B.Q8_0.gguf", file_type=7)
    lib = ModelLibrary(paths)

    assert lib.find(str(zeta)).path == zeta
    assert lib.find("zeta 7b · q8_0").path == zeta
    assert lib.find("ZETA").path == zeta
    assert lib.find("Zeta-7B.Q8_0.gguf").path == zeta  # the file name counts as text too
    assert lib.find("smollm2").source == "demo"


def test_find_accepts_a_path_outside_the_library(paths: AppPaths, tmp_path: Path) -> None:
    outside = write_gguf(tmp_path / "Elsewhere-F16.gguf", file_type=1)
    model = ModelLibrary(paths).find(str(outside))
    assert (model.source, model.name, model.path) == ("opened", "Elsewhere · F16", outside)


def test_find_rejects_ambiguous_text(paths: AppPaths) -> None:
    write_gguf(paths.models_dir / "Zeta-7B-Q4_K_M.gguf")
    write_gguf(paths.models_dir / "Zeta-13B-Q4_K_M.gguf")
    with pytest.raises(ModelNotFound, match="matches several models") as info:
        ModelLibrary(paths).find("zeta")
    assert "Zeta 13B · Q4_K_M" in str(info.value) and "Zeta 7B · Q4_K_M" in str(info.value)


def test_find_nothing_lists_close_names(paths: AppPaths) -> None:
    write_gguf(paths.models_dir / "Zeta-7B-Q4_K_M.gguf")
    with pytest.raises(ModelNotFound) as info:
        ModelLibrary(paths).find("Zeta 7C · Q4_K_M")
    assert "Close names: 'Zeta 7B · Q4_K_M'" in str(info.value)
    assert "Zeta 7B · Q4_K_M" in info.value.details


def test_find_in_an_empty_library_says_so(paths: AppPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(library, "demo_model_file", lambda: None)
    with pytest.raises(ModelNotFound, match="The library is empty"):
        ModelLibrary(paths).find("anything")


def test_headers_are_read_once_until_the_file_changes(
    paths: AppPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_gguf(paths.models_dir / "Cached-Q4_K_M.gguf")
    monkeypatch.setattr(library, "demo_model_file", lambda: None)
    calls: list[Path] = []
    real = read_model_metadata

    def counting(p: Path) -> ModelMetadata:
        calls.append(p)
        return real(p)

    monkeypatch.setattr(library, "read_model_metadata", counting)
    lib = ModelLibrary(paths)
    lib.scan()
    lib.scan()
    lib.find("cached")
    assert len(calls) == 1

    write_gguf(path, name="Changed")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    lib.scan()
    assert len(calls) == 2


def test_metadata_of_a_model(paths: AppPaths, smollm2_path: Path) -> None:
    lib = ModelLibrary(paths)
    demo = lib.find("SmolLM2 135M Instruct · Q4_1")
    assert lib.metadata(demo).block_count == 30
    (paths.models_dir / "bad.gguf").write_bytes(b"nope")
    with pytest.raises(InvalidModelFile):
        lib.metadata(lib.find("bad"))


def test_add_file_keeps_an_opened_model(paths: AppPaths, tmp_path: Path) -> None:
    opened = shutil.copy(write_gguf(tmp_path / "src.gguf"), tmp_path / "Opened-Q4_K_M.gguf")
    lib = ModelLibrary(paths)
    model = lib.add_file(Path(opened))
    assert model.source == "opened"
    assert [m.name for m in by_source(lib.scan(), "opened")] == ["Opened · Q4_K_M"]
