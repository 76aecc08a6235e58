"""Parent side of one worker process: spawn it, talk to it, keep its log, end it.

Every wait here has a timeout or ends when the worker's stdout closes, so a dead or wedged
worker can never hang the caller.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

import runtimes
from runtimes.errors import ExternalFailure, RuntimeCrashed
from runtimes.llamacpp import protocol
from runtimes.llamacpp.launch import WORKER_MODULE, child_command, is_frozen
from runtimes.llamacpp.loadlog import LoadFacts, LoadLogReader
from runtimes.llamacpp.protocol import LOAD_FINISHED_MARKER, Message, ProtocolError

TAIL_LINES = 60
_TAIL_LINE_CHARS = 400
_stderr_log = logging.getLogger("runtimes.llamacpp.worker")  # the worker's own log lines
_log = logging.getLogger(__name__)


class WorkerExited(Exception):
    """The worker's stdout closed: it exited or was killed (see `WorkerProcess.crash_error`)."""


class _Eof:
    """Queue marker: the worker's stdout reached its end."""


def package_root() -> Path:
    """The folder that holds the `runtimes` package (a checkout, or site-packages)."""
    return Path(runtimes.__file__).resolve().parent.parent


def worker_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    # A source checkout needs itself on the path; a frozen app carries its own modules.
    if root.name not in ("site-packages", "dist-packages") and not is_frozen():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    return env


class WorkerProcess:
    """One running `python -m runtimes.llamacpp.worker` and its pipes."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        self._events: queue.Queue[Message | ProtocolError | _Eof] = queue.Queue()
        self._eof = False
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._tail_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._load_log = LoadLogReader()
        self.load_marker_seen = threading.Event()
        assert proc.stdout is not None and proc.stderr is not None
        self._stdout_thread = self._start(self._read_stdout, proc.stdout, "stdout")
        self._stderr_thread = self._start(self._read_stderr, proc.stderr, "stderr")

    @classmethod
    def spawn(cls, command: Sequence[str] | None = None) -> WorkerProcess:
        """Start a worker process.

        Args:
            command: the command line to run instead of `launch.child_command(WORKER_MODULE)`
                (tests use stand-ins).

        Raises:
            ExternalFailure: the command could not be started.
        """
        root = package_root()
        argv = list(command) if command is not None else child_command(WORKER_MODULE)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=root,
                env=worker_env(root),
                start_new_session=True,  # a Ctrl-C meant for the app must not kill the model
            )
        except OSError as exc:
            raise ExternalFailure(
                f"Could not start the model worker process ({exc}). "
                "Check that the workbench's Python environment is intact.",
            ) from exc
        return cls(proc)

    def _start(
        self, target: Callable[[IO[bytes]], None], stream: IO[bytes], name: str
    ) -> threading.Thread:
        thread = threading.Thread(
            target=target, args=(stream,), name=f"llamacpp-{name}-{self.pid}", daemon=True
        )
        thread.start()
        return thread

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self._proc.pid

    @property
    def load_facts(self) -> LoadFacts:
        """What llama.cpp's log has said about the load so far (complete once
        `load_marker_seen` is set)."""
        return self._load_log.facts

    @property
    def offloaded(self) -> tuple[int, int] | None:
        """(layers on the GPU, layers counted) from llama.cpp's log, None until logged."""
        return self._load_log.facts.offloaded

    @property
    def running(self) -> bool:
        """Whether the process has not exited yet."""
        return self._proc.poll() is None

    def stderr_tail(self) -> str:
        """The last lines of the worker's stderr (llama.cpp's log), oldest first."""
        with self._tail_lock:
            return "\n".join(self._tail)

    def send(self, message: Mapping[str, object]) -> None:
        """Write one request.

        Raises:
            WorkerExited: the worker is gone (its stdin is closed).
        """
        assert self._proc.stdin is not None
        with self._send_lock:
            try:
                self._proc.stdin.write(protocol.encode(message))
                self._proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError) as exc:  # ValueError: pipe closed
                raise WorkerExited() from exc

    def next_event(self, timeout: float) -> Message | None:
        """The next message, or None when none came within `timeout` seconds.

        Raises:
            WorkerExited: the worker's stdout closed.
            ProtocolError: the worker wrote a line that is not a protocol message.
        """
        if self._eof:
            raise WorkerExited()
        try:
            item = self._events.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, _Eof):
            self._eof = True
            raise WorkerExited()
        if isinstance(item, ProtocolError):
            raise item
        return item

    def crash_error(self) -> RuntimeCrashed:
        """After `WorkerExited`: wait for the exit status and the log's end; build the error."""
        try:
            code: int | None = self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # stdout closed but the process lingers: end it
            self.kill()
            code = self._proc.returncode
        self._stderr_thread.join(timeout=2)
        return RuntimeCrashed(code, self.stderr_tail())

    def stop(self, grace_s: float = 3.0) -> None:
        """Ask the worker to exit, wait up to `grace_s`, then kill it. Idempotent."""
        if self.running:
            with contextlib.suppress(WorkerExited):
                self.send({"op": "exit"})
            try:
                self._proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_pipes()

    def kill(self) -> None:
        """End the worker now (SIGKILL) and reap it. Idempotent."""
        if self.running:
            self._proc.kill()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _log.error("worker %d did not die after SIGKILL", self.pid)
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self._proc.stdin is not None:
            with contextlib.suppress(OSError):  # already broken: nothing left to flush
                self._proc.stdin.close()
        self._stdout_thread.join(timeout=2)
        self._stderr_thread.join(timeout=2)

    def _read_stdout(self, stream: IO[bytes]) -> None:
        try:
            while True:
                line = stream.readline(protocol.MAX_LINE_BYTES)
                if not line:
                    break
                if not line.endswith(b"\n") and len(line) >= protocol.MAX_LINE_BYTES:
                    self._events.put(ProtocolError("a line longer than 64 MiB", line))
                    break
                try:
                    self._events.put(protocol.decode(line, "ev"))
                except ProtocolError as exc:
                    self._events.put(exc)
        except (OSError, ValueError) as exc:  # ValueError: read from a closed pipe
            _log.debug("worker stdout reader stopped: %s", exc)
        finally:
            self._events.put(_Eof())

    def _read_stderr(self, stream: IO[bytes]) -> None:
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                _stderr_log.debug("%s", line)
                if not self.load_marker_seen.is_set():
                    self._load_log.feed(line)
                if line == LOAD_FINISHED_MARKER:
                    self.load_marker_seen.set()
                with self._tail_lock:
                    self._tail.append(line[:_TAIL_LINE_CHARS])
        except (OSError, ValueError) as exc:
            _log.debug("worker stderr reader stopped: %s", exc)
