"""Take docs/screenshots/runtimes.png: the Runtimes page with an Ollama(-protocol) server.

    LLM_WORKBENCH_HOME=$(mktemp -d) OLLAMA_HOST=http://127.0.0.1:PORT xvfb-run -s \\
        "-screen 0 1280x800x24" .venv/bin/python -m docs.make_runtimes_screenshot OUT.png
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication

from ui.main import build_services, create_application
from ui.main_window import MainWindow


def main(out: Path) -> int:
    """Open the Runtimes page, let every check finish, grab it."""
    app = create_application()
    window = MainWindow(build_services())
    window.show()
    page = window.show_runtimes()
    page.move(40, 30)

    def grab() -> None:
        frame = page.frameGeometry()
        shot = QGuiApplication.primaryScreen().grabWindow(
            0, frame.x(), frame.y(), frame.width(), frame.height()
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        shot.save(str(out))
        print(f"saved {out} ({shot.width()}x{shot.height()})")
        window.close()
        app.quit()

    QTimer.singleShot(6000, grab)
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots/runtimes.png")))
