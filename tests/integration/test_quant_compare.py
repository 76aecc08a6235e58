"""Two quantizations of one model, side by side and on an eval set, with real files: the demo
SmolLM2 Q4_1 and a Q4_0 that llama.cpp's own quantizer writes from it (scripts/make_demo_quants.py),
plus Gemma 3 270M as a third model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.compare_runner import CompareRunner, PaneEvent, PaneSpec
from app.model_session import LocalSessionOpener
from app.runtimes import RuntimeRegistry
from runtimes.base import CancelToken, ChatMessage, GenerationParams

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smollm2_q4_0(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("quants")
    result = subprocess.run(
        [sys.executable, "scripts/make_demo_quants.py", "--out", str(out), "Q4_0"],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (path,) = out.glob("*.Q4_0-requantized.gguf")
    return path


def test_two_quants_of_one_model_run_side_by_side(smollm2_path: Path, smollm2_q4_0: Path) -> None:
    assert smollm2_q4_0.stat().st_size < smollm2_path.stat().st_size
    runner = CompareRunner(LocalSessionOpener(RuntimeRegistry()))
    panes = [PaneSpec(str(smollm2_path), "Q4_1"), PaneSpec(str(smollm2_q4_0), "Q4_0")]
    history = (ChatMessage("user", "Name three fruits."),)
    params = GenerationParams(temperature=0, seed=1, max_tokens=16)
    events: list[PaneEvent] = list(
        runner.run_turn(panes, [history, history], "sequential", params, CancelToken())
    )
    done = {e.pane: e.figures for e in events if e.kind == "done"}
    assert set(done) == {0, 1}, [e for e in events if e.kind == "failed"]
    texts = {pane: "".join(e.text for e in events if e.pane == pane and e.kind == "text")
             for pane in (0, 1)}  # fmt: skip
    assert all(t.strip() for t in texts.values())
    for figures in done.values():
        assert figures is not None
        assert figures.decode_tps > 0 and figures.completion_tokens > 0
        assert figures.peak_memory_bytes is not None and figures.peak_memory_bytes > 0
    runner.close()


def test_an_eval_set_across_three_models_scores_each(
    workbench_home: Path, smollm2_path: Path, smollm2_q4_0: Path, gemma_path: Path
) -> None:
    cases = workbench_home / "three.jsonl"
    lines = [
        {"prompt": "Say something.", "expected": ".+", "scorer": "regex"},
        {"prompt": "Name a colour.", "expected": "zzqx-never", "scorer": "contains"},
        {"prompt": "Write a haiku.", "scorer": "manual"},
    ]
    cases.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    models = [str(smollm2_path), str(smollm2_q4_0), str(gemma_path)]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ui.entry",
            "eval",
            str(cases),
            "--models",
            *models,
            "--json",
            "--max-tokens",
            "8",
        ],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "LLM_WORKBENCH_HOME": str(workbench_home)},
        timeout=240,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert [m["model"] for m in report["models"]] == models
    for model in report["models"]:
        # "Say something." always matches ".+"; the marker never appears; the haiku waits
        # for a person: 1 passed of the 2 judged, 3 cases in all.
        assert (model["passed"], model["total"]) == (1, 3)
        assert model["score"] == pytest.approx(0.5)
        assert model["decode_tokens_per_second"] > 0
        assert model["peak_memory_bytes"] > 0
