"""Library scan time over 200 synthetic GGUF files in every source layout, cold and warm.

Run: .venv/bin/python -m benchmarks.bench_library_scan
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import gguf
import numpy as np

from app import library
from app.library import ModelLibrary
from app.library_sources import Locations
from app.paths import AppPaths

MODEL_LAYER = "application/vnd.ollama.image.model"
COUNTS = {"hf": 60, "ollama": 50, "lmstudio": 40, "models": 30, "folder": 20}
WARM_RUNS = 10


def write_gguf(path: Path, index: int) -> Path:
    """A small, valid GGUF with a realistic tokenizer-sized header (about 100 KB)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(f"Bench Model {index}")
    writer.add_context_length(8192)
    writer.add_block_count(16)
    writer.add_file_type(15)
    writer.add_token_list([f"tok{i}" for i in range(8000)])
    writer.add_tensor("token_embd.weight", np.zeros((4, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def build_tree(root: Path) -> tuple[AppPaths, Locations]:
    """The 200 files: HF cache repos, an Ollama store, LM Studio, models folder, a folder."""
    paths = AppPaths(root / "data", root / "models", root / "logs", root / "config").ensure()
    src = root / "src"
    n = 0
    for i in range(COUNTS["hf"]):
        repo = root / "hub" / f"models--org--Bench{i // 3}-GGUF"
        blob_src = write_gguf(src / f"hf{i}.gguf", n := n + 1)
        blob = repo / "blobs" / hashlib.sha256(str(i).encode()).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        os.replace(blob_src, blob)
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text("c" * 40)
        link = repo / "snapshots" / ("c" * 40) / f"Bench{i}-Q4_K_M.gguf"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    store = root / "ollama"
    for i in range(COUNTS["ollama"]):
        digest = "sha256:" + hashlib.sha256(f"o{i}".encode()).hexdigest()
        write_gguf(store / "blobs" / digest.replace(":", "-"), n := n + 1)
        manifest = {"schemaVersion": 2, "layers": [{"mediaType": MODEL_LAYER, "digest": digest}]}
        path = store / "manifests" / "registry.ollama.ai" / "library" / f"bench{i}" / "latest"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(manifest))
    for i in range(COUNTS["lmstudio"]):
        write_gguf(root / "lms" / "pub" / f"Lm{i}-GGUF" / f"Lm{i}-Q4_K_M.gguf", n := n + 1)
    for i in range(COUNTS["models"]):
        write_gguf(paths.models_dir / f"Own{i}-Q4_K_M.gguf", n := n + 1)
    for i in range(COUNTS["folder"]):
        write_gguf(root / "mine" / f"sub{i % 4}" / f"Mine{i}-Q4_K_M.gguf", n := n + 1)
    where = Locations(
        hf_cache=root / "hub",
        ollama=(store,),
        lmstudio=(root / "lms",),
        folders=(root / "mine",),
    )
    return paths, where


def timed_scan(paths: AppPaths, where: Locations) -> tuple[float, int]:
    start = time.perf_counter()
    models = ModelLibrary(paths, locations=where).scan()
    return (time.perf_counter() - start) * 1000, len(models)


def main() -> None:
    """Print cold and warm scan times (ms) for 200 models."""
    library.demo_model_file = lambda: None  # type: ignore[assignment]  # only the 200 files
    with tempfile.TemporaryDirectory() as tmp:
        paths, where = build_tree(Path(tmp))
        cold, count = timed_scan(paths, where)
        warm = [timed_scan(paths, where)[0] for _ in range(WARM_RUNS)]
        (paths.data_dir / library.HEADER_CACHE_FILE).write_text("{corrupt")
        rebuilt, _ = timed_scan(paths, where)
    print(f"models listed:            {count} (expected {sum(COUNTS.values())})")
    print(f"cold scan (no cache):     {cold:7.1f} ms")
    print(
        f"warm scan (new library):  {statistics.median(warm):7.1f} ms median, "
        f"{min(warm):.1f}-{max(warm):.1f} ms over {WARM_RUNS} runs (target <= 300 ms)"
    )
    print(f"scan after corrupt cache: {rebuilt:7.1f} ms")


if __name__ == "__main__":
    main()
