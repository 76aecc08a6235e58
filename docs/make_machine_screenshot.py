"""Take docs/screenshots/machine.png: This Machine on this machine's real probe and estimates.

    LLM_WORKBENCH_HOME=$(mktemp -d) xvfb-run -s "-screen 0 1280x900x24" \\
        .venv/bin/python -m docs.make_machine_screenshot docs/screenshots/machine.png
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QAbstractItemView

from ui.main import build_services, create_application
from ui.main_window import MainWindow

FALLBACK_MS = 60_000
"""Grab anyway after a minute, so a broken estimate shows up in the picture, not as a hang."""


def main(out: Path) -> int:
    """Probe, open the page, wait for the first recommendations, select the best row,
    check the demo model file, grab it."""
    app = create_application()
    window = MainWindow(build_services())
    window.show()
    window.start_hardware_probe()
    page = window.show_machine()
    page.resize(1180, 860)
    page.move(20, 20)
    done: list[bool] = []

    def grab() -> None:
        if done:
            return
        done.append(True)
        frame = page.frameGeometry()
        shot = QGuiApplication.primaryScreen().grabWindow(
            0, frame.x(), frame.y(), frame.width(), frame.height()
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        shot.save(str(out))
        print(f"saved {out} ({shot.width()}x{shot.height()})")
        window.close()
        app.quit()

    def shown(_request: object) -> None:
        if done or page.checked_file:
            return
        # The best quant of the first everyday (3–9B) model, in the middle of the view.
        rows = page.table.table_model.rows
        best = next(
            (r for r, item in enumerate(rows) if getattr(item, "best", False)
             and getattr(item, "size_class", "") == "small"),
            None,
        )  # fmt: skip
        if best is not None:
            page.table.selectRow(best)
            page.table.scrollTo(
                page.table.table_model.index(best, 0), QAbstractItemView.ScrollHint.PositionAtCenter
            )
        # The demo model (installed by the setup command) shows the file check as well.
        local = window.services.library.scan()
        if local:
            page.check_file(str(local[0].path))
        QTimer.singleShot(2500 if local else 700, grab)

    page.recommendations_shown.connect(shown)
    QTimer.singleShot(FALLBACK_MS, grab)
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots/machine.png")))
