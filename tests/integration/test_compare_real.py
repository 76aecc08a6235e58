"""Comparisons with the real SmolLM2 and Gemma 3 models: the runner, the opener, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from app.compare import CompareService
from app.compare_runner import CompareRunner, PaneEvent, PaneSpec
from app.model_session import LocalSessionOpener
from app.paths import app_paths
from app.runtimes import RuntimeRegistry
from app.store import open_database
from runtimes.base import CancelToken, ChatMessage, GenerationParams

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PARAMS = GenerationParams(temperature=0, seed=1, max_tokens=12)
DOCUMENTED_KEYS = {
    "model",
    "runtime",
    "text",
    "load_seconds",
    "ttft_ms",
    "decode_tokens_per_second",
    "prompt_tokens_per_second",
    "completion_tokens",
    "total_seconds",
    "peak_memory_bytes",
    "error",
}


def _workers() -> set[int]:
    me = psutil.Process()
    return {child.pid for child in me.children(recursive=True)}


def test_a_sequential_two_pane_run_gives_both_replies_and_figures(
    smollm2_path: Path, gemma_path: Path
) -> None:
    before = _workers()
    opener = LocalSessionOpener(RuntimeRegistry())
    runner = CompareRunner(opener)
    panes = [PaneSpec(str(smollm2_path), "SmolLM2"), PaneSpec(str(gemma_path), "Gemma")]
    history = (ChatMessage("user", "Name a colour."),)
    events: list[PaneEvent] = []
    alive_during: list[int] = []
    for event in runner.run_turn(panes, [history, history], "sequential", PARAMS, CancelToken()):
        events.append(event)
        if event.kind == "done":
            alive_during.append(len(_workers() - before))
    done = {e.pane: e.figures for e in events if e.kind == "done"}
    assert set(done) == {0, 1}, [e for e in events if e.kind == "failed"]
    for pane in (0, 1):
        text = "".join(e.text for e in events if e.pane == pane and e.kind == "text")
        assert text.strip()
        figures = done[pane]
        assert figures is not None
        assert figures.load_seconds is not None and figures.load_seconds > 0
        assert figures.peak_memory_bytes is not None and figures.peak_memory_bytes > 50 * 1024**2
        assert figures.completion_tokens > 0
        assert figures.decode_tps > 0 and figures.ttft_ms > 0
        assert figures.prompt_tps is not None and figures.prompt_tps > 0
    assert alive_during == [1, 1]  # one worker at a time: the first was gone before the second
    assert [e.kind for e in events if e.pane == 0][-1] == "unloaded"
    assert not (_workers() - before)


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ui.entry", *args],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "LLM_WORKBENCH_HOME": str(home)},
        timeout=180,
        cwd=ROOT,
    )


def test_compare_json_prints_the_documented_keys_and_saves_the_run(
    workbench_home: Path, smollm2_path: Path, gemma_path: Path
) -> None:
    result = _cli(
        workbench_home,
        "compare",
        str(smollm2_path),
        str(gemma_path),
        "--prompt",
        "Say hello.",
        "--sequential",
        "--json",
        "--max-tokens",
        "8",
        "--temperature",
        "0",
        "--seed",
        "1",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["mode"] == "sequential"
    assert data["plan"]["runnable"] is True
    assert [p["model"] for p in data["panes"]] == [str(smollm2_path), str(gemma_path)]
    for pane in data["panes"]:
        assert set(pane) >= DOCUMENTED_KEYS
        assert pane["runtime"] == "llamacpp"
        assert pane["text"].strip()
        assert pane["error"] is None
        assert pane["completion_tokens"] > 0
        assert pane["peak_memory_bytes"] > 0
        assert pane["load_seconds"] > 0
    with open_database(app_paths().database) as db:
        run = CompareService(db).run(data["run_id"])
    assert run.title == "Say hello."
    assert [r.text for r in run.turns[0].replies] == [p["text"] for p in data["panes"]]


def test_compare_with_an_unknown_model_says_so_before_loading_anything(
    workbench_home: Path, smollm2_path: Path
) -> None:
    result = _cli(
        workbench_home, "compare", str(smollm2_path), "nothing-like-this", "--prompt", "x"
    )
    assert result.returncode == 2
    assert "nothing-like-this" in result.stderr
