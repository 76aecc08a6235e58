"""Load options on their way to llama.cpp: checks, forced flash attention, the load log, notices.

Log lines are copied from llama.cpp's output (llama-cpp-python 0.3.36, CPU) loading the
real SmolLM2 and Gemma 3 files.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import gguf
import numpy as np
import pytest

from runtimes.base import LoadOptions
from runtimes.errors import UserFacingError
from runtimes.gguf_header import read_header
from runtimes.llamacpp import protocol
from runtimes.llamacpp.engine import Engine
from runtimes.llamacpp.loadlog import MIB, LoadFacts, LoadLogReader, load_notices
from runtimes.llamacpp.options import (
    KVCacheTypeUnsupported,
    WorkerLoad,
    head_dims,
    resolve_load,
)
from runtimes.llamacpp.protocol import ProtocolError
from runtimes.llamacpp.settings import LlamaSettings, load_settings_from_wire
from runtimes.llamacpp.worker import Channel, Worker

SMOLLM2_FA_Q8_LOG = """\
load_tensors: loading model tensors, this can take a while... (load_mode = mmap)
load_tensors:   CPU_Mapped model buffer size =    92.10 MiB
llama_context: flash_attn            = enabled
llama_kv_cache:        CPU KV buffer size =    23.91 MiB
llama_kv_cache: size =   23.91 MiB (  2048 cells,  30 layers,  1/1 seqs), K (q8_0):   11.95 MiB, V (q8_0):   11.95 MiB
"""  # noqa: E501
GEMMA_LOG = """\
llama_context: flash_attn            = disabled
llama_kv_cache: size =    6.00 MiB (  2048 cells,   3 layers,  1/1 seqs), K (f16):    3.00 MiB, V (f16):    3.00 MiB
llama_kv_cache: size =   30.00 MiB (  2048 cells,  15 layers,  1/1 seqs), K (f16):   15.00 MiB, V (f16):   15.00 MiB
"""  # noqa: E501
MLOCK_FAILED_LOG = """\
load_tensors: loading model tensors, this can take a while... (load_mode = mmap+mlock)
warning: failed to mlock 31866880-byte buffer (after previously locking 0 bytes): Cannot allocate memory
Try increasing RLIMIT_MEMLOCK ('ulimit -l' as root).
"""  # noqa: E501


def _facts(log: str) -> LoadFacts:
    reader = LoadLogReader()
    for line in log.splitlines():
        reader.feed(line)
    return reader.facts


def test_head_sizes_come_from_key_length_or_embedding_per_head(
    smollm2_path: Path, gemma_path: Path
) -> None:
    assert head_dims(read_header(smollm2_path)) == (64, 64)  # 576 / 9, no key_length key
    assert head_dims(read_header(gemma_path)) == (256, 256)  # key_length, not 640 / 4


def test_a_quantized_kv_cache_turns_flash_attention_on_and_says_why(smollm2_path: Path) -> None:
    header = read_header(smollm2_path)
    forced = resolve_load(LoadOptions(kv_cache_type="q8_0"), header, 2)
    assert (forced.flash_attn, forced.flash_attn_forced) == (True, True)
    asked = resolve_load(LoadOptions(kv_cache_type="q4_0", flash_attn=True), header, 2)
    assert (asked.flash_attn, asked.flash_attn_forced) == (True, False)
    plain = resolve_load(LoadOptions(), header, 2)
    assert (plain.flash_attn, plain.flash_attn_forced) == (False, False)


def test_every_option_reaches_the_load_request(smollm2_path: Path) -> None:
    options = LoadOptions(
        n_ctx=1024,
        n_gpu_layers=-1,
        n_threads=None,
        n_batch=128,
        flash_attn=True,
        kv_cache_type="q4_0",
        use_mmap=False,
        use_mlock=True,
    )
    wire = resolve_load(options, read_header(smollm2_path), 3).to_wire("/m/x.gguf", "gguf")
    assert wire == {
        "op": "load",
        "path": "/m/x.gguf",
        "n_ctx": 1024,
        "n_gpu_layers": -1,
        "n_threads": 3,
        "n_batch": 128,
        "flash_attn": True,
        "kv_cache_type": "q4_0",
        "use_mmap": False,
        "use_mlock": True,
        "template": "gguf",
    }
    assert load_settings_from_wire(wire) == LlamaSettings(
        1024, -1, 3, 128, True, "q4_0", False, True
    )


def test_a_head_size_the_quantized_cache_cannot_hold_is_refused_before_loading(
    tmp_path: Path,
) -> None:
    path = tmp_path / "phi.gguf"
    writer = gguf.GGUFWriter(str(path), "phi2")
    writer.add_block_count(2)
    writer.add_embedding_length(2560)
    writer.add_head_count(32)  # 80-value heads: not a multiple of 32
    writer.add_tensor("output_norm.weight", np.zeros((16,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    header = read_header(path)
    resolve_load(LoadOptions(kv_cache_type="f16"), header, 2)
    with pytest.raises(KVCacheTypeUnsupported) as caught:
        resolve_load(LoadOptions(kv_cache_type="q8_0"), header, 2)
    assert isinstance(caught.value, UserFacingError)
    assert caught.value.message == (
        "This model's attention key heads have 80 values, which a q8_0 KV cache cannot store "
        "(it needs a multiple of 32). Choose the f16 KV cache."
    )


def test_the_worker_rejects_a_load_request_without_the_new_fields() -> None:
    with pytest.raises(ProtocolError, match="kv_cache_type"):
        load_settings_from_wire({"op": "load", "n_ctx": 1})
    wire = WorkerLoad(1, 0, 1, 1, False, "f16", True, False).to_wire("m", "gguf")
    with pytest.raises(ProtocolError, match="unknown kv_cache_type 'q5_1'"):
        load_settings_from_wire({**wire, "kv_cache_type": "q5_1"})
    with pytest.raises(ProtocolError, match="'use_mmap' is not a boolean"):
        load_settings_from_wire({**wire, "use_mmap": 1})


def test_the_worker_passes_the_settings_to_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[LlamaSettings] = []

    def load(_path: str, settings: LlamaSettings, **_kw: object) -> Engine:
        seen.append(settings)
        raise ValueError("stop here")

    monkeypatch.setattr(Engine, "load", load)
    wire = WorkerLoad(512, 0, 1, 64, True, "q8_0", False, True).to_wire("m.gguf", "gguf")
    out = io.BytesIO()
    Worker(Channel(out), [protocol.encode(wire)]).run()
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert events[-1] == {"ev": "error", "kind": "load", "message": "stop here"}
    assert seen == [LlamaSettings(512, 0, 1, 64, True, "q8_0", False, True)]


def test_the_log_says_flash_attention_and_kv_cache_type_and_size() -> None:
    facts = _facts(SMOLLM2_FA_Q8_LOG)
    assert facts == LoadFacts(
        flash_attn=True,
        kv_types=("q8_0", "q8_0"),
        kv_bytes=round(23.91 * MIB),
        load_mode="mmap",
    )


def test_kv_caches_of_sliding_window_models_add_up() -> None:
    facts = _facts(GEMMA_LOG)
    assert (facts.flash_attn, facts.kv_types, facts.kv_bytes) == (False, ("f16", "f16"), 36 * MIB)


def test_an_mlock_failure_is_read_from_its_warning() -> None:
    facts = _facts(MLOCK_FAILED_LOG)
    assert (facts.load_mode, facts.mlock_error) == ("mmap+mlock", "Cannot allocate memory")


def test_a_default_load_says_nothing(smollm2_path: Path) -> None:
    request = resolve_load(LoadOptions(), read_header(smollm2_path), 2)
    facts = _facts("llama_context: flash_attn = disabled\n(load_mode = mmap)")
    assert load_notices(facts, request) == []


def test_notice_reports_what_llama_cpp_did(smollm2_path: Path) -> None:
    header = read_header(smollm2_path)
    forced = resolve_load(LoadOptions(kv_cache_type="q8_0"), header, 2)
    assert load_notices(_facts(SMOLLM2_FA_Q8_LOG), forced) == [
        "Flash attention on (turned on: a q8_0 KV cache needs it) · KV cache q8_0 (23.9 MiB)."
    ]
    asked = resolve_load(LoadOptions(kv_cache_type="q8_0", flash_attn=True), header, 2)
    assert load_notices(_facts(SMOLLM2_FA_Q8_LOG), asked) == [
        "Flash attention on · KV cache q8_0 (23.9 MiB)."
    ]


def test_notice_reports_mmap_off_and_mlock(smollm2_path: Path) -> None:
    header = read_header(smollm2_path)
    request = resolve_load(LoadOptions(use_mmap=False, use_mlock=True), header, 2)
    facts = _facts("load_tensors: loading ... (load_mode = none)")
    assert load_notices(facts, request) == [
        "Weights read into RAM (mmap off) · locked in RAM (mlock)."
    ]


def test_notice_reports_a_failed_mlock_and_what_to_do(smollm2_path: Path) -> None:
    request = resolve_load(LoadOptions(use_mlock=True), read_header(smollm2_path), 2)
    assert load_notices(_facts(MLOCK_FAILED_LOG), request) == [
        "Locking the model in RAM (mlock) failed (Cannot allocate memory), so it may be "
        "swapped out. Raise the locked-memory limit (ulimit -l) or turn mlock off."
    ]


def test_notice_says_when_llama_cpp_turned_flash_attention_off(smollm2_path: Path) -> None:
    request = resolve_load(LoadOptions(flash_attn=True), read_header(smollm2_path), 2)
    facts = _facts("llama_context: flash_attn            = disabled")
    assert load_notices(facts, request) == [
        "Flash attention was asked for, but llama.cpp turned it off here."
    ]
