"""The Ollama test server's back end: GGUF files under Ollama names, and a llama.cpp runner.

`ServerState` is what the server knows (its store, the one model in memory, test controls);
`TokenEngine` generates with llama-cpp-python and the model file's own chat template.
"""

from __future__ import annotations

import asyncio
import codecs
import hashlib
import json
import os
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import gguf

from runtimes.base import ChatMessage, GenerationParams
from runtimes.gguf_header import GGUFHeader, read_header

DEFAULT_KEEP_ALIVE_S = 300.0
DEFAULT_NUM_CTX = 4096
FOREVER = datetime(2318, 1, 1, tzinfo=UTC)  # what Ollama shows for a negative keep_alive
GGUF_TEMPLATE_KEY = "tokenizer.chat_template"
CHATML = (  # for a file without a template, as Ollama's own default would do
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "<|im_start|>assistant\n"
)
_DURATION = re.compile(r"(-?\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def quantization_name(file_type: int | None) -> str:
    """Ollama's quantization_level for a `general.file_type`: "Q4_1", "F16", ..."""
    try:
        name = gguf.LlamaFileType(file_type if file_type is not None else -1).name
    except ValueError:
        return "unknown"
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def now_text(when: datetime | None = None) -> str:
    """RFC 3339 with nanosecond-style precision, as Ollama writes times."""
    return (when or datetime.now(UTC)).isoformat().replace("+00:00", "Z")


def human_number(n: int) -> str:
    """Ollama's parameter_size: "134.52M", "8.0B"."""
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.2f}M"


def keep_alive_seconds(value: object) -> float:
    """Seconds of an Ollama `keep_alive` (number of seconds or Go duration); <0: forever."""
    if value is None:
        return DEFAULT_KEEP_ALIVE_S
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    parts = _DURATION.findall(str(value))
    if not parts or "".join(a + b for a, b in parts) != str(value).replace("+", ""):
        raise ValueError(f"time: invalid duration {json.dumps(value)}")
    return sum(float(amount) * _UNIT_S[unit] for amount, unit in parts)


@dataclass
class StoredModel:
    """A model in the server's store: a GGUF file under an Ollama name."""

    name: str
    path: Path
    header: GGUFHeader
    modified_at: str = field(default_factory=now_text)

    @property
    def digest(self) -> str:
        return hashlib.sha256(f"{self.name}|{self.path}".encode()).hexdigest()

    @property
    def details(self) -> dict[str, object]:
        arch = self.header.architecture
        n_params = self.header.get_int("general.parameter_count") or sum(
            t.n_elements for t in self.header.tensors
        )
        file_type = self.header.get_int("general.file_type")
        return {
            "parent_model": "",
            "format": "gguf",
            "family": arch,
            "families": [arch],
            "parameter_size": human_number(n_params),
            "quantization_level": quantization_name(file_type),
        }

    def listing(self) -> dict[str, object]:
        """Its `/api/tags` entry."""
        return {
            "name": self.name,
            "model": self.name,
            "modified_at": self.modified_at,
            "size": self.path.stat().st_size,
            "digest": self.digest,
            "details": self.details,
        }

    def model_info(self) -> dict[str, object]:
        """`/api/show`'s model_info: the GGUF's scalar metadata (arrays only as verbose)."""
        info = {
            k: v
            for k, v in self.header.metadata.items()
            if not isinstance(v, list) and k != GGUF_TEMPLATE_KEY
        }
        info.setdefault("general.parameter_count", sum(t.n_elements for t in self.header.tensors))
        return info

    def memory_bytes(self, n_ctx: int) -> int:
        """Weights plus an f16 KV cache for `n_ctx`: what `/api/ps` reports as size."""
        h = self.header
        heads = h.arch_int("attention.head_count") or 1
        kv_dim = (h.arch_int("attention.head_count_kv") or heads) * (
            (h.arch_int("embedding_length") or 0) // heads
        )
        return self.path.stat().st_size + n_ctx * (h.arch_int("block_count") or 0) * 2 * kv_dim * 2


class StopFilter:
    """Cuts the text at the first stop string, holding back what may start one."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.hit = False

    def feed(self, text: str) -> str:
        """The text that is safe to send now."""
        self.pending += text
        for stop in self.stops:
            at = self.pending.find(stop)
            if at >= 0:
                out, self.pending, self.hit = self.pending[:at], "", True
                return out
        keep = max(
            (k for s in self.stops for k in range(1, len(s)) if self.pending.endswith(s[:k])),
            default=0,
        )
        cut = len(self.pending) - keep
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out

    def flush(self) -> str:
        out, self.pending = ("" if self.hit else self.pending), ""
        return out


@dataclass
class RunResult:
    """What one generation did: Ollama's counts and times (seconds)."""

    prompt_tokens: int
    eval_count: int
    prompt_eval_s: float
    eval_s: float
    reason: str


class TokenEngine:
    """A `llama_cpp.Llama` with the file's own chat template: Ollama's runner in miniature."""

    def __init__(self, path: Path, n_ctx: int, n_threads: int) -> None:
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.llama = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_gpu_layers=0,
            verbose=False,
        )
        meta = self.llama.metadata
        special = self.llama.detokenize
        bos = special([self.llama.token_bos()], special=True).decode(errors="replace")
        eos = special([self.llama.token_eos()], special=True).decode(errors="replace")
        self._bos_text = bos
        self._add_bos = meta.get("tokenizer.ggml.add_bos_token", "true") == "true"
        self._format = Jinja2ChatFormatter(meta.get(GGUF_TEMPLATE_KEY) or CHATML, eos, bos)
        self._vocab = llama_cpp.llama_model_get_vocab(self.llama.model)
        self._is_eog = llama_cpp.llama_vocab_is_eog
        # Warm up as llama.cpp's server does: the first decode touches every weight (mapped
        # from disk), which is part of loading, not of the first reply's prompt time.
        self.llama.eval(self.llama.tokenize(b"Hello", add_bos=True))
        self.llama.reset()

    def prompt(self, messages: list[ChatMessage]) -> list[int]:
        """The prompt's tokens, as the template renders the conversation.

        A final assistant message is continued, as Ollama does (its library templates leave
        the last assistant turn open: `{{ if not $last }}<|im_end|>{{ end }}`): the rest is
        rendered with the generation prompt and that message's text follows, unclosed.
        """
        head, prefill = messages, ""
        if messages and messages[-1].role == "assistant":
            head, prefill = messages[:-1], messages[-1].content
        wire = [{"role": m.role, "content": m.content} for m in head]
        text = self._format(messages=wire).prompt + prefill
        add_bos = self._add_bos and not (self._bos_text and text.startswith(self._bos_text))
        return self.llama.tokenize(text.encode(), add_bos=add_bos, special=True)

    def run(
        self,
        messages: list[ChatMessage],
        params: GenerationParams,
        stop: threading.Event,
        on_text: Callable[[str], None],
    ) -> RunResult:
        """Generate (blocking), passing each token's text to `on_text`; ValueError when too long."""
        tokens = self.prompt(messages)
        n_ctx = self.llama.n_ctx()
        if len(tokens) >= n_ctx:
            raise ValueError(f"input length {len(tokens)} exceeds the context length {n_ctx}")
        budget = n_ctx - len(tokens)
        max_new = min(params.max_tokens, budget) if params.max_tokens > 0 else budget
        self.llama.set_seed(params.seed if params.seed is not None else random.randrange(2**31))
        self.llama.reset()  # the whole prompt in one batch every time: reproducible logits
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopFilter(params.stop)
        started = time.perf_counter()
        first: float | None = None
        count, reason = 0, "length"
        stream = self.llama.generate(
            tokens,
            top_k=params.top_k,
            top_p=params.top_p,
            min_p=params.min_p,
            temp=params.temperature,
            repeat_penalty=params.repeat_penalty,
        )
        try:
            for token in stream:
                first = first or time.perf_counter()
                if self._is_eog(self._vocab, token):
                    reason = "stop"
                    break
                count += 1
                text = stops.feed(decoder.decode(self.llama.detokenize([token])))
                if text:
                    on_text(text)
                if stops.hit:
                    reason = "stop"
                    break
                if stop.is_set():
                    reason = "cancelled"
                    break
                if count >= max_new:
                    break
        finally:
            stream.close()
        stops.feed(decoder.decode(b"", final=True))
        if tail := stops.flush():
            on_text(tail)
        end = time.perf_counter()
        first = first or end
        return RunResult(len(tokens), count, first - started, end - first, reason)


@dataclass
class Loaded:
    """The model in memory."""

    model: StoredModel
    engine: TokenEngine
    n_ctx: int
    expires_at: datetime


@dataclass
class Fault:
    """A failure to inject into the next streamed reply."""

    kind: str
    after: int = 2
    seconds: float = 5.0
    message: str = "llama runner process has terminated: signal: killed"


class ServerState:
    """The store, the loaded model, and the test controls."""

    def __init__(self, models: dict[str, Path], pullable: dict[str, Path], version: str) -> None:
        self._initial = (dict(models), version)
        self.pullable = pullable
        self.store: dict[str, StoredModel] = {}
        self.version = version
        self.loaded: Loaded | None = None
        self.lock = asyncio.Lock()
        self.faults: list[Fault] = []
        self.partial: dict[str, int] = {}
        self.last_run: RunResult | None = None
        self.last_final: dict[str, object] | None = None
        # Half the cores, like llama.cpp's default: tests share this machine with other work,
        # and llama.cpp's spinning threads stall badly when cores are oversubscribed.
        self.n_threads = max(1, (os.cpu_count() or 1) // 2)
        self.reset()

    def reset(self) -> None:
        models, self.version = self._initial
        self.store = {
            name: StoredModel(name, path, read_header(path)) for name, path in models.items()
        }
        self.faults.clear()
        self.partial.clear()
        self.last_final = None
        self.last_run = None

    def take_fault(self, kinds: tuple[str, ...]) -> Fault | None:
        """The next fault if it is one of `kinds` (it is used up), else None."""
        return self.faults.pop(0) if self.faults and self.faults[0].kind in kinds else None

    def expire(self) -> None:
        if self.loaded is not None and self.loaded.expires_at <= datetime.now(UTC):
            self.unload()

    def unload(self) -> None:
        if self.loaded is not None:
            self.loaded.engine.llama.close()
            self.loaded = None

    def ensure_loaded(self, model: StoredModel, n_ctx: int) -> int:
        """Load `model` with `n_ctx` unless it is loaded so; nanoseconds spent (blocking)."""
        started = time.perf_counter()
        current = self.loaded
        if current is None or current.model.name != model.name or current.n_ctx != n_ctx:
            self.unload()
            engine = TokenEngine(model.path, n_ctx, self.n_threads)
            self.loaded = Loaded(model, engine, n_ctx, FOREVER)
        return round((time.perf_counter() - started) * 1e9)

    def touch(self, keep_alive_s: float) -> None:
        if self.loaded is not None:
            self.loaded.expires_at = (
                FOREVER if keep_alive_s < 0 else datetime.now(UTC) + timedelta(seconds=keep_alive_s)
            )


def sampling(options: dict[str, Any]) -> GenerationParams:
    """GenerationParams from Ollama `options`, with Ollama's defaults (ValueError when bad)."""
    num_predict = int(options.get("num_predict", -1))
    seed = int(options.get("seed", -1))
    stop = options.get("stop") or []
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise ValueError('option "stop" must be a list of strings')
    return GenerationParams(
        temperature=float(options.get("temperature", 0.8)),
        top_p=float(options.get("top_p", 0.9)),
        top_k=int(options.get("top_k", 40)),
        min_p=float(options.get("min_p", 0.0)),
        repeat_penalty=float(options.get("repeat_penalty", 1.1)),
        max_tokens=num_predict if num_predict > 0 else 0,  # -1 / -2: until the context ends
        seed=seed if seed >= 0 else None,
        stop=tuple(stop),
    )
