"""History search on a real SQLite file: FTS5 over contents, LIKE over titles, odd input."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from app.chat import ConversationService
from app.history_search import SearchHit, build_match_query, search_history
from app.store import Database, open_database
from runtimes.base import GenerationParams, GenerationStats


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(tmp_path / "history.sqlite3")
    yield database
    database.close()


@pytest.fixture()
def service(db: Database) -> ConversationService:
    return ConversationService(db)


def _conversation(service: ConversationService, title: str, *messages: str) -> int:
    conv = service.create()
    for message in messages:
        service.add_user_message(conv.id, message)
    service.rename(conv.id, title)
    return conv.id


def _reply(service: ConversationService, conversation_id: int, content: str) -> None:
    recorder = service.start_reply(conversation_id, "m", "llamacpp", GenerationParams())
    recorder.append(content)
    recorder.finish(GenerationStats(1, 2, 0.0, 0.1, 10.0, 0.2, "stop"))


def _keys(hits: list[SearchHit]) -> list[tuple[int, int | None]]:
    return [(hit.conversation_id, hit.message_id) for hit in hits]


def _message_id(service: ConversationService, conversation_id: int, index: int) -> int:
    return service.messages(conversation_id)[index].id


def test_a_word_in_a_message_is_found_with_its_conversation(service, db) -> None:
    cid = _conversation(service, "Plans", "Pack the tent and the stove", "Bring a map")
    _conversation(service, "Other", "Nothing relevant here")
    hits = search_history(db, "stove")
    assert _keys(hits) == [(cid, _message_id(service, cid, 0))]
    assert hits[0].conversation_title == "Plans"
    assert hits[0].role == "user"
    assert hits[0].snippet_html == "Pack the tent and the <b>stove</b>"


def test_assistant_replies_are_searched_too(service, db) -> None:
    cid = _conversation(service, "Colours", "Name a colour")
    _reply(service, cid, "Turquoise is a colour.")
    hits = search_history(db, "turquoise")
    assert [(hit.role, hit.snippet_html) for hit in hits] == [
        ("assistant", "<b>Turquoise</b> is a colour.")
    ]


def test_a_title_hit_comes_first_with_no_message_id(service, db) -> None:
    cid = _conversation(service, "Kayak trip", "paddles and a kayak")
    hits = search_history(db, "kayak")
    assert _keys(hits) == [(cid, None), (cid, _message_id(service, cid, 0))]
    assert hits[0].role == ""
    assert hits[0].snippet_html == "<b>Kayak</b> trip"
    assert hits[1].snippet_html == "paddles and a <b>kayak</b>"


def test_title_words_match_at_word_starts_ignoring_case(service, db) -> None:
    trip = _conversation(service, "Kayak trip to Norway", "x")
    _conversation(service, "Backpacking", "y")
    assert _keys(search_history(db, "NORW kay")) == [(trip, None)]
    assert search_history(db, "ayak") == []
    assert [hit.snippet_html for hit in search_history(db, "trip kayak")] == [
        "<b>Kayak</b> <b>trip</b> to Norway"
    ]


def test_like_wildcards_in_the_query_match_nothing_by_themselves(service, db) -> None:
    _conversation(service, "100% sure about snake_case", "x")
    assert search_history(db, "%") == []
    assert search_history(db, "_") == []
    assert search_history(db, "%%%_") == []


def test_the_last_word_matches_as_a_prefix_earlier_words_do_not(service, db) -> None:
    cid = _conversation(service, "t", "quantization formats explained")
    mid = _message_id(service, cid, 0)
    assert _keys(search_history(db, "quant")) == [(cid, mid)]
    assert search_history(db, "quant formats") == []
    assert _keys(search_history(db, "quantization form")) == [(cid, mid)]


def test_every_word_must_occur(service, db) -> None:
    both = _conversation(service, "a", "red apples and green pears")
    _conversation(service, "b", "red cars")
    _conversation(service, "c", "green pears")
    assert _keys(search_history(db, "pears red")) == [(both, _message_id(service, both, 0))]


@pytest.mark.parametrize(
    ("query", "content", "snippet"),
    [
        ("café", "un café noir", "un <b>café</b> noir"),
        ("cafe", "un café noir", "un <b>café</b> noir"),  # diacritics folded by the index
        ("über", "Grüße über alles", "Grüße <b>über</b> alles"),
        ("ÜBER", "Grüße über alles", "Grüße <b>über</b> alles"),
        ("日本", "日本語 を 話す", "<b>日本語</b> を 話す"),
    ],
)
def test_unicode_words_are_found(service, db, query: str, content: str, snippet: str) -> None:
    _conversation(service, "t", content)
    assert [hit.snippet_html for hit in search_history(db, query)] == [snippet]


def test_emoji_are_found_in_titles_and_ignored_as_content_words(service, db) -> None:
    cid = _conversation(service, "Party 🎉 plans", "cake 🎉 and balloons")
    assert _keys(search_history(db, "🎉")) == [(cid, None)]
    hits = search_history(db, "🎉 balloons")
    assert _keys(hits) == [(cid, _message_id(service, cid, 0))]
    assert hits[0].snippet_html == "cake 🎉 and <b>balloons</b>"


ODD_INPUTS = [
    '"',
    '""',
    "'",
    "NEAR(",
    "NEAR(a b)",
    "*",
    "a*b",
    "-",
    "^",
    ":",
    "AND",
    "OR",
    "NOT",
    "(",
    ")",
    "{}",
    "column:foo",
    "%",
    "_",
    "content:near",
    "x" * 10_000,
    "word " * 2_000,
    "     ",
    "",
    "\t\n",
]


@pytest.mark.parametrize("query", ODD_INPUTS)
def test_odd_input_never_raises(service, db, query: str) -> None:
    _conversation(service, "Mixed bag 100% _x_ {} (a) column:", "plain words only")
    assert search_history(db, query) == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('"', ""),
        ("*", ""),
        ("NEAR(a b)", '"NEAR" "a" "b"*'),
        ('say "hi', '"say" "hi"*'),
        ("column:foo", '"column" "foo"*'),
        ("a*b", '"a" "b"*'),
        ("NOT", '"NOT"*'),
        ("snake_case", '"snake" "case"*'),
    ],
)
def test_match_query_quotes_every_word(query: str, expected: str) -> None:
    assert build_match_query(query) == expected


@pytest.mark.parametrize(
    ("query", "content"),
    [
        ("NEAR(", "stay NEAR the shore"),
        ("AND", "salt AND pepper"),
        ("OR", "now OR never"),
        ("NOT", "do NOT touch"),
        ("column:foo", "column foo bar"),
        ('"quoted', 'he said "quoted" words'),
    ],
)
def test_operator_words_are_searched_as_plain_words(service, db, query, content) -> None:
    cid = _conversation(service, "t", content)
    assert _keys(search_history(db, query)) == [(cid, _message_id(service, cid, 0))]


def test_snippet_escapes_html_in_the_message(service, db) -> None:
    _conversation(service, "t", "try <script>alert('x')</script> & <b>bold</b> here")
    hits = search_history(db, "alert")
    assert [hit.snippet_html for hit in hits] == [
        "try &lt;script&gt;<b>alert</b>('x')&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt; here"
    ]


def test_title_snippet_escapes_html(service, db) -> None:
    _conversation(service, "Fancy <script>x</script> & title", "x")
    assert [hit.snippet_html for hit in search_history(db, "fancy")] == [
        "<b>Fancy</b> &lt;script&gt;x&lt;/script&gt; &amp; title"
    ]


def test_deleted_conversations_are_not_found(service, db) -> None:
    cid = _conversation(service, "Gone", "ephemeral words")
    assert len(search_history(db, "ephemeral")) == 1
    service.delete(cid)
    assert search_history(db, "ephemeral") == []
    assert search_history(db, "gone") == []


def test_deleted_and_edited_messages_leave_the_index(service, db) -> None:
    cid = _conversation(service, "t", "first unicorn", "second dragon")
    first, second = (view.id for view in service.messages(cid))
    with db.engine.begin() as connection:
        connection.execute(text("DELETE FROM messages WHERE id = :id"), {"id": first})
        connection.execute(
            text("UPDATE messages SET content = 'second griffin' WHERE id = :id"), {"id": second}
        )
    assert search_history(db, "unicorn") == []
    assert search_history(db, "dragon") == []
    assert _keys(search_history(db, "griffin")) == [(cid, second)]


def test_better_matches_rank_first_and_limit_caps_the_hits(service, db) -> None:
    cid = _conversation(
        service,
        "t",
        "llama " + "filler " * 40,
        "llama llama llama",
        "llama and more",
    )
    ids = [view.id for view in service.messages(cid)]
    hits = search_history(db, "llama")
    assert [hit.message_id for hit in hits] == [ids[1], ids[2], ids[0]]
    assert [hit.message_id for hit in search_history(db, "llama", limit=2)] == ids[1:]


def test_search_times_on_5000_messages(service, db) -> None:
    """5,000 messages over 50 conversations: one search stays well under 30 ms."""
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    with db.engine.begin() as connection:
        for c in range(50):
            connection.execute(
                text(
                    "INSERT INTO conversations (title, created_at, updated_at, model_path, "
                    "model_name, runtime, settings, title_is_auto) VALUES "
                    "(:t, '2025-01-01 00:00:00', '2025-01-01 00:00:00', '', '', 'llamacpp', "
                    "'{}', 0)"
                ),
                {"t": f"Conversation {c}"},
            )
        rows = [
            {"c": i % 50 + 1, "x": " ".join(words[(i + k) % 8] for k in range(30)) + f" n{i}"}
            for i in range(5000)
        ]
        connection.execute(
            text(
                "INSERT INTO messages (conversation_id, role, content, status, model_name, "
                "runtime, params, error, created_at, updated_at) VALUES (:c, 'user', :x, "
                "'complete', '', '', '{}', '', '2025-01-01 00:00:00', '2025-01-01 00:00:00')"
            ),
            rows,
        )
    search_history(db, "alpha")  # warm the connection pool and page cache
    start = time.perf_counter()
    hits = search_history(db, "alpha bra")
    elapsed_ms = (time.perf_counter() - start) * 1000
    print(f"search over 5,000 messages: {elapsed_ms:.1f} ms")
    assert len(hits) == 50
    assert _keys(search_history(db, "n4321")) == [(4321 % 50 + 1, 4322)]
    assert elapsed_ms < 200  # generous for slow CI; the figure is printed above


def test_deleted_conversations_are_not_found_until_restored(service, db) -> None:
    cid = _conversation(service, "Walrus facts", "tusks and whiskers")
    service.delete(cid)
    assert search_history(db, "walrus") == []
    assert search_history(db, "whiskers") == []
    service.restore(cid)
    assert _keys(search_history(db, "walrus")) == [(cid, None)]
    assert _keys(search_history(db, "whiskers")) == [(cid, _message_id(service, cid, 0))]
