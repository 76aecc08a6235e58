"""The llama.cpp worker's pipe protocol and the small system helpers (no llama.cpp needed)."""

from __future__ import annotations

import pytest

from runtimes.base import ChatMessage, GenerationParams, GenerationStats
from runtimes.errors import ExternalFailure
from runtimes.llamacpp import protocol, system
from runtimes.llamacpp.protocol import ProtocolError


def test_encode_decode_round_trip_is_one_line() -> None:
    line = protocol.encode({"ev": "text", "id": 3, "text": "héllo\nworld"})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert protocol.decode(line, "ev") == {"ev": "text", "id": 3, "text": "héllo\nworld"}


@pytest.mark.parametrize("line", [b"not json\n", b"[1, 2]\n", b'{"op": "x"}\n', b"\xff\xfe\n"])
def test_bad_lines_raise_protocol_error(line: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        protocol.decode(line, "ev")
    assert isinstance(caught.value, ExternalFailure)
    assert "unreadable message" in caught.value.message


def test_params_round_trip() -> None:
    params = GenerationParams(temperature=0.0, top_k=5, max_tokens=7, seed=11, stop=("a", "b"))
    assert protocol.params_from_wire(params.as_dict()) == params


def test_params_with_random_seed_round_trip() -> None:
    params = GenerationParams(seed=None)
    assert protocol.params_from_wire(params.as_dict()) == params


def test_stats_round_trip_and_validation() -> None:
    stats = GenerationStats(3, 4, 0.0, 0.1, 50.0, 0.2, "length")
    assert protocol.stats_from_wire(stats.as_dict()) == stats
    with pytest.raises(ProtocolError):
        protocol.stats_from_wire({**stats.as_dict(), "stop_reason": "exploded"})
    with pytest.raises(ProtocolError):
        protocol.stats_from_wire({**stats.as_dict(), "prompt_tokens": "3"})


def test_messages_round_trip_and_reject_bad_roles() -> None:
    messages = (ChatMessage("system", "s"), ChatMessage("user", "u"))
    assert protocol.messages_from_wire(protocol.messages_to_wire(messages)) == messages
    with pytest.raises(ProtocolError):
        protocol.messages_from_wire([{"role": "tool", "content": "x"}])


def test_parse_offloaded_reads_llama_cpp_log_line() -> None:
    line = "load_tensors: offloaded 31/31 layers to GPU"
    assert system.parse_offloaded(line) == (31, 31)
    assert system.parse_offloaded("load_tensors: CPU_Mapped model buffer size") is None


def test_default_threads_is_physical_cores_on_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system.sys, "platform", "linux")
    monkeypatch.setattr(system.psutil, "cpu_count", lambda logical=True: 4 if not logical else 8)
    assert system.default_threads() == 4


def test_default_threads_falls_back_to_logical_then_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system.sys, "platform", "linux")
    monkeypatch.setattr(system.psutil, "cpu_count", lambda logical=True: 6 if logical else None)
    assert system.default_threads() == 6
    monkeypatch.setattr(system.psutil, "cpu_count", lambda logical=True: None)
    assert system.default_threads() == 1


def test_default_threads_uses_performance_cores_on_mac(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system.sys, "platform", "darwin")
    monkeypatch.setattr(system, "_sysctl_int", lambda name: 8 if "perflevel0" in name else None)
    monkeypatch.setattr(system.psutil, "cpu_count", lambda logical=True: 12)
    assert system.default_threads() == 8
