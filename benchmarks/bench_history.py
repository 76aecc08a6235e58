"""History at scale: list, open and search over 100k messages in 2,000 conversations.

Builds the database once (cached in the temp folder; delete it to rebuild), then times
`ConversationService.list_conversations()` (target: the whole list opens in 100 ms, UI
included; this measures the query and the frozen views), `messages()` of a 50-message
conversation, and `search_history` (target 30 ms) for a common word, a rare word, a
prefix and a quoted phrase.

Run: .venv/bin/python -m benchmarks.bench_history
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.chat import ConversationService
from app.history_search import search_history
from app.store import Database, open_database

CONVERSATIONS = 2_000
MESSAGES_PER_CONVERSATION = 50
RUNS = 30
CACHE = Path(tempfile.gettempdir()) / "llm-workbench-bench-history-v1.sqlite3"
RARE_WORD = "zygomorphic"

_VOCABULARY = (
    "the of and to a in is it you that he was for on are with as I his they be at one have "
    "this from or had by not word but what some we can out other were all there when up use "
    "your how said an each she which do their time if will way about many then them write "
    "would like so these her long make thing see him two has look more day could go come "
    "did number sound no most people my over know water than call first who may down side "
    "been now find any new work part take get place made live where after back little only "
    "round man year came show every good me give our under name very through just form "
    "sentence great think say help low line differ turn cause much mean before move right "
    "boy old too same tell does set three want air well also play small end put home read "
    "hand port large spell add even land here must big high such follow act why ask men "
    "change went light model quantization memory context token tokens layer layers GPU CPU "
    "Metal CUDA llama python function class return list dict value error file path server "
    "request response quicksort mergesort pivot partition recursion array index loop stream "
    "reply prompt temperature sampling batch thread process cache kernel tensor weights "
    "offload download sqlite database query index transaction commit rollback schema "
    "migration table column"
)
_WORDS = tuple(_VOCABULARY.split())


def _sentence(rng: random.Random, words: int, weights: list[float]) -> str:
    chosen = rng.choices(_WORDS, weights=weights, k=words)
    text = " ".join(chosen)
    return text[0].upper() + text[1:] + "."


def _text(rng: random.Random, words: int, weights: list[float]) -> str:
    sentences = []
    while words > 0:
        n = min(words, rng.randint(6, 18))
        sentences.append(_sentence(rng, n, weights))
        words -= n
    return " ".join(sentences)


def build(path: Path) -> None:
    """Write the benchmark history (about 100k messages) with plain SQL in one transaction."""
    rng = random.Random(6)
    weights = [1.0 / (rank + 1) for rank in range(len(_WORDS))]  # Zipf-like frequencies
    db = open_database(path)
    start = datetime(2025, 1, 1, tzinfo=UTC).replace(tzinfo=None)
    params = json.dumps({"temperature": 0.7, "top_p": 0.95, "max_tokens": 512})
    with db.engine.begin() as connection:
        raw = connection.connection.driver_connection
        assert raw is not None
        next_id = 1
        for c in range(1, CONVERSATIONS + 1):
            created = start + timedelta(minutes=37 * c)
            raw.execute(
                "INSERT INTO conversations (id, title, created_at, updated_at, model_path, "
                "model_name, runtime, settings, title_is_auto, pinned, deleted_at) "
                "VALUES (?, ?, ?, ?, '/m/smol.gguf', 'SmolLM2', 'llamacpp', '{}', 1, ?, ?)",
                (
                    c,
                    _sentence(rng, rng.randint(3, 7), weights)[:48],
                    created,
                    created + timedelta(minutes=rng.randint(1, 90)),
                    int(c % 200 == 0),
                    created if c % 100 == 1 else None,
                ),
            )
            rows = []
            for m in range(MESSAGES_PER_CONVERSATION):
                user = m % 2 == 0
                content = _text(rng, rng.randint(8, 40) if user else rng.randint(40, 160), weights)
                if next_id % 20_000 == 1_234:
                    content += f" A {RARE_WORD} flower."
                when = created + timedelta(seconds=20 * m)
                parent = next_id - 1 if m else None
                role = "user" if user else "assistant"
                rows.append((next_id, c, parent, role, content, params, when, when))
                next_id += 1
            raw.executemany(
                "INSERT INTO messages (id, conversation_id, parent_id, role, content, status, "
                "model_name, runtime, params, error, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, 'complete', 'SmolLM2', 'llamacpp', ?, '', ?, ?)",
                rows,
            )
            raw.execute(
                "UPDATE conversations SET active_leaf_id = ? WHERE id = ?", (next_id - 1, c)
            )
    with db.engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
    db.close()


def _time(call: Callable[[], object], runs: int = RUNS) -> tuple[float, float]:
    call()  # warm the page cache and SQLAlchemy's statement cache
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))]


def _report(name: str, call: Callable[[], object], target_ms: float | None = None) -> None:
    median, p95 = _time(call)
    goal = f"  (target ≤ {target_ms:.0f} ms)" if target_ms else ""
    print(f"{name:<44} median {median:7.2f} ms   p95 {p95:7.2f} ms{goal}")


def main() -> None:
    """Build (or reuse) the database and print the figures."""
    if not CACHE.exists():
        began = time.perf_counter()
        build(CACHE)
        print(f"built {CACHE} in {time.perf_counter() - began:.1f} s")
    db: Database = open_database(CACHE)
    service = ConversationService(db)
    with db.engine.connect() as connection:
        count = connection.exec_driver_sql("SELECT count(*) FROM messages").scalar()
    size_mb = CACHE.stat().st_size / 1e6
    print(f"{count} messages in {CONVERSATIONS} conversations, {size_mb:.0f} MB")
    listed = service.list_conversations()
    print(f"list shows {len(listed)} (pinned {sum(c.pinned for c in listed)}; 20 deleted)")
    _report("list_conversations()", service.list_conversations, 100)
    middle = listed[len(listed) // 2].id
    _report(
        f"messages() of {MESSAGES_PER_CONVERSATION}-message conversation",
        lambda: service.messages(middle),
    )
    for label, query in (
        ("search most common word 'the'", "the"),
        ("search common word 'model'", "model"),
        (f"search rare word '{RARE_WORD}'", RARE_WORD),
        ("search prefix 'quant' (quantization...)", "quant"),
        ("search two words 'pivot partition'", "pivot partition"),
        ("search quoted '\"the memory\"'", '"the memory"'),
    ):
        hits = search_history(db, query)
        _report(f"{label} ({len(hits)} hits)", lambda q=query: search_history(db, q), 30)
    _report_ui(service, middle)
    db.close()


def _report_ui(service: ConversationService, conversation_id: int) -> None:
    """The same with the real widgets (offscreen): the list as the window opens it, painted,
    and a 50-message conversation rendered as Markdown in the chat view."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from ui.chat_view import ChatView
    from ui.conversation_list import ConversationList

    app = QApplication.instance() or QApplication([])
    listing = ConversationList()
    listing.resize(260, 760)
    listing.show()
    view = ChatView()
    view.resize(900, 760)
    view.show()

    def open_list() -> None:
        listing.set_conversations(service.list_conversations(), None)
        app.processEvents()  # layout and paint

    def open_conversation() -> None:
        view.show_messages(service.messages(conversation_id))
        app.processEvents()

    _report("conversation list opens (query + widget + paint)", open_list, 100)
    _report("open a 50-message conversation (Markdown, paint)", open_conversation)


if __name__ == "__main__":
    main()
