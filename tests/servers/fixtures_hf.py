"""Fixtures: a loopback Hugging Face-compatible Hub (`tests/servers/hf_server.py`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.hf_server import HFServer


@pytest.fixture()
def hf_server() -> Iterator[HFServer]:
    """An empty started `HFServer` on 127.0.0.1 for one test; `add(HubRepo(...))` repos."""
    with HFServer() as server:
        yield server
