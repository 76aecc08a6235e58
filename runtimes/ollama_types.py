"""Values the Ollama runtime reports (pull progress, running models, model details) and builds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from runtimes.base import LoadedModelInfo, LoadOptions

_GIB = 1024**3
_DEFAULT_BATCH = LoadOptions().n_batch


@dataclass(frozen=True, slots=True)
class PullProgress:
    """One step of `ollama pull`, as the server reports it.

    Attributes:
        status: e.g. "pulling manifest", "pulling 8eeb52dfb3bb", "verifying sha256 digest",
            "writing manifest", "success".
        digest: the layer being downloaded ("" outside the download steps).
        completed: bytes of that layer on disk so far.
        total: the layer's size in bytes (0 when not known yet).
    """

    status: str
    digest: str = ""
    completed: int = 0
    total: int = 0

    @property
    def fraction(self) -> float:
        """How much of the current layer is there, in [0, 1] (0 when its size is unknown)."""
        return min(1.0, self.completed / self.total) if self.total > 0 else 0.0


@dataclass(frozen=True, slots=True)
class RunningModel:
    """A model the server holds in memory (`/api/ps`).

    Attributes:
        name: its name, e.g. "llama3.2:3b".
        size_bytes: memory it takes (weights, cache and buffers).
        size_vram_bytes: how much of that is in GPU memory.
        expires_at: when the server unloads it if idle (None when it did not say).
        context_length: the context it was loaded with (0 when the server did not say).
    """

    name: str
    size_bytes: int
    size_vram_bytes: int
    expires_at: datetime | None
    context_length: int

    @property
    def where(self) -> str:
        """Where it runs: "GPU" (all in VRAM), "CPU" (none), or the GPU's share, e.g. "48% GPU"."""
        if self.size_vram_bytes <= 0:
            return "CPU"
        if self.size_vram_bytes >= self.size_bytes:
            return "GPU"
        return f"{round(100 * self.size_vram_bytes / self.size_bytes)}% GPU"


@dataclass(frozen=True, slots=True)
class OllamaModelDetails:
    """What `/api/show` says about a model, as far as the workbench needs it.

    Attributes:
        name: the model's name.
        architecture: `general.architecture` ("" when not given).
        family: Ollama's family ("llama", "qwen2", ...).
        parameter_size: e.g. "8.0B".
        quantization: e.g. "Q4_K_M".
        context_length: the trained context (`<arch>.context_length`), 0 when unknown.
        n_layers: `<arch>.block_count`, 0 when unknown.
        has_template: whether Ollama has a prompt template for it (chat needs one).
        capabilities: e.g. ("completion", "tools", "vision").
    """

    name: str
    architecture: str
    family: str
    parameter_size: str
    quantization: str
    context_length: int
    n_layers: int
    has_template: bool
    capabilities: tuple[str, ...] = ()


def full_name(name: str) -> str:
    """`name` with Ollama's default tag: "llama3.2" → "llama3.2:latest" (as /api/ps lists it)."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


def load_options(options: LoadOptions) -> dict[str, object]:
    """The Ollama `options` a load asks for.

    `num_ctx` always (server defaults differ by version and VRAM). `n_gpu_layers` only when it
    names a layer count: -1 ("all") and the default 0 leave the split to the server, which
    knows its own GPU better than our estimate of it does.
    """
    result: dict[str, object] = {"num_ctx": options.n_ctx}
    if options.n_gpu_layers > 0:
        result["num_gpu"] = options.n_gpu_layers
    if options.n_threads:
        result["num_thread"] = options.n_threads
    if options.n_batch != _DEFAULT_BATCH:
        result["num_batch"] = options.n_batch
    if not options.use_mmap:
        result["use_mmap"] = False
    if options.use_mlock:
        result["use_mlock"] = True
    return result


def unsupported_notice(options: LoadOptions) -> str:
    """A sentence about load options Ollama only takes server-wide, or ""."""
    if not options.flash_attn and options.kv_cache_type == "f16":
        return ""
    return (
        "Ollama sets flash attention and the KV cache type for the whole server "
        "(OLLAMA_FLASH_ATTENTION, OLLAMA_KV_CACHE_TYPE), so those options were not applied."
    )


def build_info(
    *,
    version: str,
    details: OllamaModelDetails,
    options: LoadOptions,
    running: RunningModel | None,
    load_time_s: float,
) -> LoadedModelInfo:
    """What a load produced: GPU use from `/api/ps` (1/1 "layers" when all of it is in VRAM).

    Ollama reports memory, not layers; so a model wholly in VRAM counts as 1 of 1 and a split
    is told in the notice.
    """
    notices: list[str] = []
    on_gpu = running is not None and running.where == "GPU"
    if running is not None and on_gpu:
        notices.append("100% GPU: Ollama holds all of the model in VRAM.")
    elif running is not None and running.size_vram_bytes > 0:
        notices.append(
            f"Ollama split it between GPU and CPU: {running.where} "
            f"({running.size_vram_bytes / _GIB:.1f} of {running.size_bytes / _GIB:.1f} GiB "
            "in VRAM); the CPU part is much slower."
        )
    if extra := unsupported_notice(options):
        notices.append(extra)
    return LoadedModelInfo(
        backend=f"Ollama {version}",
        n_ctx=options.n_ctx,
        n_gpu_layers=1 if on_gpu else 0,
        n_layers=1 if on_gpu else 0,
        n_threads=options.n_threads or 0,
        architecture=details.architecture,
        chat_template="ollama",
        notice=" ".join(notices),
        load_time_s=load_time_s,
    )
