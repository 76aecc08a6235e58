"""Fixtures: OpenAI-compatible servers on loopback (llama-cpp-python's own, and a fault server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backends.fail
import keyring.errors
import pytest
from keyring.backend import KeyringBackend
from keyring.compat import properties

from tests.servers.openai_servers import (
    FaultServer,
    LlamaCppServer,
    start_llama_cpp_server,
    stop_process,
)


@pytest.fixture(scope="session")
def llama_cpp_server(
    smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaCppServer]:
    """`python -m llama_cpp.server` serving SmolLM2 on 127.0.0.1, once per session."""
    log_path = tmp_path_factory.mktemp("llama-cpp-server") / "server.log"
    try:
        server = start_llama_cpp_server(smollm2_path, log_path)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        stop_process(server.process)


@pytest.fixture(scope="session")
def _fault_server_session() -> Iterator[FaultServer]:
    server = FaultServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def fault_server(_fault_server_session: FaultServer) -> Iterator[FaultServer]:
    """The OpenAI fault server, well-behaved until a test sets `reset(FaultPlan(...))`."""
    _fault_server_session.reset()
    yield _fault_server_session
    _fault_server_session.reset()  # ends any stall the test left behind


class MemoryKeyring(KeyringBackend):
    """A real keyring backend that keeps passwords in a dict (the OS keychain cannot run here)."""

    @properties.classproperty
    def priority(cls) -> float:
        # Not viable on its own: keyring must never pick this backend by itself.
        raise RuntimeError("only for tests, set explicitly")

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.passwords.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError("no such password")


@pytest.fixture()
def memory_keyring() -> Iterator[MemoryKeyring]:
    """The process's keyring replaced by an in-memory one for the test."""
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


@pytest.fixture()
def no_keyring() -> Iterator[None]:
    """No usable keyring, as on a headless Linux box: keyring's own `fail.Keyring`."""
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    try:
        yield
    finally:
        keyring.set_keyring(previous)
