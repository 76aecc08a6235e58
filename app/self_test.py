"""`llm-workbench --self-test`: the checks that say an installed (or frozen) app works.

Each check returns one line of detail or raises; `run_checks` turns that into `CheckResult`s.
The GUI floor adds its own Qt check (`ui.self_test`) and prints them.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from app.catalog import load_catalog
from app.chat import ConversationService
from app.engine import ModelHost, plan_load
from app.library import demo_model_file
from app.paths import app_paths, resources_dir
from app.store import open_database
from runtimes.base import (
    CancelToken,
    ChatMessage,
    ChatRequest,
    Done,
    GenerationParams,
    TextDelta,
)
from runtimes.llamacpp import LlamaCppModel, LlamaCppRuntime, wheel_backend
from runtimes.llamacpp.launch import is_frozen

SELF_TEST_TOKENS = 8
SELF_TEST_PROMPT = "Say hello in three words."


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check: its name, whether it passed, and what it found or why it failed."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        """The printed line: `ok    name: detail` or `FAIL  name: detail`."""
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name}: {self.detail}"


Check = tuple[str, Callable[[], str]]


def check_resources() -> str:
    """The shipped resources are there: the catalog parses, the icon exists."""
    folder = resources_dir()
    icon = folder / "icon.svg"
    if not icon.is_file():
        raise FileNotFoundError(f"no {icon}")
    models = load_catalog()
    return f"{len(models)} catalog models, icon found in {folder}"


def check_demo_model(model: Path | None = None) -> str:
    """The demo model loads in a llama.cpp worker process and generates a few tokens."""
    path = model or demo_model_file()
    if path is None:
        raise FileNotFoundError("the demo model (SmolLM2) is not installed or bundled")
    plan = plan_load(0, n_ctx=512, file_size=path.stat().st_size, path=str(path))
    host = ModelHost(LlamaCppRuntime())
    try:
        loaded = host.load(path, plan)
        pid = loaded.pid if isinstance(loaded, LlamaCppModel) else 0
        if pid in (0, os.getpid()):
            raise RuntimeError("the model did not load in a separate worker process")
        request = ChatRequest(
            (ChatMessage("user", SELF_TEST_PROMPT),),
            GenerationParams(temperature=0.0, max_tokens=SELF_TEST_TOKENS, seed=1),
        )
        text, tokens = "", 0
        for event in loaded.chat(request, CancelToken()):
            if isinstance(event, TextDelta):
                text += event.text
            elif isinstance(event, Done):
                tokens = event.stats.completion_tokens
        if tokens <= 0:
            raise RuntimeError("the worker generated no tokens")
    finally:
        host.unload_all()
    return f"{path.name} in worker pid {pid} ({wheel_backend()}), {tokens} tokens: {text.strip()!r}"


def check_history(folder: Path | None = None) -> str:
    """The history database is created, written, closed and read back in a temporary folder
    (or in `folder`, kept, for a look afterwards)."""
    with tempfile.TemporaryDirectory(prefix="llm-workbench-self-test-") as tmp:
        where = folder or Path(tmp)
        database = open_database(where / "self-test.sqlite3")
        try:
            service = ConversationService(database)
            conversation = service.create("self-test.gguf", "self-test", "llamacpp")
            service.add_user_message(conversation.id, SELF_TEST_PROMPT)
            recorder = service.start_reply(
                conversation.id, "self-test", "llamacpp", GenerationParams()
            )
            recorder.append("Hello there, friend.")
            recorder.interrupt("self-test")
        finally:
            database.close()
        reopened = open_database(where / "self-test.sqlite3")
        try:
            messages = ConversationService(reopened).messages(conversation.id)
        finally:
            reopened.close()
    if [m.role for m in messages] != ["user", "assistant"] or not messages[1].content:
        raise RuntimeError(f"read back {len(messages)} messages, expected the two written")
    return f"wrote and read back {len(messages)} messages"


def check_logs() -> str:
    """The log folder is writable."""
    folder = app_paths().ensure().log_dir
    probe = folder / ".self-test"
    probe.write_text("ok", encoding="utf-8")
    probe.unlink()
    return f"writable: {folder}"


def default_checks(model: Path | None = None) -> list[Check]:
    """The app floor's checks, in order."""
    return [
        ("resources", check_resources),
        ("logs", check_logs),
        ("history database", check_history),
        ("llama.cpp worker", lambda: check_demo_model(model)),
    ]


def run_checks(checks: list[Check]) -> Iterator[CheckResult]:
    """Run each check, turning any exception into a failed result (the self-test reports
    every failure, it does not stop at the first)."""
    for name, check in checks:
        started = time.monotonic()
        try:
            detail = check()
        except Exception as exc:  # noqa: BLE001 - a self-test reports whatever broke
            yield CheckResult(name, False, f"{type(exc).__name__}: {exc}")
            continue
        yield CheckResult(name, True, f"{detail} ({time.monotonic() - started:.1f} s)")


def describe_build() -> str:
    """One line: frozen or source, and where."""
    return "frozen app" if is_frozen() else "source run"
