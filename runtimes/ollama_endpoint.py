"""Where an Ollama server is (`OLLAMA_HOST`) and what to warn about it: exposure, old versions."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

import httpx

from runtimes.base import RuntimeStatus
from runtimes.errors import UserFacingError

DEFAULT_URL = "http://127.0.0.1:11434"
DEFAULT_PORT = 11434
_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1"}


@dataclass(frozen=True, slots=True)
class OllamaEndpoint:
    """An Ollama server's address as given and as connected to.

    Attributes:
        url: the base URL requests go to (`scheme://host:port[/path]`).
        host: the host as written (a wildcard such as 0.0.0.0 stays visible here).
    """

    url: str
    host: str

    @property
    def is_loopback(self) -> bool:
        """Whether the server is only reachable from this machine (127.0.0.0/8, ::1, localhost)."""
        host = self.host.strip("[]").lower()
        if host == "localhost" or host.endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False  # a DNS name: another machine as far as we can tell without resolving

    def exposure_warnings(self) -> tuple[str, ...]:
        """What to tell the user about who else can reach this server (parsed, never probed)."""
        if self.is_loopback:
            return ()
        if self.host.strip("[]") in _WILDCARD_HOSTS:
            return (
                f"OLLAMA_HOST is {self.host}: the Ollama server listens beyond this machine "
                "(on every network interface), so anyone on the network can use it and its "
                "models; Ollama has no authentication. Set OLLAMA_HOST=127.0.0.1 unless you "
                "mean to share it.",
            )
        return (
            f"The Ollama server at {self.url} listens beyond this machine: anyone on the "
            "network can use it and its models (Ollama has no authentication). Keep it behind "
            "a firewall or an authenticating proxy.",
        )


def parse_ollama_host(value: str | None) -> OllamaEndpoint:
    """The endpoint for an `OLLAMA_HOST`-style value, as Ollama itself reads it.

    Accepts `host`, `host:port`, `:port`, `scheme://host[:port][/path]` and bracketed IPv6.
    The port defaults to 11434 for a bare host and to 80/443 after an explicit http/https
    (reference/fit.md §8.1). A wildcard host (0.0.0.0, ::) is what a server binds to; clients
    reach it on loopback.

    Raises:
        UserFacingError: the value is not an address (bad port, bad scheme, junk).
    """
    text = (value or "").strip()
    if not text:
        return OllamaEndpoint(DEFAULT_URL, "127.0.0.1")
    scheme, sep, rest = text.partition("://")
    port = DEFAULT_PORT
    if not sep:
        scheme, rest = "http", text
    elif scheme in ("http", "https"):
        port = 80 if scheme == "http" else 443
    else:
        raise UserFacingError(
            f"{text!r} is not an Ollama address: use http:// or https:// (or just host:port)."
        )
    try:
        split = urllib.parse.urlsplit(f"{scheme}://{rest}")
        host = split.hostname or "127.0.0.1"
        port = split.port or port
    except ValueError as exc:
        raise UserFacingError(
            f"{text!r} is not an Ollama address ({exc}). Use host:port, e.g. 127.0.0.1:11434."
        ) from None
    written = f"[{host}]" if ":" in host else host
    connect = _WILDCARD_HOSTS.get(host, host)
    connect = f"[{connect}]" if ":" in connect else connect
    path = split.path.strip("/")
    url = f"{scheme}://{connect}:{port}" + (f"/{path}" if path else "")
    return OllamaEndpoint(url, written)


@dataclass(frozen=True, slots=True)
class KnownVulnerability:
    """A published Ollama security flaw and the first release that fixes it."""

    cve: str
    fixed_in: tuple[int, int, int]
    what: str


# Published flaws with a fixed release, oldest first. Sources (checked when this was written):
# - CVE-2024-37032 "Probllama": /api/pull accepted digests that were not sha256 hex, so a
#   malicious registry could write files anywhere (remote code execution); fixed in 0.1.34
#   (NVD; golang/vulndb#2901; ollama/ollama PR #4175; Wiz research).
# - CVE-2024-39720 (out-of-bounds read via /api/create, crash) and CVE-2024-39722 (file
#   existence disclosure via /api/push path traversal): fixed in 0.1.46 (Oligo, Oct 2024).
#   CVE-2024-39719 (file existence via /api/create errors) has no fixed release, so it
#   raises no version warning; ollama/ollama#8020 still saw it in 0.5.1.
# - CVE-2024-45436 zip-slip in model extraction (arbitrary file write): fixed in 0.1.47
#   (NVD; GHSA-x8g7-52qv-4wr9).
# - CVE-2025-51471 registry auth token sent to another host (cross-domain token exposure):
#   same-host check added by ollama/ollama PR #13738, released in 0.14.3
#   (github/advisory-database#8826).
# - CVE-2026-7482 "Bleeding Llama": heap out-of-bounds read in the GGUF loader behind
#   /api/create leaks process memory (API keys, prompts); CVSS 9.1; fixed in 0.17.1
#   (NVD; Cyera research; CSA research note, May 2026).
# Reported flaws without a fixed release (e.g. CVE-2026-7020, "up to 0.20.2") cannot be cured
# by updating, so they do not move the threshold; the exposure warning covers their risk.
KNOWN_VULNERABILITIES: tuple[KnownVulnerability, ...] = (
    KnownVulnerability("CVE-2024-37032", (0, 1, 34), "remote code execution via /api/pull"),
    KnownVulnerability("CVE-2024-39720", (0, 1, 46), "crash via /api/create"),
    KnownVulnerability("CVE-2024-39722", (0, 1, 46), "file disclosure via /api/push"),
    KnownVulnerability("CVE-2024-45436", (0, 1, 47), "arbitrary file write when pulling"),
    KnownVulnerability("CVE-2025-51471", (0, 14, 3), "registry token sent to other hosts"),
    KnownVulnerability("CVE-2026-7482", (0, 17, 1), "memory leak via /api/create"),
)
SAFE_VERSION: tuple[int, int, int] = max(v.fixed_in for v in KNOWN_VULNERABILITIES)
_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


def parse_version(version: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of an Ollama version string, or None when it has none."""
    match = _VERSION.match(version.strip())
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def version_warnings(version: str) -> tuple[str, ...]:
    """A warning when `version` predates fixes of published security flaws, else ().

    "0.0.0" is what a build from source reports; its age is unknown, so it gets no warning.
    """
    parsed = parse_version(version)
    if parsed is None or parsed == (0, 0, 0) or parsed >= SAFE_VERSION:
        return ()
    open_flaws = [v for v in KNOWN_VULNERABILITIES if parsed < v.fixed_in]
    listed = "; ".join(f"{v.cve} ({v.what})" for v in open_flaws)
    safe = ".".join(str(n) for n in SAFE_VERSION)
    return (
        f"Ollama {version} is older than {safe} and has published security flaws: {listed}. "
        "Update Ollama (ollama.com/download), especially if others can reach it.",
    )


def fetch_version(http: httpx.Client, timeout_s: float) -> str:
    """`/api/version`'s version; raises httpx's errors, or ValueError for a strange answer."""
    response = http.get("/api/version", timeout=httpx.Timeout(timeout_s))
    if response.status_code != 200:
        raise ValueError(f"HTTP {response.status_code} to /api/version")
    answer = response.json()
    version = answer.get("version") if isinstance(answer, dict) else None
    if not isinstance(version, str) or not version:
        raise ValueError(f"no version in {response.text[:80]!r}")
    return version


def probe_status(
    http: httpx.Client,
    endpoint: OllamaEndpoint,
    timeout_s: float,
    config_warnings: tuple[str, ...] = (),
) -> RuntimeStatus:
    """Whether an Ollama server answers at `endpoint`, with its version and warnings.

    Never raises; connecting and reading get half of `timeout_s` each, so the whole probe
    stays within it (name resolution aside).
    """
    url = endpoint.url

    def unusable(reason: str) -> RuntimeStatus:
        detail = f"The server at {url} is not usable as Ollama: {reason}. Check OLLAMA_HOST."
        return RuntimeStatus("error", url, "", detail, config_warnings)

    try:
        version = fetch_version(http, timeout_s / 2)
    except (httpx.ConnectError, httpx.ConnectTimeout):
        detail = (
            f"No Ollama server answers at {url}. Start it with `ollama serve` or install it "
            "from ollama.com."
        )
        return RuntimeStatus("not_found", url, "", detail, config_warnings)
    except httpx.TimeoutException:
        return unusable(f"it accepted the connection but did not answer within {timeout_s:g} s")
    except httpx.HTTPError as exc:
        return unusable(f"asking it for its version failed ({exc})")
    except ValueError as exc:
        return unusable(f"it does not look like an Ollama server ({exc})")
    warnings = (*config_warnings, *endpoint.exposure_warnings(), *version_warnings(version))
    return RuntimeStatus("available", url, version, f"Ollama {version} at {url}.", warnings)
