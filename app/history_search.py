"""Full-text search over conversation titles and message contents (SQLite FTS5).

Deleted conversations (waiting for their purge, so their deletion can be undone) are
left out of both kinds of hits.
"""

from __future__ import annotations

import html
import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from app.store import Database, is_unavailable
from app.store.models import UtcDateTime

log = logging.getLogger(__name__)

MAX_TERMS = 16
"""Words past this many are ignored: more only narrows an AND further, and costs time."""
MAX_TERM_CHARS = 64
"""A longer word is cut to this many characters (and searched as a prefix)."""
SNIPPET_TOKENS = 16
"""Words around a content hit that the snippet shows."""

# Unicode noncharacters: never in interchange text, so they cannot clash with the content.
_OPEN = "\ufdd0"
_CLOSE = "\ufdd1"
_MARKED = re.compile(f"{_OPEN}(.*?){_CLOSE}", re.DOTALL)
_FTS_WORD = re.compile(r"[^\W_]+")
_LIKE_SPECIALS = re.compile(r"([\\%_])")

RANKED_MATCH_LIMIT = 20_000
"""Above this many matching messages, hits come newest first instead of by relevance:
bm25 scores every match (about 100 ms for 100k), and among so many it says little."""

# Deleted conversations' messages, found through the conversations' deleted_at index.
_NOT_DELETED = (
    "rowid NOT IN (SELECT m.id FROM messages AS m WHERE m.conversation_id IN "
    "(SELECT id FROM conversations WHERE deleted_at IS NOT NULL))"
)
_MATCH_COUNT_SQL = text("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH :query")
# Two steps: rank ids alone (cheap), then snippets and columns for those few only.
_RANKED_IDS_SQL = text(
    f"SELECT rowid FROM messages_fts WHERE messages_fts MATCH :query AND {_NOT_DELETED} "
    "ORDER BY rank, rowid DESC LIMIT :limit"
)
_NEWEST_IDS_SQL = text(
    f"SELECT rowid FROM messages_fts WHERE messages_fts MATCH :query AND {_NOT_DELETED} "
    "ORDER BY rowid DESC LIMIT :limit"
)
_CONTENT_SQL = (
    text(
        "SELECT m.id AS message_id, m.conversation_id, c.title, m.role, m.created_at, "
        "snippet(messages_fts, 0, :open, :close, '…', :tokens) AS snippet "
        "FROM messages_fts "
        "JOIN messages AS m ON m.id = messages_fts.rowid "
        "JOIN conversations AS c ON c.id = m.conversation_id "
        "WHERE messages_fts MATCH :query AND messages_fts.rowid IN :ids"
    )
    .bindparams(bindparam("ids", expanding=True))
    .columns(created_at=UtcDateTime())
)


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One search result: a conversation's title, or one of its messages.

    Attributes:
        conversation_id: the conversation to open.
        conversation_title: its title, as plain text.
        message_id: the message that matched; None when the title matched.
        role: the message's role ("user", "assistant", "system"); "" for a title hit.
        snippet_html: HTML-escaped text around the hit, matched words in `<b>…</b>`.
        created_at: when the message (or the conversation) was written; aware, UTC.
    """

    conversation_id: int
    conversation_title: str
    message_id: int | None
    role: str
    snippet_html: str
    created_at: datetime


def search_history(db: Database, query: str, limit: int = 50) -> list[SearchHit]:
    """Search titles and message contents; malformed query syntax never raises.

    Every word must occur (AND); the last word also matches as a prefix, so results
    follow the user's typing. FTS5 operators in the text (`NEAR`, `*`, `"`, `:`,
    `AND`…) are searched as plain words. A title matches when each word starts one of
    its words (SQLite LIKE: case folds for ASCII only). Title hits come first (most recently active
    first), then message hits by relevance (bm25), newer first among equals (newest first
    when more than `RANKED_MATCH_LIMIT` messages match).

    Args:
        db: the open history database.
        query: what the user typed.
        limit: the most hits returned.

    Returns:
        Up to `limit` hits; empty when nothing matched or the query holds no words.

    Raises:
        DatabaseUnavailable: the database is locked, full or unreadable.
    """
    terms = title_terms(query)
    if not terms or limit <= 0:
        return []
    fts_query = build_match_query(query)
    with db.session() as session:
        hits = _title_hits(session, terms, limit)
        if fts_query and len(hits) < limit:
            hits.extend(_content_hits(session, fts_query, limit - len(hits)))
    return hits


def build_match_query(query: str) -> str:
    """An FTS5 MATCH expression for the user's text, safe whatever it holds.

    Each word is a double-quoted string (inner quotes doubled), so FTS5 syntax in the
    text stays literal; the last word gets `*` for prefix matching. Returns "" when the
    text has no letters or digits.
    """
    words = _FTS_WORD.findall(unicodedata.normalize("NFC", query))[:MAX_TERMS]
    quoted = ['"' + word[:MAX_TERM_CHARS].replace('"', '""') + '"' for word in words]
    if not quoted:
        return ""
    quoted[-1] += "*"
    return " ".join(quoted)


def title_terms(query: str) -> list[str]:
    """The words that must start words of a title: runs of letters, digits, marks, emoji."""
    words: list[str] = []
    current: list[str] = []
    for char in unicodedata.normalize("NFC", query):
        category = unicodedata.category(char)
        if category[0] in "LNM" or category == "So":
            current.append(char)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    return [word[:MAX_TERM_CHARS] for word in words[:MAX_TERMS]]


def highlight_html(plain: str, terms: list[str]) -> str:
    """`plain` HTML-escaped, `terms` in `<b>` where they start a word (ignoring case)."""
    if not terms:
        return html.escape(plain, quote=False)
    alternatives = "|".join(re.escape(term) for term in sorted(terms, key=len, reverse=True))
    pattern = rf"(?<!\S)(?:{alternatives})"
    marked = re.sub(pattern, lambda m: _OPEN + m.group(0) + _CLOSE, plain, flags=re.IGNORECASE)
    return marked_to_html(marked)


def marked_to_html(marked: str) -> str:
    """Escape text whose hits sit between the private markers, then mark them `<b>`."""
    escaped = html.escape(marked, quote=False)
    bolded = _MARKED.sub(r"<b>\1</b>", escaped)
    # A marker without its partner (only a broken index could yield one) is dropped.
    return bolded.replace(_OPEN, "").replace(_CLOSE, "")


def _like_escape(term: str) -> str:
    return _LIKE_SPECIALS.sub(r"\\\1", term)


def _title_hits(session: Session, terms: list[str], limit: int) -> list[SearchHit]:
    # Only numbered placeholders go into the SQL text; the words travel as parameters.
    conditions = " AND ".join(
        f"(title LIKE :s{i} ESCAPE '\\' OR title LIKE :w{i} ESCAPE '\\')" for i in range(len(terms))
    )
    statement = text(
        "SELECT id, title, updated_at FROM conversations "
        f"WHERE deleted_at IS NULL AND {conditions} "
        "ORDER BY updated_at DESC, id DESC LIMIT :limit"
    ).columns(updated_at=UtcDateTime())
    params: dict[str, object] = {"limit": limit}
    for i, term in enumerate(terms):
        params[f"s{i}"] = _like_escape(term) + "%"
        params[f"w{i}"] = "% " + _like_escape(term) + "%"
    rows = session.execute(statement, params).all()
    return [
        SearchHit(
            conversation_id=int(row.id),
            conversation_title=str(row.title),
            message_id=None,
            role="",
            snippet_html=highlight_html(str(row.title), terms),
            created_at=row.updated_at,
        )
        for row in rows
    ]


def _content_hits(session: Session, fts_query: str, limit: int) -> list[SearchHit]:
    try:
        ids = _matching_ids(session, fts_query, limit)
        if not ids:
            return []
        params = {
            "open": _OPEN,
            "close": _CLOSE,
            "tokens": SNIPPET_TOKENS,
            "query": fts_query,
            "ids": ids,
        }
        rows = list(session.execute(_CONTENT_SQL, params))
    except sa_exc.OperationalError as exc:
        if is_unavailable(exc):
            raise
        # The quoting should make this impossible; if FTS5 still objects, no hits.
        log.warning("full-text search for %r failed: %s", fts_query, exc.orig)
        return []
    order = {message_id: index for index, message_id in enumerate(ids)}
    rows.sort(key=lambda row: order[int(row.message_id)])
    return [
        SearchHit(
            conversation_id=int(row.conversation_id),
            conversation_title=str(row.title),
            message_id=int(row.message_id),
            role=str(row.role),
            snippet_html=marked_to_html(str(row.snippet or "")),
            created_at=row.created_at,
        )
        for row in rows
    ]


def _matching_ids(session: Session, fts_query: str, limit: int) -> list[int]:
    """Ids of the best `limit` live messages: by bm25, newer first among equals."""
    params = {"query": fts_query, "limit": limit}
    matches = int(session.execute(_MATCH_COUNT_SQL, params).scalar_one())
    if matches == 0:
        return []
    statement = _RANKED_IDS_SQL if matches <= RANKED_MATCH_LIMIT else _NEWEST_IDS_SQL
    return [int(row[0]) for row in session.execute(statement, params)]
