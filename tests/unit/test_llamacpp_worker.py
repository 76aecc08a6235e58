"""The worker's request loop and how the parent names its errors (no llama.cpp needed).

The worker runs in this process over in-memory pipes, with a stand-in engine.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from types import SimpleNamespace

import jinja2
import pytest

from runtimes.base import ChatMessage, GenerationParams
from runtimes.errors import ChatTemplateFailed, ExternalFailure, UserFacingError
from runtimes.llamacpp import protocol
from runtimes.llamacpp.engine import Engine, RenderedPrompt
from runtimes.llamacpp.model import LlamaCppModel
from runtimes.llamacpp.options import WorkerLoad
from runtimes.llamacpp.worker import Channel, Worker

HELLO = [{"role": "user", "content": "Hello"}]


class BuggyEngine(Engine):
    """Renders "render" requests, and fails with a bug on any conversation it must answer."""

    def __init__(self) -> None:  # no llama.cpp model behind it
        self.bos_id = 1

    def render(
        self,
        messages: Sequence[ChatMessage],
        extra_stops: Sequence[str] = (),
        *,
        continue_last: bool = False,
    ) -> RenderedPrompt:
        if extra_stops == ("never",):
            raise ZeroDivisionError("division by zero in a helper")
        return RenderedPrompt(messages[0].content, (1, 2), frozenset(), ())


def _serve(requests: list[dict[str, object]], engine: Engine | None = None) -> list[dict]:
    out = io.BytesIO()
    worker = Worker(Channel(out), [protocol.encode(r) for r in requests])
    worker._engine = engine
    assert worker.run() == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def _chat(request_id: int) -> dict[str, object]:
    params = GenerationParams(max_tokens=4, stop=("never",)).as_dict()
    return {"op": "chat", "id": request_id, "messages": HELLO, "params": params}


def test_a_bug_in_one_request_is_reported_for_it_and_the_worker_keeps_serving(
    capsys: pytest.CaptureFixture[str],
) -> None:
    events = _serve(
        [_chat(1), {"op": "render", "id": 2, "messages": HELLO}, {"op": "exit"}], BuggyEngine()
    )
    assert [e["ev"] for e in events] == ["hello", "error", "rendered"]
    assert events[1] == {
        "ev": "error",
        "kind": "internal",
        "id": 1,
        "message": "ZeroDivisionError: division by zero in a helper",
    }
    assert (events[2]["id"], events[2]["text"]) == (2, "Hello")
    log = capsys.readouterr().err
    assert "Traceback (most recent call last)" in log
    assert "ZeroDivisionError: division by zero in a helper" in log


def test_count_answers_the_prompts_token_count_and_a_bad_continue_is_refused() -> None:
    events = _serve(
        [
            {"op": "count", "id": 1, "messages": HELLO},
            {"op": "render", "id": 2, "messages": HELLO, "continue_last": True},
            {"op": "exit"},
        ],
        BuggyEngine(),
    )
    assert events[1] == {"ev": "counted", "id": 1, "tokens": 2}
    assert (events[2]["ev"], events[2]["kind"], events[2]["id"]) == ("error", "internal", 2)
    assert "assistant message at the end" in events[2]["message"]


def test_an_unexpected_exception_while_loading_is_a_load_error_not_a_dead_worker(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def load(*_args: object, **_kwargs: object) -> Engine:
        raise jinja2.TemplateSyntaxError("unexpected '}'", lineno=1)

    monkeypatch.setattr(Engine, "load", load)
    request = WorkerLoad(
        n_ctx=512,
        n_gpu_layers=0,
        n_threads=1,
        n_batch=512,
        flash_attn=False,
        kv_cache_type="f16",
        use_mmap=True,
        use_mlock=False,
    ).to_wire("model.gguf", "gguf")
    events = _serve([request, {"op": "render", "id": 1, "messages": HELLO}])
    errors = [e for e in events if e["ev"] == "error"]
    assert errors[0] == {
        "ev": "error",
        "kind": "internal",
        "message": "TemplateSyntaxError: unexpected '}'",
    }
    assert errors[1]["id"] == 1 and "no model is loaded" in errors[1]["message"]
    assert "Traceback" in capsys.readouterr().err


def _model_error(event: dict[str, object]) -> Exception:
    worker = SimpleNamespace(stderr_tail=lambda: "the worker's log")
    model = LlamaCppModel(worker, None, "model.gguf")  # type: ignore[arg-type]
    return model._request_error(event)


def test_template_error_from_the_worker_is_chat_template_failed() -> None:
    error = _model_error(
        {"ev": "error", "id": 1, "kind": "template", "message": "Roles must alternate"}
    )
    assert isinstance(error, ChatTemplateFailed) and isinstance(error, UserFacingError)
    assert error.message.startswith(
        "This model's chat template failed on this conversation: Roles must alternate. "
    )


def test_internal_error_from_the_worker_is_external_failure_with_its_message() -> None:
    error = _model_error({"ev": "error", "id": 1, "kind": "internal", "message": "KeyError: 'x'"})
    assert isinstance(error, ExternalFailure)
    assert "unexpected error (KeyError: 'x')" in error.message
    assert error.details == "the worker's log"
