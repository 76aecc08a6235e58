"""Worker-side llama.cpp engine: load with progress, render prompts, generate tokens.

Runs only inside the worker process (it imports llama_cpp and patches its load defaults).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from runtimes.base import ChatMessage, GenerationParams, GenerationStats
from runtimes.llamacpp.chat_template import (
    GGUFTemplate,
    TemplateUnusable,
    tolerant_template_compile,
)
from runtimes.llamacpp.generation import GenerationRun
from runtimes.llamacpp.settings import GGML_KV_TYPES, LlamaSettings
from runtimes.llamacpp.templates import (
    GGUF_TEMPLATE_KEY,
    TemplateChoice,
    fallback_by_source,
    render_prompt_text,
    replace_broken_template,
)
from runtimes.llamacpp.textstream import StopMatcher, normalize_bos

_log = logging.getLogger(__name__)

ProgressReport = Callable[[float], None]
_KEEPALIVE: list[object] = []


class PromptError(Exception):
    """A conversation that does not fit the model's context."""


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """The exact prompt a model sees.

    Attributes:
        text: the text given to the tokenizer (without a BOS the tokenizer adds).
        tokens: the token ids fed to the model, BOS included.
        stop_ids: token ids that end the reply besides llama.cpp's end-of-generation set.
        stop_texts: strings that end the reply (the format's and the request's).
    """

    text: str
    tokens: tuple[int, ...]
    stop_ids: frozenset[int]
    stop_texts: tuple[str, ...]


@contextmanager
def model_progress(report: ProgressReport) -> Iterator[None]:
    """Route llama.cpp's model-load progress callback to `report(fraction)` while loading.

    `Llama` builds its `llama_model_params` from `llama_model_default_params()` and offers
    no way to pass `progress_callback`; so, in this worker process only, the defaults
    function is wrapped to set it.
    """
    import llama_cpp.llama_cpp as lc

    original = lc.llama_model_default_params

    def on_progress(fraction: float, _user_data: object) -> bool:
        try:
            report(float(fraction))
        except Exception:  # noqa: BLE001 - an exception here would abort the load
            _log.exception("progress report failed")
        return True

    c_callback = lc.llama_progress_callback(on_progress)

    def params_with_progress() -> Any:
        params = original()
        params.progress_callback = c_callback
        return params

    lc.llama_model_default_params = params_with_progress
    try:
        yield
    finally:
        lc.llama_model_default_params = original
        _KEEPALIVE.append(c_callback)  # the model's params keep pointing at it


class Engine:
    """A loaded `llama_cpp.Llama` and how to prompt it.

    Args:
        llama: the loaded model.
        template_source: what the parent chose from the file's header: "gguf" (the file's
            own template) or "fallback:<name>". A "gguf" template that cannot be used is
            replaced here by the architecture's format; `template` says what was used.
    """

    def __init__(self, llama: Any, template_source: str) -> None:
        self.llama = llama
        self._vocab = llama._model.vocab  # llama-cpp-python keeps no public handle
        self.bos_id: int = int(llama.token_bos())
        eos_id = int(llama.token_eos())
        self._bos_text = llama._model.token_get_text(self.bos_id) if self.bos_id >= 0 else ""
        self._eos_text = llama._model.token_get_text(eos_id) if eos_id >= 0 else ""
        self._add_bos = bool(llama._model.add_bos_token())
        self.template = TemplateChoice(template_source, fallback_by_source(template_source), "")
        self._render: Callable[[Sequence[ChatMessage]], str]
        if self.template.fallback is None:
            try:
                self._render = self._open_gguf_template(eos_id).render
            except TemplateUnusable as exc:
                arch = llama.metadata.get("general.architecture", "")
                self.template = replace_broken_template(
                    arch if isinstance(arch, str) else "", self._has_special_token, str(exc)
                )
        if self.template.fallback is not None:
            self._render = self.template.fallback.render
        fallback_stops = self.template.fallback.stop_texts if self.template.fallback else ()
        self._format_stop_ids = frozenset(self._special_ids(fallback_stops))
        self._format_stop_texts = fallback_stops or ((self._eos_text,) if self._eos_text else ())

    def _open_gguf_template(self, eos_id: int) -> GGUFTemplate:
        """The file's own template, checked; raises `TemplateUnusable` when it is not."""
        text = self.llama.metadata.get(GGUF_TEMPLATE_KEY)
        if not isinstance(text, str) or not text.strip():
            raise TemplateUnusable("llama.cpp reads no template from the file")
        return GGUFTemplate(text, bos_text=self._bos_text, eos_text=self._eos_text, eos_id=eos_id)

    @classmethod
    def load(
        cls,
        path: str,
        settings: LlamaSettings,
        *,
        template_source: str,
        report: ProgressReport,
    ) -> Engine:
        """Load the model (llama.cpp's log goes to stderr) and prepare its prompt format."""
        import llama_cpp

        kv_type = getattr(llama_cpp, GGML_KV_TYPES[settings.kv_cache_type])
        with model_progress(report), tolerant_template_compile():
            llama = llama_cpp.Llama(
                model_path=path,
                n_ctx=settings.n_ctx,
                n_gpu_layers=settings.n_gpu_layers,
                n_threads=settings.n_threads,
                n_batch=settings.n_batch,
                flash_attn=settings.flash_attn,
                type_k=kv_type,
                type_v=kv_type,
                use_mmap=settings.use_mmap,
                use_mlock=settings.use_mlock,
                verbose=True,
            )
        return cls(llama, template_source)

    def _has_special_token(self, text: str) -> bool:
        """Whether the vocabulary holds `text` as one special token."""
        return bool(self._special_ids([text]))

    def _special_ids(self, texts: Sequence[str]) -> list[int]:
        """Ids of those texts that the vocabulary holds as single special tokens."""
        ids: list[int] = []
        for text in texts:
            special = self.llama.tokenize(text.encode(), add_bos=False, special=True)
            plain = self.llama.tokenize(text.encode(), add_bos=False, special=False)
            if len(special) == 1 and special != plain:
                ids.append(int(special[0]))
        return ids

    def render(
        self,
        messages: Sequence[ChatMessage],
        extra_stops: Sequence[str] = (),
        *,
        continue_last: bool = False,
    ) -> RenderedPrompt:
        """The prompt text and token ids for a conversation, with BOS exactly once if wanted.

        With `continue_last`, the prompt ends with the last (assistant) message's text, so
        that the model continues it (see `templates.render_prompt_text`). The stops are the
        same as for a new reply; the text is tokenized as a whole, so when the partial reply
        re-tokenizes as the model produced it, the prompt cache reuses all of it.

        Raises:
            TemplateRenderError: the model's chat template rejected the conversation.
        """
        text = render_prompt_text(self._render, messages, continue_last=continue_last)
        want_bos = self._add_bos or bool(self._bos_text and text.startswith(self._bos_text))
        raw = self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        tokens = normalize_bos([int(t) for t in raw], self.bos_id, want_bos)
        stops = tuple(dict.fromkeys([*self._format_stop_texts, *extra_stops]))
        return RenderedPrompt(text, tuple(tokens), self._format_stop_ids, stops)

    def is_end(self, token: int, prompt: RenderedPrompt) -> bool:
        """Whether `token` ends the reply (llama.cpp's end-of-generation set or a stop id)."""
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token)) or token in prompt.stop_ids

    def _prefill(self, tokens: Sequence[int], cancelled: Callable[[], bool]) -> bool:
        """Evaluate all prompt tokens but the last, reusing the cached prefix.

        `Llama.generate` then evaluates the last prompt token on its own, whether or not the
        prompt was cached. A token's logits depend (in the last bits) on the batch it is
        evaluated in, so without this a repeated greedy request could diverge from the first.
        Evaluates one batch at a time (as `Llama.eval` does), checking `cancelled` between
        batches so that a long prompt can be stopped; returns False when it was.
        """
        llama = self.llama
        reused = common_prefix(llama._input_ids.tolist(), tokens)  # private: no API
        reused = min(reused, len(tokens) - 1)
        if reused > 0 and not llama._ctx.kv_cache_seq_rm(-1, reused, -1):
            reused = 0  # this memory type cannot drop a suffix: start over
        if reused == 0:
            llama.reset()
        else:
            llama.n_tokens = reused
        step = max(1, int(llama.n_batch))
        for start in range(reused, len(tokens) - 1, step):
            if cancelled():
                return False
            llama.eval(list(tokens[start : min(start + step, len(tokens) - 1)]))
        return True

    def generate(
        self,
        prompt: RenderedPrompt,
        params: GenerationParams,
        *,
        started: float,
        cancelled: Callable[[], bool],
        on_text: Callable[[str], None],
    ) -> GenerationStats:
        """Generate the reply, passing text to `on_text` as it decodes; return its figures.

        Args:
            prompt: from `render`.
            params: sampling options; `max_tokens <= 0` means up to the context's end.
            started: `time.perf_counter()` when the request arrived (for ttft and total).
            cancelled: polled after every token; True stops with "cancelled".
            on_text: receives text pieces in order (stop strings already cut out).

        Raises:
            PromptError: the prompt does not fit the context.
        """
        llama = self.llama
        n_ctx = int(llama.n_ctx())
        if len(prompt.tokens) >= n_ctx:
            raise PromptError(
                f"the conversation is {len(prompt.tokens)} tokens long and the model's context "
                f"holds {n_ctx}. Start a new conversation or load the model with a larger context"
            )
        budget = n_ctx - len(prompt.tokens)
        max_new = min(params.max_tokens, budget) if params.max_tokens > 0 else budget
        llama.set_seed(params.seed if params.seed is not None else random.randrange(2**31))
        run = GenerationRun(
            prompt_tokens=len(prompt.tokens),
            is_end=lambda token: self.is_end(token, prompt),
            detokenize=llama.detokenize,
            matcher=StopMatcher(prompt.stop_texts),
            on_text=on_text,
        )
        if not self._prefill(prompt.tokens, cancelled):
            return run.stats("cancelled", started)
        tokens = llama.generate(
            list(prompt.tokens),
            top_k=params.top_k,
            top_p=params.top_p,
            min_p=params.min_p,
            temp=params.temperature,
            repeat_penalty=params.repeat_penalty,
        )
        try:
            reason = run.consume(tokens, max_new, cancelled)
        finally:
            tokens.close()
        return run.stats(reason, started)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common prefix of two token sequences."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
