"""Take docs/screenshots/models.png and downloads.png: the Models window on a loopback Hub.

Hugging Face cannot be reached from the machines these screenshots are made on, so the Hub is
the test suite's loopback server (`tests/servers/hf_server.py`) serving the real SmolLM2 and
Gemma 3 270M files under the repository names they have on the Hub. Everything else is real:
search, listing, the fit badges from the real headers, a real throttled download.

    LLM_WORKBENCH_HOME=$(mktemp -d) HF_HUB_CACHE=$(mktemp -d) xvfb-run -s "-screen 0 1280x900x24" \\
        .venv/bin/python -m docs.make_models_screenshot docs/screenshots
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

from tests.servers.hf_server import Fault, HFServer, HubRepo
from ui.main import build_services, create_application
from ui.main_window import MainWindow

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
GEMMA = "unsloth/gemma-3-270m-it-GGUF"


def _grab(widget: QWidget, out: Path) -> None:
    frame = widget.frameGeometry()
    shot = QGuiApplication.primaryScreen().grabWindow(
        0, frame.x(), frame.y(), frame.width(), frame.height()
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    shot.save(str(out))
    print(f"saved {out} ({shot.width()}x{shot.height()})")


def main(folder: Path) -> int:
    """Search, open the Gemma repository, grab; download it throttled, grab mid-way."""
    from benchmarks.bench_fit import find_gemma_file, find_smollm2_file

    smol, gemma = find_smollm2_file(), find_gemma_file()
    server = HFServer(
        [
            HubRepo(SMOL, {"smollm2-135m-instruct-q4_1.gguf": smol}, downloads=51_234, likes=88),
            HubRepo(GEMMA, {"gemma-3-270m-it-Q4_K_M.gguf": gemma}, downloads=120_877, likes=301,
                    license="gemma"),
        ]
    ).start()  # fmt: skip
    server.fault(GEMMA, "gemma-3-270m-it-Q4_K_M.gguf", Fault(bytes_per_second=20_000_000))
    app = create_application()
    window = MainWindow(build_services())
    window.start_hardware_probe()
    models = window.show_models()
    models._endpoint = server.endpoint
    models.downloads_view._endpoint = server.endpoint
    models.resize(1180, 720)
    models.move(20, 20)
    discover = models.discover_view
    models.tabs.setCurrentWidget(discover)

    def search() -> None:
        discover.query.setText("270m")
        discover.search_button.click()
        QTimer.singleShot(2500, pick)

    def pick() -> None:
        for i in range(discover.models.count()):
            item = discover.models.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == GEMMA:
                discover.models.setCurrentItem(item)
        QTimer.singleShot(4000, select)

    def select() -> None:
        discover.files.setFocus()
        discover.files.selectRow(0)
        QTimer.singleShot(500, shot_discover)

    def shot_discover() -> None:
        _grab(models, folder / "models.png")
        discover.download_button.click()
        QTimer.singleShot(5000, shot_downloads)

    def shot_downloads() -> None:
        _grab(models, folder / "downloads.png")
        models.wait_for_workers()
        window.close()
        models.close()
        server.stop()
        app.quit()

    QTimer.singleShot(4000, search)  # after the probe: the badges need the hardware
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")))
