"""llama.cpp (llama-cpp-python) in worker processes, one process per loaded model."""

from __future__ import annotations

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
