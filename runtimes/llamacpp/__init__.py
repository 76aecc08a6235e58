"""llama.cpp (llama-cpp-python) in worker processes, one process per loaded model.

The names below are imported lazily (PEP 562): the worker process runs
`python -m runtimes.llamacpp.worker`, which executes this file first, and it must not import
the parent's side (`runtime` → `gguf_header` → the `gguf` package → `sentencepiece` where that is
installed). With sentencepiece loaded beside libllama, llama.cpp segfaulted in its tokenizer
setup on a CUDA machine (benchmarks/gpu_check.py, see the issue note).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtimes.llamacpp.model import LlamaCppModel, RenderedPrompt
    from runtimes.llamacpp.runtime import LlamaCppRuntime
    from runtimes.llamacpp.system import default_threads, wheel_backend

__all__ = [
    "LlamaCppModel",
    "LlamaCppRuntime",
    "RenderedPrompt",
    "default_threads",
    "wheel_backend",
]

_WHERE = {
    "LlamaCppModel": "runtimes.llamacpp.model",
    "RenderedPrompt": "runtimes.llamacpp.model",
    "LlamaCppRuntime": "runtimes.llamacpp.runtime",
    "default_threads": "runtimes.llamacpp.system",
    "wheel_backend": "runtimes.llamacpp.system",
}


def __getattr__(name: str) -> Any:
    """Import a public name on first use."""
    if name not in _WHERE:
        raise AttributeError(f"module 'runtimes.llamacpp' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_WHERE[name]), name)
