"""Finding an Ollama server (OLLAMA_HOST) and the warnings about exposure and old versions."""

from __future__ import annotations

import httpx
import pytest

from runtimes.errors import UserFacingError
from runtimes.ollama import OllamaRuntime
from runtimes.ollama_endpoint import parse_ollama_host, probe_status, version_warnings


@pytest.mark.parametrize(
    ("value", "url"),
    [
        (None, "http://127.0.0.1:11434"),
        ("", "http://127.0.0.1:11434"),
        ("1.2.3.4", "http://1.2.3.4:11434"),
        (":56789", "http://127.0.0.1:56789"),
        ("example.com:56789/", "http://example.com:56789"),
        ("example.com:56789/path/", "http://example.com:56789/path"),
        ("http://example.com", "http://example.com:80"),
        ("https://example.com", "https://example.com:443"),
        ("https://example.com:8443/ollama", "https://example.com:8443/ollama"),
        ("[::1]:5000", "http://[::1]:5000"),
        ("localhost", "http://localhost:11434"),
        # A server's bind-everything address: clients reach it on loopback.
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("0.0.0.0:9999", "http://127.0.0.1:9999"),
    ],
)
def test_ollama_host_is_read_as_ollama_reads_it(value: str | None, url: str) -> None:
    assert parse_ollama_host(value).url == url


@pytest.mark.parametrize("value", ["ftp://example.com", "example.com:99999", "example.com:port"])
def test_a_host_that_is_no_address_is_a_user_error(value: str) -> None:
    with pytest.raises(UserFacingError, match="not an Ollama address"):
        parse_ollama_host(value)


@pytest.mark.parametrize("value", ["127.0.0.1", "127.0.0.5:80", "localhost", "[::1]", None])
def test_loopback_hosts_get_no_exposure_warning(value: str | None) -> None:
    endpoint = parse_ollama_host(value)
    assert endpoint.is_loopback
    assert endpoint.exposure_warnings() == ()


@pytest.mark.parametrize("value", ["192.168.1.20", "10.0.0.7:11434", "gpu-box.lan", "0.0.0.0"])
def test_hosts_beyond_loopback_are_warned_about(value: str) -> None:
    (warning,) = parse_ollama_host(value).exposure_warnings()
    assert "listens beyond this machine" in warning
    assert "anyone on the network can use it" in warning


def test_the_wildcard_host_is_named_in_its_warning() -> None:
    (warning,) = parse_ollama_host("0.0.0.0").exposure_warnings()
    assert "OLLAMA_HOST is 0.0.0.0" in warning
    assert "every network interface" in warning


def test_status_carries_the_exposure_warning_of_a_remote_server() -> None:
    # Parse-only: the remote address is answered by a mock transport, nothing is connected.
    endpoint = parse_ollama_host("192.168.7.7:11434")
    transport = httpx.MockTransport(
        lambda _request: httpx.Response(200, json={"version": "0.21.0"})
    )
    with httpx.Client(base_url=endpoint.url, transport=transport) as http:
        status = probe_status(http, endpoint, 1.0)
    assert status.state == "available"
    assert status.version == "0.21.0"
    assert len(status.warnings) == 1
    assert "http://192.168.7.7:11434 listens beyond this machine" in status.warnings[0]


def test_status_of_a_server_that_is_not_ollama_is_an_error() -> None:
    endpoint = parse_ollama_host("127.0.0.1:1")
    transport = httpx.MockTransport(lambda _request: httpx.Response(200, text="<html>hi</html>"))
    with httpx.Client(base_url=endpoint.url, transport=transport) as http:
        status = probe_status(http, endpoint, 1.0)
    assert status.state == "error"
    assert "does not look like an Ollama server" in status.detail


@pytest.mark.parametrize(
    ("version", "listed", "not_listed"),
    [
        ("0.1.33", ["CVE-2024-37032", "CVE-2024-45436", "CVE-2026-7482"], []),
        ("0.1.34", ["CVE-2024-39720", "CVE-2024-39722", "CVE-2026-7482"], ["CVE-2024-37032"]),
        ("0.1.46", ["CVE-2024-45436"], ["CVE-2024-39722"]),
        ("v0.5.7-rc1", ["CVE-2025-51471", "CVE-2026-7482"], ["CVE-2024-45436"]),
        ("0.16.3", ["CVE-2026-7482"], ["CVE-2025-51471"]),
    ],
)
def test_old_versions_are_warned_about_with_their_open_cves(
    version: str, listed: list[str], not_listed: list[str]
) -> None:
    (warning,) = version_warnings(version)
    assert f"Ollama {version} is older than 0.17.1" in warning
    for cve in listed:
        assert cve in warning
    for cve in not_listed:
        assert cve not in warning


@pytest.mark.parametrize("version", ["0.17.1", "0.21.0", "1.0.0", "0.0.0", "dev", ""])
def test_current_source_built_and_unreadable_versions_get_no_warning(version: str) -> None:
    assert version_warnings(version) == ()


def test_runtime_reads_ollama_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:5555")
    assert OllamaRuntime().endpoint == "http://127.0.0.1:5555"
    monkeypatch.delenv("OLLAMA_HOST")
    assert OllamaRuntime().endpoint == "http://127.0.0.1:11434"


def test_an_explicit_host_wins_over_ollama_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:5555")
    assert OllamaRuntime("127.0.0.1:6666").endpoint == "http://127.0.0.1:6666"


def test_a_bad_ollama_host_falls_back_to_the_default_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "http://example.com:notaport")
    runtime = OllamaRuntime()
    assert runtime.endpoint == "http://127.0.0.1:11434"
    # Whatever answers at the default address, the status says why the setting was ignored.
    assert any("OLLAMA_HOST is ignored" in w for w in runtime.status(timeout_s=0.5).warnings)


def test_a_bad_explicit_host_is_a_user_error() -> None:
    with pytest.raises(UserFacingError, match="not an Ollama address"):
        OllamaRuntime("ftp://example.com")
