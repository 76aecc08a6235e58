"""A loopback Hugging Face-compatible Hub server for the real `huggingface_hub`, with faults.

`HFServer` serves `HubRepo`s on 127.0.0.1 with the endpoints `huggingface_hub` calls (shapes
taken from its own parsing code in `hf_api.py` and `file_download.py`):

- `GET /api/models` (search, filter, author, sort, direction, limit) -> list of model dicts;
- `GET /api/models/{repo}[/revision/{rev}]` (`blobs=true` adds sizes and LFS sha256);
- `GET /api/models/{repo}/tree/{rev}[/{path}]` (`recursive=true`) -> RepoFile/RepoFolder dicts;
- `HEAD`/`GET /{repo}/resolve/{rev}/{file}` -> 302 to `/cdn/{repo}/{commit}/{file}` on this
  same server, which serves the bytes with `Range`. Both answers carry `X-Repo-Commit`,
  `X-Linked-Etag` (the sha256), `X-Linked-Size` and `ETag`, because `huggingface_hub` follows
  a same-host redirect and reads the metadata from the last answer.

Errors carry `X-Error-Code` / `X-Error-Message` as the Hub's do: `RepoNotFound`,
`RevisionNotFound`, `EntryNotFound`, `GatedRepo` (401 without a token, 403 with a token not
`grant()`ed). Metadata endpoints are public even for gated repositories, as on the Hub.

Point the code under test at it with `HfApi(endpoint=server.endpoint)`,
`hf_hub_url(..., endpoint=server.endpoint)`, `hf_hub_download(..., endpoint=...)`, or
`HF_ENDPOINT=server.endpoint` in a subprocess's environment (the library reads the variable
once, at import, into `huggingface_hub.constants.ENDPOINT`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.servers.loopback import RequestLog, serve_in_thread, stop_serving
from tests.servers.range_server import _parse_range

__all__ = ["Fault", "HFServer", "HubRepo", "Request", "file_sha256", "serve_hub"]

_LAST_MODIFIED = "2025-01-15T10:00:00.000Z"
_SHA_CACHE: dict[tuple[str, int, int], str] = {}
_SHA_LOCK = threading.Lock()


def file_sha256(content: Path | bytes) -> str:
    """The sha256 of a file or bytes; a file's is computed once per process (path+size+mtime)."""
    if isinstance(content, bytes):
        return hashlib.sha256(content).hexdigest()
    stat = content.stat()
    key = (str(content.resolve()), stat.st_size, stat.st_mtime_ns)
    with _SHA_LOCK:
        if key not in _SHA_CACHE:
            with content.open("rb") as handle:
                _SHA_CACHE[key] = hashlib.file_digest(handle, "sha256").hexdigest()
        return _SHA_CACHE[key]


@dataclass(frozen=True, slots=True)
class Fault:
    """How the server misbehaves for one file; the default behaves.

    Attributes:
        drop_at: hang up once an answer reaches this file offset (answers starting at or past
            it send nothing and hang up).
        ignore_range: answer 200 with the whole file, no `Accept-Ranges`.
        wrong_bytes: serve bytes of the same length with different content.
        status: answer with this status (and a short text body).
        bytes_per_second: throttle the body to about this rate.
        times: apply to this many matching requests, then behave (None: always).
        on_metadata: also apply `status` to the resolve URL (HEAD and GET), not only to the
            byte-serving CDN answer.
    """

    drop_at: int | None = None
    ignore_range: bool = False
    wrong_bytes: bool = False
    status: int | None = None
    bytes_per_second: int | None = None
    times: int | None = None
    on_metadata: bool = False


@dataclass(frozen=True, slots=True)
class Request:
    """One request the server saw.

    Attributes:
        method: "GET" or "HEAD".
        path: the URL path, percent-decoded.
        query: the query parameters.
        range: the Range header ("" when absent).
        authorization: the Authorization header ("" when absent).
        status: the answer's status code.
        sent: body bytes written to the socket.
    """

    method: str
    path: str
    query: Mapping[str, Sequence[str]]
    range: str
    authorization: str
    status: int
    sent: int


@dataclass(frozen=True)
class HubRepo:
    """One model repository: its files and the metadata the Hub shows about it.

    Attributes:
        repo_id: "org/name".
        files: path in the repository -> file on disk or bytes.
        gated: downloads need a granted token.
        license: the card's license id.
        downloads: the download count shown in searches.
        likes: the like count.
        tags: the repository's tags ("gguf" makes `filter=gguf` find it).
        card: the README.md text (served as a file when not empty).
        commit: the 40-hex commit `main` points to (derived from the repo id by default).
        gguf: the `gguf` dict of `expand=gguf` (None: not a GGUF summary).
    """

    repo_id: str
    files: Mapping[str, Path | bytes]
    gated: bool = False
    license: str = "apache-2.0"
    downloads: int = 0
    likes: int = 0
    tags: tuple[str, ...] = ("gguf",)
    card: str = ""
    commit: str = ""
    gguf: Mapping[str, object] | None = None
    _shas: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.commit:
            digest = hashlib.sha1(self.repo_id.encode()).hexdigest()
            object.__setattr__(self, "commit", digest)
        if self.card and "README.md" not in self.files:
            object.__setattr__(self, "files", {**self.files, "README.md": self.card.encode()})

    def sha256(self, filename: str) -> str:
        """The sha256 of one file (computed once)."""
        if filename not in self._shas:
            self._shas[filename] = file_sha256(self.files[filename])
        return self._shas[filename]

    def size(self, filename: str) -> int:
        """The byte size of one file."""
        content = self.files[filename]
        return len(content) if isinstance(content, bytes) else content.stat().st_size

    def sibling(self, filename: str, *, blobs: bool) -> dict[str, object]:
        """The `siblings[]` entry of a file for `model_info`."""
        entry: dict[str, object] = {"rfilename": filename}
        if blobs:
            sha, size = self.sha256(filename), self.size(filename)
            entry.update(
                size=size,
                blobId=hashlib.sha1(sha.encode()).hexdigest(),
                lfs={"sha256": sha, "size": size, "pointerSize": 134},
            )
        return entry

    def tree_entry(self, filename: str) -> dict[str, object]:
        """The `tree` entry of a file (`lfs.oid` is the sha256)."""
        sha, size = self.sha256(filename), self.size(filename)
        return {
            "type": "file",
            "path": filename,
            "size": size,
            "oid": hashlib.sha1(sha.encode()).hexdigest(),
            "lfs": {"oid": sha, "size": size, "pointerSize": 134},
        }

    def summary(self) -> dict[str, object]:
        """The dict `list_models` and `model_info` share."""
        return {
            "_id": self.commit[:24],
            "id": self.repo_id,
            "modelId": self.repo_id,
            "author": self.repo_id.split("/")[0],
            "sha": self.commit,
            "lastModified": _LAST_MODIFIED,
            "createdAt": _LAST_MODIFIED,
            "private": False,
            "gated": "manual" if self.gated else False,
            "disabled": False,
            "downloads": self.downloads,
            "likes": self.likes,
            "tags": list(self.tags),
            "library_name": "gguf" if "gguf" in self.tags else None,
        }


class HFServer:
    """The server; `start()` it (or use it as a context manager), read `requests`, `stop()` it."""

    def __init__(self, repos: Sequence[HubRepo] = ()) -> None:
        self.repos: dict[str, HubRepo] = {repo.repo_id: repo for repo in repos}
        self._log: RequestLog[Request] = RequestLog()
        self.granted: set[str] = set()
        self._faults: dict[tuple[str, str], Fault] = {}
        self._fault_uses: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """`http://127.0.0.1:<port>`: pass it as `endpoint=` or `HF_ENDPOINT`."""
        assert self._httpd is not None, "start() the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def add(self, repo: HubRepo) -> HubRepo:
        """Serve one more repository."""
        self.repos[repo.repo_id] = repo
        return repo

    def fault(self, repo_id: str, filename: str, fault: Fault | None) -> None:
        """Make one file misbehave (None: behave again)."""
        with self._lock:
            if fault is None:
                self._faults.pop((repo_id, filename), None)
            else:
                self._faults[(repo_id, filename)] = fault
                self._fault_uses[(repo_id, filename)] = 0

    def take_fault(self, repo_id: str, filename: str, *, metadata: bool) -> Fault | None:
        """The fault for one request to a file, counting it against `times` (handler use)."""
        key = (repo_id, filename)
        with self._lock:
            fault = self._faults.get(key)
            if fault is None or (metadata and not fault.on_metadata):
                return None
            if fault.times is not None:
                if self._fault_uses[key] >= fault.times:
                    return None
                self._fault_uses[key] += 1
            return fault

    def grant(self, token: str) -> None:
        """Let `token` download from gated repositories."""
        self.granted.add(token)

    def started(self) -> None:
        """A handler began answering a request (handler use)."""
        self._log.started()

    def record(self, request: Request) -> None:
        """Note one answered request (handler use)."""
        self._log.record(request)

    @property
    def requests(self) -> list[Request]:
        """Every request answered so far (see `RequestLog`)."""
        return self._log.entries()

    def data_requests(self, filename: str | None = None) -> list[Request]:
        """The byte-serving GETs (to the CDN path), optionally of one file name."""
        return [
            r
            for r in self.requests
            if r.method == "GET"
            and r.path.startswith("/cdn/")
            and (filename is None or r.path.endswith("/" + filename))
        ]

    def resolve_url(self, repo_id: str, filename: str, revision: str = "main") -> str:
        """The resolve URL of a file on this server."""
        return f"{self.endpoint}/{repo_id}/resolve/{revision}/{quote(filename)}"

    def start(self) -> HFServer:
        """Listen on 127.0.0.1 on a free port and serve from a background thread."""
        handler = type("Handler", (HubHandler,), {"owner": self})
        self._httpd, self._thread = serve_in_thread(handler)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        stop_serving(self._httpd, self._thread)

    def __enter__(self) -> HFServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_PIECE = 1024 * 1024
_SORT_KEYS = {"downloads", "likes", "lastModified", "createdAt", "trendingScore"}


class HubHandler(BaseHTTPRequestHandler):
    """Routes Hub requests to the owner's repositories (one instance per request)."""

    owner: HFServer
    protocol_version = "HTTP/1.1"
    _status = 0
    _sent = 0

    def do_HEAD(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests read `requests` instead."""

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def _answer(self) -> None:
        parts = urlsplit(self.path)
        path, query = unquote(parts.path), parse_qs(parts.query)
        self._status, self._sent = 0, 0
        self.owner.started()
        try:
            self._route(path, query)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client stopped reading: fine
        finally:
            self.owner.record(
                Request(
                    self.command,
                    path,
                    query,
                    self.headers.get("Range", ""),
                    self.headers.get("Authorization", ""),
                    self._status,
                    self._sent,
                )
            )

    def _route(self, path: str, query: dict[str, list[str]]) -> None:
        segments = path.strip("/").split("/")
        if path.rstrip("/") == "/api/models":
            self._json(200, self._search(query))
        elif segments[:2] == ["api", "models"] and len(segments) >= 4:
            self._api_repo(segments[2:], query)
        elif segments[0] == "cdn" and len(segments) >= 5:
            self._cdn("/".join(segments[1:3]), segments[3], "/".join(segments[4:]))
        elif len(segments) >= 5 and segments[2] == "resolve":
            self._resolve("/".join(segments[:2]), segments[3], "/".join(segments[4:]))
        else:
            self._error(404, "", "Not found")

    # --- API ------------------------------------------------------------------------------

    def _search(self, query: dict[str, list[str]]) -> list[dict[str, object]]:
        text = query.get("search", [""])[0].lower()
        wanted = {tag for value in query.get("filter", []) for tag in value.split(",")}
        author = query.get("author", [""])[0]
        found = [
            repo
            for repo in self.owner.repos.values()
            if text in repo.repo_id.lower()
            and wanted <= set(repo.tags)
            and (not author or repo.repo_id.startswith(author + "/"))
        ]
        items = [self._info(repo, query, blobs=False) for repo in found]
        sort = query.get("sort", [""])[0]
        if sort in _SORT_KEYS:
            reverse = query.get("direction", ["-1"])[0] != "1"
            items.sort(key=lambda item: item.get(sort) or 0, reverse=reverse)  # type: ignore[return-value,arg-type]
        limit = int(query.get("limit", ["1000"])[0])
        return items[:limit]

    def _info(
        self, repo: HubRepo, query: dict[str, list[str]], *, blobs: bool
    ) -> dict[str, object]:
        info = repo.summary()
        info["cardData"] = {"license": repo.license}
        info["siblings"] = [repo.sibling(name, blobs=blobs) for name in sorted(repo.files)]
        expand = {value for values in query.get("expand", []) for value in values.split(",")}
        if repo.gguf is not None and ("gguf" in expand or "full" in query):
            info["gguf"] = dict(repo.gguf)
        if blobs:
            info["usedStorage"] = sum(repo.size(name) for name in repo.files)
        return info

    def _api_repo(self, rest: list[str], query: dict[str, list[str]]) -> None:
        repo = self._repo("/".join(rest[:2]))
        if repo is None:
            return
        if len(rest) == 2:
            self._json(200, self._info(repo, query, blobs=_true(query, "blobs")))
        elif len(rest) == 4 and rest[2] == "revision":
            if self._revision_ok(repo, rest[3]):
                self._json(200, self._info(repo, query, blobs=_true(query, "blobs")))
        elif len(rest) >= 4 and rest[2] == "tree":
            if self._revision_ok(repo, rest[3]):
                folder = "/".join(rest[4:])
                self._json(200, _tree(repo, folder, recursive=_true(query, "recursive")))
        else:
            self._error(404, "", "Not found")

    # --- files ----------------------------------------------------------------------------

    def _resolve(self, repo_id: str, revision: str, filename: str) -> None:
        repo = self._repo(repo_id)
        if (
            repo is None
            or not self._revision_ok(repo, revision)
            or not self._file_ok(repo, filename)
        ):
            return
        if not self._access_ok(repo):
            return
        fault = self.owner.take_fault(repo_id, filename, metadata=True)
        if fault is not None and fault.status is not None:
            self._error(fault.status, "", f"status {fault.status}")
            return
        location = f"/cdn/{repo_id}/{repo.commit}/{quote(filename)}"
        self.send_response(302)
        self.send_header("Location", location)
        self._file_headers(repo, filename)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _cdn(self, repo_id: str, commit: str, filename: str) -> None:
        repo = self.owner.repos.get(repo_id)
        if repo is None or commit != repo.commit or filename not in repo.files:
            self._error(404, "", "Not found")
            return
        fault = (
            None
            if self.command == "HEAD"
            else self.owner.take_fault(repo_id, filename, metadata=False)
        )
        fault = fault or Fault()
        if fault.status is not None:
            self._error(fault.status, "", f"status {fault.status}")
            return
        size = repo.size(filename)
        span = None if fault.ignore_range else _parse_range(self.headers.get("Range"), size)
        if span == (-1, -1):
            self._error(416, "", "Range not satisfiable", {"Content-Range": f"bytes */{size}"})
            return
        start, end = span or (0, size)
        self.send_response(206 if span else 200)
        self._file_headers(repo, filename)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        if not fault.ignore_range:
            self.send_header("Accept-Ranges", "bytes")
        if span:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.end_headers()
        if self.command == "GET":
            self._body(repo, filename, start, end, fault)

    def _body(self, repo: HubRepo, filename: str, start: int, end: int, fault: Fault) -> None:
        stop = end if fault.drop_at is None else max(start, min(end, fault.drop_at))
        content = repo.files[filename]
        plain = not (fault.wrong_bytes or fault.bytes_per_second)
        with contextlib.ExitStack() as stack:
            handle = stack.enter_context(content.open("rb")) if isinstance(content, Path) else None
            if plain and handle is not None and stop > start:
                self._sent = self.connection.sendfile(handle, start, stop - start)
            else:
                self._send_pieces(content, handle, start, stop, fault, repo.size(filename) // 2)
        if stop < end:  # the fault: hang up mid-answer
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True

    def _send_pieces(
        self,
        content: Path | bytes,
        handle: BinaryIO | None,
        start: int,
        stop: int,
        fault: Fault,
        mid: int,
    ) -> None:
        offset = start
        while offset < stop:
            count = min(_PIECE, stop - offset)
            if isinstance(content, bytes):
                piece = bytearray(content[offset : offset + count])
            else:
                piece = bytearray(_read_at(handle, offset, count))
            if fault.wrong_bytes and offset <= mid < offset + len(piece):
                piece[mid - offset] ^= 0xFF  # same length, one byte different
            if fault.bytes_per_second:
                self._sent += send_throttled(self.connection, bytes(piece), fault.bytes_per_second)
            else:
                self.connection.sendall(piece)
                self._sent += len(piece)
            offset += len(piece)

    # --- checks and answers -----------------------------------------------------------------

    def _repo(self, repo_id: str) -> HubRepo | None:
        repo = self.owner.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository not found: {repo_id}")
        return repo

    def _revision_ok(self, repo: HubRepo, revision: str) -> bool:
        if revision in ("main", repo.commit):
            return True
        self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return False

    def _file_ok(self, repo: HubRepo, filename: str) -> bool:
        if filename in repo.files:
            return True
        self._error(404, "EntryNotFound", f'{filename} does not exist on "main"')
        return False

    def _access_ok(self, repo: HubRepo) -> bool:
        if not repo.gated:
            return True
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        if token in self.owner.granted:
            return True
        page = f"{self.owner.endpoint}/{repo.repo_id}"
        if not token:
            message = (
                f"Access to model {repo.repo_id} is restricted. You must have access to it "
                "and be authenticated to access it. Please log in."
            )
            self._error(401, "GatedRepo", message)
        else:
            message = (
                f"Access to model {repo.repo_id} is restricted and you are not in the "
                f"authorized list. Visit {page} to ask for access."
            )
            self._error(403, "GatedRepo", message)
        return False

    def _file_headers(self, repo: HubRepo, filename: str) -> None:
        sha = repo.sha256(filename)
        self.send_header("X-Repo-Commit", repo.commit)
        self.send_header("X-Linked-Etag", f'"{sha}"')
        self.send_header("X-Linked-Size", str(repo.size(filename)))
        self.send_header("ETag", f'"{sha}"')

    def _json(self, status: int, value: object) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
            self._sent = len(body)

    def _error(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _tree(repo: HubRepo, folder: str, *, recursive: bool) -> list[dict[str, object]]:
    prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
    entries: list[dict[str, object]] = []
    folders: set[str] = set()
    for name in sorted(repo.files):
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix) :]
        if "/" in rest:
            parts = rest.split("/")
            depth = len(parts) - 1 if recursive else 1
            for level in range(1, depth + 1):
                folders.add(prefix + "/".join(parts[:level]))
            if not recursive:
                continue
        entries.append(repo.tree_entry(name))
    oid = hashlib.sha1(repo.commit.encode()).hexdigest()
    entries += [{"type": "directory", "path": path, "size": 0, "oid": oid} for path in folders]
    return sorted(entries, key=lambda entry: str(entry["path"]))


def _true(query: dict[str, list[str]], name: str) -> bool:
    return query.get(name, [""])[0].lower() in ("1", "true")


def _read_at(handle: BinaryIO | None, offset: int, count: int) -> bytes:
    assert handle is not None
    handle.seek(offset)
    return bytes(handle.read(count))


def send_throttled(sock: socket.socket, data: bytes, bytes_per_second: int) -> int:
    """Write `data` at about `bytes_per_second`; returns the bytes sent."""
    piece = max(1024, bytes_per_second // 20)
    sent = 0
    while sent < len(data):
        chunk = data[sent : sent + piece]
        sock.sendall(chunk)
        sent += len(chunk)
        time.sleep(len(chunk) / bytes_per_second)
    return sent


@contextlib.contextmanager
def serve_hub(repos: Sequence[HubRepo] = ()) -> Iterator[HFServer]:
    """A started `HFServer` serving `repos`, stopped after."""
    with HFServer(repos) as server:
        yield server
