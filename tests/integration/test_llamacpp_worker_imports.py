"""The worker process imports llama.cpp and nothing of the parent's side."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_worker_module_does_not_import_gguf_or_the_parent_side() -> None:
    # `gguf` pulls in sentencepiece where it is installed; beside libllama that segfaulted
    # llama.cpp's tokenizer setup on a CUDA machine. The worker must stay clear of it.
    code = (
        "import sys, runpy\n"
        "import runtimes.llamacpp.worker\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('gguf', 'sentencepiece')"
        " or m in ('runtimes.gguf_header', 'runtimes.llamacpp.runtime'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


def test_public_names_still_resolve() -> None:
    import runtimes.llamacpp as llamacpp

    assert llamacpp.LlamaCppRuntime.name == "llamacpp"
    assert callable(llamacpp.wheel_backend)
