"""Read a remote GGUF model's header over HTTP Range requests, split models included.

Also turns model references (URLs, `hf://org/repo/file.gguf`) into URLs, and re-exports the
local split-model helpers of `app.gguf_split`.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from app.gguf_split import (
    merge_split_headers,
    read_model_header,
    split_part_names,
    write_sparse_copy,
)
from runtimes.errors import ExternalFailure, InvalidModelFile, UserFacingError
from runtimes.gguf_header import GGUFHeader, parse_header

__all__ = [
    "DEFAULT_ENDPOINT",
    "FIRST_CHUNK",
    "MAX_CHUNK",
    "MAX_HEADER_BYTES",
    "RemoteHeader",
    "RemoteHeaderError",
    "RemoteModel",
    "fetch_remote_header",
    "fetch_remote_model",
    "hf_resolve_url",
    "merge_split_headers",
    "parse_model_ref",
    "read_model_header",
    "split_part_names",
    "write_sparse_copy",
]

DEFAULT_ENDPOINT = "https://huggingface.co"
FIRST_CHUNK = 2 << 20
MAX_CHUNK = 16 << 20
MAX_HEADER_BYTES = 64 << 20
_STATUS_REASONS = {
    401: "the server wants a token (HTTP 401): set HF_TOKEN or enter a Hugging Face token; "
    "for a gated model, accept its license on the model page first (Hugging Face also "
    "answers 401 for a repository that does not exist)",
    403: "access denied (HTTP 403): the token lacks permission, or the model's license has "
    "not been accepted yet; accept it on the model page and try again",
    404: "no such file (HTTP 404): check the repository, revision and file name",
    416: "the server refused the byte range (HTTP 416)",
    429: "too many requests (HTTP 429): wait a minute and try again",
}


class RemoteHeaderError(ExternalFailure):
    """A remote header could not be fetched: host unreachable, timeout, or an HTTP error.

    Attributes:
        url: the URL that failed.
        reason: what went wrong, e.g. "no such file (HTTP 404): ...".
        status: the HTTP status code, or None for network failures.
    """

    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"Could not read {url}: {reason}.")
        self.url = url
        self.reason = reason
        self.status = status


@dataclass(frozen=True, slots=True)
class RemoteHeader:
    """A remote GGUF file's parsed header and the bytes it was parsed from.

    Attributes:
        url: the final URL, after redirects.
        file_size: the whole remote file's size in bytes.
        header: the parsed header; its `source` is the URL that was asked for.
        prefix: the file's first bytes, from offset 0 through at least the end of the
            tensor-info table (what `write_sparse_copy` needs).
        bytes_fetched: bytes received over the network (the prefix, plus any skipped).
    """

    url: str
    file_size: int
    header: GGUFHeader
    prefix: bytes
    bytes_fetched: int


@dataclass(frozen=True, slots=True)
class RemoteModel:
    """A remote model: one file, or every part of a split model.

    Attributes:
        parts: each part's header, in part order (one entry for a single file).
        header: the merged header (see `merge_split_headers`); the part's own for one file.
    """

    parts: tuple[RemoteHeader, ...]
    header: GGUFHeader


# --- names and URLs ---------------------------------------------------------------------


def hf_resolve_url(
    repo_id: str, filename: str, revision: str = "main", endpoint: str | None = None
) -> str:
    """The Hugging Face download URL of a file: `{endpoint}/{repo}/resolve/{rev}/{file}`.

    Args:
        repo_id: "org/name".
        filename: path inside the repository, e.g. "Q4_K_M/model-Q4_K_M.gguf".
        revision: branch, tag or commit.
        endpoint: base URL; default `HF_ENDPOINT`, else https://huggingface.co.
    """
    base = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    return f"{base}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(filename)}"


def parse_model_ref(text: str) -> str:
    """The URL of a remote model reference.

    Accepts an http(s) URL (a Hugging Face ".../blob/..." page URL becomes its
    ".../resolve/..." download URL), `hf://org/repo[@revision]/file.gguf`, or
    `org/repo/file.gguf`. Callers check local paths first: the last form looks like one.

    Raises:
        UserFacingError: the text is none of these.
    """
    ref = text.strip()
    if ref.startswith(("http://", "https://")):
        return _blob_to_resolve(ref)
    path = ref.removeprefix("hf://")
    parts = path.split("/")
    if len(parts) >= 3 and all(parts) and not path.startswith("/"):
        repo_name, _, revision = parts[1].partition("@")
        if repo_name:
            filename = "/".join(parts[2:])
            return hf_resolve_url(f"{parts[0]}/{repo_name}", filename, revision or "main")
    raise UserFacingError(
        f"{text!r} is not a model reference. Use a URL, hf://org/repo/file.gguf "
        "or org/repo/file.gguf."
    )


def _blob_to_resolve(url: str) -> str:
    parts = urlsplit(url)
    hub_hosts = {urlsplit(os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).netloc}
    hub_hosts.add("huggingface.co")
    segments = parts.path.split("/")
    if parts.netloc in hub_hosts and len(segments) > 4 and segments[3] == "blob":
        segments[3] = "resolve"
        return urlunsplit(parts._replace(path="/".join(segments)))
    return url


def _split_part_urls(url: str) -> list[str] | None:
    parts = urlsplit(url)
    names = split_part_names(parts.path)
    if names is None:
        return None
    return [urlunsplit(parts._replace(path=name)) for name in names]


def _default_token(url: str) -> str | None:
    """`HF_TOKEN` for Hugging Face (or `HF_ENDPOINT`) URLs; never sent to other hosts."""
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    host = urlsplit(url).netloc
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).netloc
    if token and (host in (endpoint, "huggingface.co") or host.endswith(".huggingface.co")):
        return token
    return None


# --- fetching ---------------------------------------------------------------------------


def fetch_remote_header(
    url: str,
    *,
    token: str | None = None,
    timeout: float = 10.0,
    max_header_bytes: int = MAX_HEADER_BYTES,
    client: httpx.Client | None = None,
) -> RemoteHeader:
    """Fetch and parse a remote GGUF file's header without downloading its tensor data.

    A HEAD request (redirects followed) gives the size; ranged GETs of 2, 4, 8, then
    16 MiB feed the parser until the tensor-info table is read. A server that ignores
    Range is read from its one plain answer, only as far as needed.

    Args:
        url: the file's URL (e.g. from `parse_model_ref`).
        token: sent as `Authorization: Bearer`; default `HF_TOKEN` for Hugging Face URLs.
        timeout: seconds for connecting and for each read.
        max_header_bytes: give up on headers larger than this; no more is fetched.
        client: an httpx client to reuse; one is made (and closed) otherwise.

    Raises:
        RemoteHeaderError: unreachable host, timeout, or an HTTP error status.
        InvalidModelFile: not a GGUF file, a cut or corrupt header, or one over the bound.
    """
    headers = {"Accept-Encoding": "identity"}
    token = token if token is not None else _default_token(url)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    http = client if client is not None else httpx.Client(timeout=timeout)
    stream = _RangeStream(http, url, headers, timeout, max_header_bytes)
    try:
        with _translate_errors(url, timeout):
            final_url, size = _head(http, url, headers, timeout)
            stream.file_size = size if size is not None else stream.discover_size()
            header = _parse(stream, url, stream.file_size)
    finally:
        stream.close()
        if client is None:
            http.close()
    return RemoteHeader(
        url=final_url,
        file_size=stream.file_size,
        header=header,
        prefix=bytes(stream.data),
        bytes_fetched=stream.bytes_fetched,
    )


def _parse(stream: _RangeStream, url: str, size: int) -> GGUFHeader:
    try:
        return parse_header(stream, file_size=size, source=url)
    except InvalidModelFile as exc:
        if "html" in stream.content_type and "GGUF" in exc.reason:
            raise InvalidModelFile(url, f"{exc.reason}; the server sent a web page") from None
        raise


@contextlib.contextmanager
def _translate_errors(url: str, timeout: float) -> Iterator[None]:
    """httpx exceptions -> `RemoteHeaderError` with a one-line reason."""
    try:
        yield
    except httpx.TimeoutException:
        raise RemoteHeaderError(url, f"the server did not answer within {timeout:g} s") from None
    except httpx.ConnectError as exc:
        host = urlsplit(url).netloc
        raise RemoteHeaderError(url, f"cannot connect to {host} ({exc})") from None
    except httpx.TooManyRedirects:
        raise RemoteHeaderError(url, "too many redirects") from None
    except httpx.HTTPError as exc:
        raise RemoteHeaderError(url, f"network error ({type(exc).__name__}: {exc})") from None
    except httpx.InvalidURL as exc:
        raise RemoteHeaderError(url, f"not a valid URL ({exc})") from None


def _check_status(url: str, response: httpx.Response) -> None:
    code = response.status_code
    if code < 400:
        return
    reason = _STATUS_REASONS.get(code)
    if reason is None:
        kind = "the server failed" if code >= 500 else "the server refused the request"
        reason = f"{kind} (HTTP {code} {response.reason_phrase})".replace(" )", ")")
    raise RemoteHeaderError(url, reason, status=code)


def _head(
    client: httpx.Client, url: str, headers: dict[str, str], timeout: float
) -> tuple[str, int | None]:
    """The final URL and the size (None when HEAD is refused or says no length)."""
    response = client.head(url, headers=headers, follow_redirects=True, timeout=timeout)
    if response.status_code in (405, 501):
        return url, None
    _check_status(url, response)
    length = response.headers.get("Content-Length")
    return str(response.url), int(length) if length and length.isdigit() else None


class _RangeStream:
    """A `ByteStream` over a remote file: ranged GETs in growing chunks, fetched on demand.

    Everything fetched is kept in `data` (from offset 0), so it doubles as the prefix.
    """

    def __init__(
        self,
        client: httpx.Client,
        url: str,
        headers: dict[str, str],
        timeout: float,
        limit: int,
    ) -> None:
        self._client = client
        self._url = url
        self._headers = headers
        self._timeout = timeout
        self._limit = limit
        self._chunk = FIRST_CHUNK
        self._read_at = 0
        self._body: Iterator[bytes] | None = None  # a server that ignores Range
        self._response: httpx.Response | None = None
        self.data = bytearray()
        self.bytes_fetched = 0
        self.file_size = -1  # unknown until HEAD or the first answer
        self.content_type = ""

    def read(self, size: int, /) -> bytes:
        """Up to `size` bytes; fetches the next chunk when the fetched ones are used up."""
        if self._read_at >= len(self.data):
            self._fill()
        out = bytes(self.data[self._read_at : self._read_at + size])
        self._read_at += len(out)
        return out

    def discover_size(self) -> int:
        """Fetch the first chunk and take the size from its Content-Range or Content-Length."""
        return self._fill()

    def close(self) -> None:
        """Close a plain (non-ranged) answer left open."""
        if self._response is not None:
            self._response.close()
            self._response = None

    def _fill(self) -> int:
        start = len(self.data)
        if start >= self._limit:
            raise InvalidModelFile(
                self._url,
                f"its header is larger than {self._limit:,} bytes, the most read from a "
                "remote file",
            )
        if self._body is not None:
            self._append(self._next_piece())
            return self.file_size
        end = min(start + self._chunk, self._limit)
        if self.file_size >= 0:
            end = min(end, self.file_size)
        self._chunk = min(self._chunk * 2, MAX_CHUNK)
        return self._get(start, end)

    def _get(self, start: int, end: int) -> int:
        headers = {**self._headers, "Range": f"bytes={start}-{end - 1}"}
        request = self._client.build_request(
            "GET", self._url, headers=headers, timeout=self._timeout
        )
        response = self._client.send(request, stream=True, follow_redirects=True)
        keep_open = False
        try:
            _check_status(self._url, response)
            self.content_type = response.headers.get("Content-Type", "").lower()
            if response.status_code == 200:  # Range ignored: read the body as we go
                keep_open = True
                self._response = response
                return self._open_body(response, start)
            size = _range_total(self._url, response, start)
            if self.file_size < 0:
                self.file_size = size
            self._read_body(response.iter_raw(), end - start)
            return size
        finally:
            if not keep_open:
                response.close()

    def _open_body(self, response: httpx.Response, start: int) -> int:
        length = response.headers.get("Content-Length", "")
        if self.file_size < 0:
            if not length.isdigit():
                raise RemoteHeaderError(self._url, "the server did not say the file's size")
            self.file_size = int(length)
        self._body = response.iter_raw()
        skip = start  # the answer starts at offset 0: skip what we already have
        while True:
            piece = self._next_piece()
            if len(piece) > skip or not piece:
                self.bytes_fetched += skip
                self._append(piece[skip:])
                return self.file_size
            skip -= len(piece)
            self.bytes_fetched += len(piece)

    def _next_piece(self) -> bytes:
        assert self._body is not None
        try:
            return next(self._body, b"")
        except (httpx.RemoteProtocolError, httpx.ReadError):
            return b""  # a cut answer ends like an empty one

    def _read_body(self, body: Iterator[bytes], wanted: int) -> None:
        got = 0
        # a cut answer keeps what came; an empty one is reported below
        with contextlib.suppress(httpx.RemoteProtocolError, httpx.ReadError):
            for received in body:
                piece = received[: wanted - got]
                self._append(piece)
                got += len(piece)
                if got >= wanted:
                    break
        if got == 0:
            self._cut_short(len(self.data))

    def _append(self, piece: bytes) -> None:
        if not piece:
            self._cut_short(len(self.data))
        piece = piece[: self._limit - len(self.data)]
        self.data += piece
        self.bytes_fetched += len(piece)

    def _cut_short(self, at: int) -> None:
        raise InvalidModelFile(
            self._url,
            f"truncated: the server sent {at:,} of {max(self.file_size, 0):,} bytes and "
            "then nothing more, before the header's end",
        )


def _range_total(url: str, response: httpx.Response, start: int) -> int:
    """The total size from a 206's `Content-Range: bytes a-b/total`, checking `a`."""
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", response.headers.get("Content-Range", ""))
    if match is None or int(match[1]) != start:
        got = response.headers.get("Content-Range", "none")
        raise RemoteHeaderError(url, f"the server answered a range request wrongly ({got})")
    return int(match[3])


# --- whole models: one file or every part of a split one -------------------------------


def fetch_remote_model(
    url: str,
    *,
    token: str | None = None,
    timeout: float = 10.0,
    max_header_bytes: int = MAX_HEADER_BYTES,
    client: httpx.Client | None = None,
) -> RemoteModel:
    """Fetch a remote model's header: one file, or every part of a split model, merged.

    Args:
        url: a single file, or any part of a split model (`...-00002-of-00003.gguf`).
        token, timeout, max_header_bytes, client: as `fetch_remote_header`, per part.

    Raises:
        RemoteHeaderError: as `fetch_remote_header` (a missing part: HTTP 404).
        InvalidModelFile: as `fetch_remote_header`, or parts that do not fit together.
    """
    urls = _split_part_urls(url) or [url]
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(httpx.Client(timeout=timeout))
        parts = tuple(
            fetch_remote_header(
                part,
                token=token,
                timeout=timeout,
                max_header_bytes=max_header_bytes,
                client=client,
            )
            for part in urls
        )
    merged = merge_split_headers([p.header for p in parts], source=urls[0])
    return RemoteModel(parts=parts, header=merged)
