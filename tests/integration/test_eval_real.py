"""`llm-workbench eval` on the real SmolLM2 and Gemma 3 270M: an eval set whose greedy verdicts
are known scores as expected, the JSON has the documented keys, the run is stored, and a bad
set file is one line on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.eval_report import read_csv
from app.eval_store import EvalStore
from app.paths import app_paths
from app.store import open_database

pytestmark = pytest.mark.integration

# Greedy (temperature 0, seed 1, 12 tokens) replies seen on llama.cpp CPU:
#   SmolLM2 "The answer is 4." / "I'm here to help with any creative writing..."
#   Gemma 3 270M echoes the prompt ("What is 2 + 2? mendatanguser\nWhat is 2 +"), whose
#   first number is 2. Neither writes the marker; the manual case waits for a judgment.
CASES = [
    {"prompt": "What is 2 + 2?", "expected": "4", "scorer": "numeric"},
    {"prompt": "Say something.", "expected": ".+", "scorer": "regex", "flags": "s"},
    {"prompt": "Name a colour.", "expected": "this-will-never-appear", "scorer": "contains"},
    {"prompt": "Write a haiku about rain.", "scorer": "manual"},
]


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLM_WORKBENCH_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "ui.entry", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_eval_scores_known_answers_on_two_real_models(
    workbench_home: Path, smollm2_path: Path, gemma_path: Path, tmp_path: Path
) -> None:
    set_path = tmp_path / "known.jsonl"
    set_path.write_text("".join(json.dumps(c) + "\n" for c in CASES), encoding="utf-8")
    csv_path = tmp_path / "out.csv"
    result = _cli(
        workbench_home, "eval", str(set_path), "--models", str(smollm2_path), str(gemma_path),
        "--json", "--csv", str(csv_path), "--max-tokens", "12", "--seed", "1",
        "--temperature", "0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= {"set", "run_id", "models", "cases"}
    assert data["set"] == "known"
    smol, gemma = data["models"]
    for model in (smol, gemma):
        assert set(model) >= {"model", "model_name", "passed", "total", "score",
                              "decode_tokens_per_second", "peak_memory_bytes"}  # fmt: skip
        assert model["total"] == 4
        assert model["decode_tokens_per_second"] > 0
        assert model["peak_memory_bytes"] > 50_000_000
    assert (smol["model"], gemma["model"]) == (str(smollm2_path), str(gemma_path))
    assert (smol["passed"], smol["score"]) == (2, pytest.approx(2 / 3))
    assert (gemma["passed"], gemma["score"]) == (1, pytest.approx(1 / 3))

    verdicts = [
        [case["results"][str(path)]["passed"] for path in (smollm2_path, gemma_path)]
        for case in data["cases"]
    ]
    assert verdicts == [[True, False], [True, True], [False, False], [None, None]]
    first = data["cases"][0]
    assert (first["prompt"], first["expected"], first["scorer"]) == (
        "What is 2 + 2?",
        "4",
        "numeric",
    )
    assert set(first["results"][str(smollm2_path)]) >= {"passed", "reply", "detail"}
    assert first["results"][str(smollm2_path)]["detail"] == "expected 4, got 4"

    assert "ETA" in result.stderr
    assert "[8/8]" in result.stderr
    rows = read_csv(csv_path)
    assert [(row.case, row.passed) for row in rows] == [
        (1, True), (1, False), (2, True), (2, True), (3, False), (3, False), (4, None), (4, None),
    ]  # fmt: skip

    with open_database(app_paths().database) as db:
        store = EvalStore(db)
        run = store.run(data["run_id"])
        assert (run.status, run.models) == ("complete", (str(smollm2_path), str(gemma_path)))


def test_a_bad_set_file_is_one_line_on_stderr(workbench_home: Path, tmp_path: Path) -> None:
    set_path = tmp_path / "bad.jsonl"
    set_path.write_text('{"prompt": "ok"}\n{"prompt": "p", "scorer": "regex", "expected": "(("}\n')
    result = _cli(workbench_home, "eval", str(set_path), "--models", "whatever.gguf")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {set_path}, line 2: invalid regex '(('")
