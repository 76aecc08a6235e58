"""What a load reports: layers offloaded as llama.cpp's log says, backend, notices."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from runtimes.base import LoadOptions
from runtimes.gguf_header import read_header
from runtimes.llamacpp.runtime import _build_info
from runtimes.llamacpp.templates import TemplateChoice

# Recorded on a CUDA build (H200, benchmarks/gpu_check.py): SmolLM2 has 30 blocks, and
# llama.cpp counts the output layer too.
CUDA_LOG_PAIR = (31, 31)


def _info(smollm2: Path, offloaded, gpu_build: bool, n_gpu_layers: int):
    worker = SimpleNamespace(offloaded=offloaded)
    loaded = {"gpu_offload": gpu_build, "backend": "CUDA", "n_ctx": 2048, "n_threads": 16}
    return _build_info(
        worker,  # type: ignore[arg-type]
        loaded,
        read_header(smollm2),
        LoadOptions(n_ctx=2048, n_gpu_layers=n_gpu_layers),
        TemplateChoice(source="gguf", fallback=None, notice=""),
        load_time_s=1.0,
    )


def test_offload_counts_come_from_the_log_as_a_pair(smollm2_path: Path) -> None:
    info = _info(smollm2_path, CUDA_LOG_PAIR, gpu_build=True, n_gpu_layers=-1)
    assert (info.n_gpu_layers, info.n_layers) == (31, 31)
    assert info.backend == "CUDA"


def test_cpu_build_reports_cpu_and_says_why_gpu_layers_were_ignored(smollm2_path: Path) -> None:
    info = _info(smollm2_path, None, gpu_build=False, n_gpu_layers=-1)
    assert (info.n_gpu_layers, info.n_layers) == (0, 30)
    assert info.backend == "CPU"
    assert "no GPU support" in info.notice
