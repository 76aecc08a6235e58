"""Child process of test_reply_kill: streams replies into a history database until killed.

Prints "ready" once the database is open, then "<message id> <length>" each time a write
of the reply has committed (the recorder reports everything saved), and "done <id>" when
a reply is finished. Every reply's text is `reply_text()` cut somewhere.

    python tests/integration/reply_writer_child.py HISTORY.sqlite3
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

CHUNKS = 400
FLUSH_INTERVAL_S = 0.02


def reply_text() -> str:
    """The full text every reply streams, chunk by chunk."""
    return "".join(_chunk(i) for i in range(CHUNKS))


def _chunk(i: int) -> str:
    return f"w{i} "


def main(path: Path) -> None:
    """Stream replies forever (the parent kills the process)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from app.chat import ConversationService
    from app.store import open_database
    from runtimes.base import GenerationParams, GenerationStats

    db = open_database(path)
    service = ConversationService(db, flush_interval=FLUSH_INTERVAL_S)
    chat = service.create(model_name="kill test")
    print("ready", flush=True)
    stats = GenerationStats(3, CHUNKS, 0.0, 0.01, 100.0, 0.5, "stop")
    while True:
        service.add_user_message(chat.id, "Count for me.")
        recorder = service.start_reply(chat.id, "kill test", "llamacpp", GenerationParams())
        for i in range(CHUNKS):
            recorder.append(_chunk(i))
            if recorder.saved:
                print(f"{recorder.message_id} {len(recorder.text)}", flush=True)
            time.sleep(0.001)
        recorder.finish(stats)
        print(f"done {recorder.message_id}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
