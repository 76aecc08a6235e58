"""Take docs/screenshots/main.png: the real app, a real streamed reply, a real X screen.

Run under Xvfb (the README's screenshots are made this way):

    LLM_WORKBENCH_HOME=$(mktemp -d) xvfb-run -s "-screen 0 1280x800x24" \
        .venv/bin/python docs/make_screenshot.py docs/screenshots/main.png
    LLM_WORKBENCH_HOME=$(mktemp -d) xvfb-run -s "-screen 0 1280x800x24" \
        .venv/bin/python docs/make_screenshot.py docs/screenshots/crash.png --kill-worker

The second reply is regenerated once, so the versions arrows (‹ 2/2 ›) show under it.
`--kill-worker` sends SIGKILL to the model's worker process in the middle of the second reply,
to show what the user sees when llama.cpp dies: the window lives on, the reply so far is kept.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from runtimes.base import GenerationParams
from ui.main import build_services, create_application
from ui.main_window import MainWindow

PROMPTS = [
    "Say hi in one short sentence.",
    "Write a Python function that reverses a string, in a code block, then explain it briefly.",
]


def main(out: Path, kill_worker: bool = False) -> int:
    """Open the window, send two prompts, grab the screen after the second reply."""
    app: QApplication = create_application()
    window = MainWindow(build_services())
    window.resize(1180, 720)
    window.move(40, 30)
    window.show()
    window.start_hardware_probe()
    window.chat.params = GenerationParams(temperature=0.2, seed=7, max_tokens=160)
    queue = list(PROMPTS)
    regenerated = kill_worker  # the crash picture needs no second version

    def send_next() -> None:
        nonlocal regenerated
        if queue:
            window.chat_view.input.setPlainText(queue.pop(0))
            window.chat_view.send_button.click()
            if kill_worker and not queue:
                QTimer.singleShot(900, kill)
        elif not regenerated:
            regenerated = True  # a second version of the last reply: the ‹ 2/2 › arrows show
            window.chat.params = GenerationParams(temperature=0.7, seed=11, max_tokens=160)
            window.regenerate_action.trigger()
        else:
            QTimer.singleShot(600, grab)

    def kill() -> None:
        model = window.services.host.current
        if model is not None:
            os.kill(model.pid, signal.SIGKILL)

    def grab() -> None:
        screen = QGuiApplication.primaryScreen()
        frame = window.frameGeometry()
        pixmap = screen.grabWindow(0, frame.x(), frame.y(), frame.width(), frame.height())
        out.parent.mkdir(parents=True, exist_ok=True)
        pixmap.save(str(out))
        print(f"saved {out} ({pixmap.width()}x{pixmap.height()})")
        window.close()
        app.quit()

    window.chat.reply_finished.connect(lambda: QTimer.singleShot(300, send_next))
    QTimer.singleShot(800, send_next)
    return int(app.exec())


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    target = Path(args[0] if args else "docs/screenshots/main.png")
    sys.exit(main(target, kill_worker="--kill-worker" in sys.argv))
