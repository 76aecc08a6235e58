"""The worker pipe protocol: newline-delimited JSON objects, one message a line.

Parent -> worker (key "op"):
    load     {path, n_ctx, n_gpu_layers, n_threads, n_batch, flash_attn, kv_cache_type
              ("f16" | "q8_0" | "q4_0", for K and V), use_mmap, use_mlock, template}
    chat     {id, messages: [{role, content}], params: GenerationParams.as_dict(),
              continue_last?: bool}             (continue the last, assistant, message)
    render   {id, messages, continue_last?}    (debug: the exact prompt and token ids)
    count    {id, messages}                    (the prompt's token count, no generation)
    cancel   {id}                              (stop the running chat `id`)
    exit     {}

Worker -> parent (key "ev"):
    hello    {pid, protocol}
    progress {fraction, stage}
    loaded   {n_ctx, n_threads, backend, gpu_offload, load_s, template, template_notice}
             (template: the prompt format used, "gguf" or "fallback:<name>"; it differs
             from the load request's when the file's own template proved unusable)
    text     {id, text}
    done     {id, stats: GenerationStats.as_dict()}
    rendered {id, text, tokens, bos_id, stop_ids, stop_texts}
    counted  {id, tokens}                      (tokens: how many, BOS included)
    error    {id?, kind: "load" | "request" | "template" | "engine" | "internal", message}
             (template: the chat template rejected the conversation; internal: a bug in
             the worker, whose traceback is in its stderr; the worker keeps serving)

The worker serves one request at a time: a `render` or `count` sent while a chat runs waits
until that chat ends (the parent's handle refuses them while it streams, with `RuntimeBusy`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import cast

from runtimes.base import ChatMessage, GenerationParams, GenerationStats, Role, StopReason
from runtimes.errors import ExternalFailure

PROTOCOL_VERSION = 3
MAX_LINE_BYTES = 64 * 1024 * 1024
LOAD_FINISHED_MARKER = "llm-workbench: model load finished"
"""Written to stderr after loading, so the parent knows it has read the whole load log."""
_ROLES: frozenset[str] = frozenset({"system", "user", "assistant"})
_STOP_REASONS: frozenset[str] = frozenset({"stop", "length", "cancelled", "error"})

Message = dict[str, object]


class ProtocolError(ExternalFailure):
    """A message on the worker pipe that does not follow the protocol."""

    def __init__(self, problem: str, line: bytes | str = b"") -> None:
        shown = line if isinstance(line, str) else line[:500].decode("utf-8", "replace")
        super().__init__(
            f"The model's worker process sent an unreadable message ({problem}). "
            "Load the model again; if it keeps happening, report it with the details.",
            details=shown,
        )
        self.problem = problem


def encode(message: Mapping[str, object]) -> bytes:
    """One message as a JSON line (UTF-8, newline-terminated)."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes, key: str) -> Message:
    """Parse one line into a message that has a string under `key` ("op" or "ev").

    Raises:
        ProtocolError: not UTF-8 JSON, not an object, or no `key`.
    """
    try:
        value = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}", line) from None
    if not isinstance(value, dict) or not isinstance(value.get(key), str):
        raise ProtocolError(f'not an object with a "{key}"', line)
    return cast(Message, value)


def get_str(message: Message, key: str) -> str:
    """A string field; raises ProtocolError when missing or of another type."""
    value = message.get(key)
    if not isinstance(value, str):
        raise ProtocolError(f"field {key!r} is not a string", json.dumps(message)[:500])
    return value


def get_int(message: Message, key: str) -> int:
    """An integer field (not bool); raises ProtocolError otherwise."""
    value = message.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError(f"field {key!r} is not an integer", json.dumps(message)[:500])
    return value


def get_bool(message: Message, key: str) -> bool:
    """A boolean field; raises ProtocolError otherwise."""
    value = message.get(key)
    if not isinstance(value, bool):
        raise ProtocolError(f"field {key!r} is not a boolean", json.dumps(message)[:500])
    return value


def get_flag(message: Message, key: str) -> bool:
    """An optional boolean field (absent: False); raises ProtocolError on another type."""
    if key not in message:
        return False
    return get_bool(message, key)


def get_float(message: Message, key: str) -> float:
    """A number field as float; raises ProtocolError otherwise."""
    value = message.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ProtocolError(f"field {key!r} is not a number", json.dumps(message)[:500])
    return float(value)


def get_dict(message: Message, key: str) -> Message:
    """An object field; raises ProtocolError otherwise."""
    value = message.get(key)
    if not isinstance(value, dict):
        raise ProtocolError(f"field {key!r} is not an object", json.dumps(message)[:500])
    return cast(Message, value)


def messages_to_wire(messages: tuple[ChatMessage, ...]) -> list[dict[str, str]]:
    """Chat messages as plain dicts."""
    return [{"role": m.role, "content": m.content} for m in messages]


def messages_from_wire(value: object) -> tuple[ChatMessage, ...]:
    """Chat messages back from plain dicts; raises ProtocolError on a bad entry."""
    if not isinstance(value, list):
        raise ProtocolError("messages is not a list")
    out: list[ChatMessage] = []
    for item in value:
        if not isinstance(item, dict):
            raise ProtocolError("a message is not an object")
        role, content = item.get("role"), item.get("content")
        if role not in _ROLES or not isinstance(content, str):
            raise ProtocolError(f"bad message role {role!r} or content")
        out.append(ChatMessage(role=cast(Role, role), content=content))
    return tuple(out)


def params_from_wire(raw: Message) -> GenerationParams:
    """Generation parameters back from `GenerationParams.as_dict()`."""
    seed = raw.get("seed")
    stop = raw.get("stop", [])
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise ProtocolError("seed is not an integer")
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise ProtocolError("stop is not a list of strings")
    return GenerationParams(
        temperature=get_float(raw, "temperature"),
        top_p=get_float(raw, "top_p"),
        top_k=get_int(raw, "top_k"),
        min_p=get_float(raw, "min_p"),
        repeat_penalty=get_float(raw, "repeat_penalty"),
        max_tokens=get_int(raw, "max_tokens"),
        seed=seed,
        stop=tuple(cast(list[str], stop)),
    )


def stats_from_wire(raw: Message) -> GenerationStats:
    """Generation figures back from `GenerationStats.as_dict()`."""
    reason = get_str(raw, "stop_reason")
    if reason not in _STOP_REASONS:
        raise ProtocolError(f"unknown stop_reason {reason!r}")
    return GenerationStats(
        prompt_tokens=get_int(raw, "prompt_tokens"),
        completion_tokens=get_int(raw, "completion_tokens"),
        load_time_s=get_float(raw, "load_time_s"),
        ttft_s=get_float(raw, "ttft_s"),
        decode_tps=get_float(raw, "decode_tps"),
        total_time_s=get_float(raw, "total_time_s"),
        stop_reason=cast(StopReason, reason),
    )
