"""`llm-workbench --self-test` from source, and the hidden `--run-child` mode a frozen app
uses to start its llama.cpp worker (`sys.executable` is the app there, there is no `-m`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtimes.llamacpp import launch
from runtimes.llamacpp.process import WorkerExited, WorkerProcess

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ENTRY = [sys.executable, "-m", "ui.entry"]


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["LLM_WORKBENCH_HOME"] = str(home)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def test_self_test_passes_every_check_and_exits_0(workbench_home: Path) -> None:
    done = subprocess.run(
        [*ENTRY, "--self-test"],
        cwd=ROOT,
        env=_env(workbench_home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines[0].startswith("llm-workbench ") and "source run" in lines[0]
    checks = {line.split(":")[0].split(maxsplit=1)[1]: line for line in lines[1:-1]}
    assert set(checks) == {"resources", "logs", "history database", "llama.cpp worker", "qt"}
    assert all(line.startswith("ok  ") for line in checks.values())
    assert "8 tokens" in checks["llama.cpp worker"]
    assert "wrote and read back 2 messages" in checks["history database"]
    assert lines[-1] == "self-test passed: 5 checks"
    assert (workbench_home / "logs" / "workbench.log").is_file()


def test_self_test_names_what_failed_and_exits_1(workbench_home: Path, tmp_path: Path) -> None:
    not_a_model = tmp_path / "broken.gguf"
    not_a_model.write_bytes(b"this is not a GGUF file at all" * 10)
    done = subprocess.run(
        [*ENTRY, "--self-test", "--no-qt", "--model", str(not_a_model)],
        cwd=ROOT,
        env=_env(workbench_home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and failed[0].startswith("FAIL  llama.cpp worker: ")
    assert "broken.gguf" in failed[0]
    assert done.stdout.splitlines()[-1].startswith("self-test FAILED: 1 of 4 checks (log: ")


def test_a_frozen_app_starts_children_through_its_own_binary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert launch.child_command(launch.WORKER_MODULE) == [
        sys.executable,
        "--run-child",
        "runtimes.llamacpp.worker",
    ]
    assert launch.child_command(launch.DRYRUN_MODULE, ["{}"])[1:] == [
        "--run-child",
        "runtimes.llamacpp.dryrun_child",
        "{}",
    ]
    monkeypatch.setattr(sys, "frozen", False)
    assert launch.child_command(launch.WORKER_MODULE)[1:] == ["-m", "runtimes.llamacpp.worker"]
    with pytest.raises(ValueError, match="not a child module"):
        launch.child_command("os")


def test_the_entry_point_runs_the_worker_in_child_mode() -> None:
    # The same argv shape as a frozen app's: the entry point, then --run-child MODULE.
    worker = WorkerProcess.spawn([*ENTRY, "--run-child", launch.WORKER_MODULE])
    try:
        hello = worker.next_event(timeout=30)
        assert hello is not None and hello["ev"] == "hello"
        assert hello["pid"] == worker.pid
    finally:
        worker.stop()
    with pytest.raises(WorkerExited):
        worker.next_event(timeout=5)


def test_child_mode_imports_neither_qt_nor_the_parent_side() -> None:
    code = (
        "import sys\n"
        "import ui.entry, runtimes.llamacpp.launch, runtimes.llamacpp.worker\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('PySide6', 'app', 'gguf', 'sentencepiece', 'sqlalchemy'))\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == ""


def test_child_mode_refuses_an_unknown_module() -> None:
    done = subprocess.run(
        [*ENTRY, "--run-child", "os"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "usage: --run-child" in done.stderr
