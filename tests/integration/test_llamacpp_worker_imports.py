"""The worker imports llama.cpp and nothing of the parent's side; the parent, no llama.cpp."""

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


def _python(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_wheel_backend_does_not_load_llama_cpp_into_the_calling_process() -> None:
    # The GUI process asks before every load: libllama (and its GPU backends) must stay in
    # the worker, where an abort cannot take the GUI down.
    code = (
        "import sys\n"
        "from runtimes.llamacpp import wheel_backend\n"
        "backend = wheel_backend()\n"
        "maps = open('/proc/self/maps').read() if sys.platform == 'linux' else ''\n"
        "loaded = 'llama_cpp' in sys.modules or 'libllama' in maps or 'libggml' in maps\n"
        "print(backend, loaded)\n"
    )
    backend, loaded = _python(code).split()
    assert loaded == "False"
    # What llama.cpp itself says, asked in a process of its own.
    gpu = _python("import llama_cpp; print(bool(llama_cpp.llama_supports_gpu_offload()))")
    assert (backend != "CPU") == (gpu == "True"), (backend, gpu)


def test_public_names_still_resolve() -> None:
    import runtimes.llamacpp as llamacpp

    assert llamacpp.LlamaCppRuntime.name == "llamacpp"
    assert callable(llamacpp.wheel_backend)
