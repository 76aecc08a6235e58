"""What a load reports: layers offloaded as llama.cpp's log says, backend, notices."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtimes.base import LoadOptions
from runtimes.gguf_header import read_header
from runtimes.llamacpp.loadlog import LoadFacts
from runtimes.llamacpp.options import resolve_load
from runtimes.llamacpp.protocol import ProtocolError
from runtimes.llamacpp.runtime import _build_info
from runtimes.llamacpp.templates import TemplateChoice

# Recorded on a CUDA build (H200, benchmarks/gpu_check.py): SmolLM2 has 30 blocks, and
# llama.cpp counts the output layer too.
CUDA_LOG_PAIR = (31, 31)


def _info(smollm2: Path, offloaded, gpu_build: bool, n_gpu_layers: int, **reported):
    header = read_header(smollm2)
    request = resolve_load(LoadOptions(n_ctx=2048, n_gpu_layers=n_gpu_layers), header, 16)
    loaded = {"gpu_offload": gpu_build, "backend": "CUDA", "n_ctx": 2048, "n_threads": 16}
    loaded.update(reported)
    return _build_info(
        LoadFacts(offloaded=offloaded),
        loaded,
        header,
        request,
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


def test_worker_that_kept_the_planned_template_changes_nothing(smollm2_path: Path) -> None:
    info = _info(smollm2_path, None, False, 0, template="gguf", template_notice="")
    assert (info.chat_template, info.notice) == ("gguf", "")


def test_fallback_the_worker_had_to_take_is_what_the_load_reports(smollm2_path: Path) -> None:
    notice = "This model's chat template could not be used (x); using the ChatML format."
    info = _info(smollm2_path, None, False, 0, template="fallback:chatml", template_notice=notice)
    assert (info.chat_template, info.notice) == ("fallback:chatml", notice)


def test_unknown_template_from_the_worker_is_a_protocol_error(smollm2_path: Path) -> None:
    with pytest.raises(ProtocolError):
        _info(smollm2_path, None, False, 0, template="fallback:nonesuch")
