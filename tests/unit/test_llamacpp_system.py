"""Which backend the installed llama.cpp was built with, read from its library files."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtimes.llamacpp.system import backend_from_lib_dir


@pytest.mark.parametrize(
    ("files", "backend"),
    [
        (["libggml-cuda.so"], "CUDA"),
        (["libggml-cuda.so.0.25.3"], "CUDA"),
        (["ggml-cuda.dll", "ggml-cpu.dll", "llama.dll"], "CUDA"),
        (["libggml-metal.dylib", "libggml-metal.0.dylib", "libggml-metal.0.25.3.dylib"], "Metal"),
        (["libggml-metal.so"], "Metal"),  # a GGML_BACKEND_DL module on macOS
        (["libggml-vulkan.so"], "Vulkan"),
        (["libggml-hip.so"], "ROCm"),
        (["libggml-vulkan.so", "libggml-cuda.so"], "CUDA"),
        (["libggml-cpu-haswell.so", "libggml-base.so", "libggml.so", "libllama.so"], "CPU"),
        (["libggml-blas.dylib", "libggml-rpc.so"], "CPU"),
        (["libggml-cuda.so.txt", "ggml-metal.metal", "README"], "CPU"),
        ([], "CPU"),
    ],
)
def test_backend_comes_from_the_ggml_libraries_in_the_folder(
    tmp_path: Path, files: list[str], backend: str
) -> None:
    for name in files:
        (tmp_path / name).write_bytes(b"")
    assert backend_from_lib_dir(tmp_path) == backend


def test_missing_library_folder_means_cpu(tmp_path: Path) -> None:
    assert backend_from_lib_dir(tmp_path / "no-such-lib") == "CPU"
