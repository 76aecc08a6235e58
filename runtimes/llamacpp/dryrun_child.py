"""The dry-run child process: llama.cpp "loads" a model with `no_alloc` and logs its sizes.

Run as `python -m runtimes.llamacpp.dryrun_child REQUEST_JSON`. With
`llama_model_params.no_alloc = true` and `load_mode = LLAMA_LOAD_MODE_NONE`, llama.cpp reads the
header, places the layers, creates the KV cache and reserves the compute graph without reading
a weight or allocating a buffer (reference/fit.md §2.8), and logs the KV-cache and
compute-buffer sizes it would allocate. The file may be a sparse copy that holds only the real
header. This process prints every log line it captured as one JSON object on stdout and exits
0, or exits non-zero (llama.cpp may also abort the process on a malformed header: that is why
this runs in its own process). Only llama_cpp and the standard library are imported here.
"""

from __future__ import annotations

import ctypes
import json
import sys
from typing import Any

KV_TYPE_IDS = {"f16": 1, "q8_0": 8, "q4_0": 2}
"""ggml_type ids of the KV cache types (ggml.h)."""


def _run(request: dict[str, Any]) -> int:
    import llama_cpp

    lines: list[str] = []

    @ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)  # type: ignore[untyped-decorator]
    def on_log(level: int, text: bytes | None, user: object) -> None:
        if text:
            lines.append(text.decode("utf-8", "replace"))

    llama_cpp.llama_log_set(on_log, None)
    llama_cpp.llama_backend_init()
    model_params = llama_cpp.llama_model_default_params()
    model_params.no_alloc = True
    model_params.load_mode = llama_cpp.LLAMA_LOAD_MODE_NONE
    model_params.n_gpu_layers = int(request["n_gpu_layers"])
    model = llama_cpp.llama_model_load_from_file(str(request["path"]).encode(), model_params)
    if not model:
        _emit(lines, ok=False, stage="model")
        return 3
    ctx_params = llama_cpp.llama_context_default_params()
    ctx_params.n_ctx = int(request["n_ctx"])
    ctx_params.n_batch = int(request["n_batch"])
    ctx_params.n_ubatch = int(request["n_ubatch"])
    ctx_params.n_seq_max = 1
    ctx_params.flash_attn_type = 1 if request["flash_attn"] else 0
    ctx_params.type_k = KV_TYPE_IDS[str(request["kv_cache_type"])]
    ctx_params.type_v = KV_TYPE_IDS[str(request["kv_cache_type"])]
    ctx_params.swa_full = bool(request["swa_full"])
    context = llama_cpp.llama_init_from_model(model, ctx_params)
    if not context:
        _emit(lines, ok=False, stage="context")
        return 4
    _emit(lines, ok=True, stage="done")
    return 0


def _emit(lines: list[str], *, ok: bool, stage: str) -> None:
    text = "".join(lines)
    print(json.dumps({"ok": ok, "stage": stage, "log": text}), flush=True)


def main(argv: list[str]) -> int:
    """Entry point: one JSON request argument (see `runtimes.llamacpp.dryrun`)."""
    if len(argv) != 1:
        print("usage: python -m runtimes.llamacpp.dryrun_child REQUEST_JSON", file=sys.stderr)
        return 2
    return _run(json.loads(argv[0]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
