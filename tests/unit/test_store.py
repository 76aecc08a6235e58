"""The history database: opening, pragmas, migrations, schema drift, search index, fixtures."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from app.chat import ConversationService, ConversationSettings
from app.errors import DatabaseUnavailable, UserFacingError
from app.history_search import search_history
from app.model_options import ModelOptionsStore
from app.presets import BUILTIN_PRESETS, PresetStore
from app.store import (
    Base,
    Database,
    DatabaseFileInvalid,
    DatabaseTooNew,
    Message,
    ModelFile,
    ModelLoadOptions,
    alembic_config,
    head_revision,
    open_database,
)
from app.store.models import include_name
from runtimes.base import GenerationParams, LoadOptions

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "db"
TABLES = {"models", "conversations", "messages", "model_load_options", "sampling_presets"}
SMOLLM2_KEY = "llamacpp:/models/smollm2-135m-instruct-q4_1.gguf"
"""The model whose options the fixtures from 0002 on hold (see make_fixture.py)."""


def _pragma(db: Database, name: str) -> object:
    with db.engine.connect() as connection:
        return connection.exec_driver_sql(f"PRAGMA {name}").scalar()


def _match(db: Database, query: str) -> list[int]:
    with db.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? ORDER BY rowid", (query,)
        )
        return [row[0] for row in rows]


def _schema_diffs(db: Database) -> list[object]:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_name": include_name, "compare_type": True}
        )
        return list(compare_metadata(context, Base.metadata))


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(tmp_path / "history.sqlite3")
    yield database
    database.close()


def test_open_creates_the_folder_and_migrates_to_head(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "folder" / "history.sqlite3"
    with open_database(path) as db:
        assert path.is_file()
        assert db.revision() == head_revision() == "0005_compare_evals"
        assert set(inspect(db.engine).get_table_names()) >= TABLES


def test_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    with open_database(tmp_path / "h.sqlite3", busy_timeout_s=1.5) as db:
        assert _pragma(db, "journal_mode") == "wal"
        assert _pragma(db, "foreign_keys") == 1
        assert _pragma(db, "busy_timeout") == 1500


def test_opening_twice_keeps_data_and_revision(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    with open_database(path) as db:
        ConversationService(db).create(model_name="first")
    with open_database(path) as db:
        assert db.revision() == head_revision()
        assert [c.model_name for c in ConversationService(db).list_conversations()] == ["first"]


def test_upgrade_from_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite3"
    path.touch()
    with open_database(path) as db:
        assert db.revision() == head_revision()
        assert _schema_diffs(db) == []


def test_a_garbage_file_gives_a_clear_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"this is not an SQLite database\n" * 200)
    with pytest.raises(DatabaseFileInvalid) as caught:
        open_database(path)
    assert isinstance(caught.value, UserFacingError)
    assert str(path) in caught.value.message
    assert "not a database" in caught.value.message
    assert path.read_bytes().startswith(b"this is not"), "the file is left untouched"


def test_a_database_of_another_program_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    connection.close()
    with pytest.raises(DatabaseFileInvalid, match="invoices"):
        open_database(path)


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    open_database(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")
    connection.close()
    with pytest.raises(DatabaseTooNew) as caught:
        open_database(path)
    assert "0099_from_the_future" in caught.value.message
    assert "newer version" in caught.value.message
    assert str(path) in caught.value.message


def test_an_unwritable_folder_is_reported_not_raised_raw(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DatabaseUnavailable, match="a-file"):
        open_database(blocker / "history.sqlite3")


def test_models_match_the_migrations(db: Database) -> None:
    assert _schema_diffs(db) == []


def test_schema_check_sees_a_model_the_migrations_lack(db: Database) -> None:
    # Proves the drift test above can fail: drop an index the models declare.
    with db.engine.begin() as connection:
        connection.exec_driver_sql("DROP INDEX ix_messages_conversation_id_id")
    assert any("ix_messages_conversation_id_id" in repr(diff) for diff in _schema_diffs(db))


def test_downgrade_to_base_and_upgrade_again(db: Database) -> None:
    ConversationService(db).create(model_name="gone after downgrade")
    with db.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    names = set(inspect(db.engine).get_table_names())
    assert names == {"alembic_version"}
    with db.engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
    assert db.revision() == head_revision()
    assert _schema_diffs(db) == []
    assert ConversationService(db).list_conversations() == []


def test_message_text_is_findable_with_match(db: Database) -> None:
    service = ConversationService(db)
    chat = service.create()
    first = service.add_user_message(chat.id, "How do I write a quicksort in Python?")
    second = service.add_user_message(chat.id, "And a mergesort?")
    assert _match(db, "quicksort") == [first.id]
    assert _match(db, "mergesort") == [second.id]
    assert _match(db, "python") == [first.id], "search ignores case"


def test_search_index_follows_updates_and_deletes(db: Database) -> None:
    service = ConversationService(db)
    chat = service.create()
    message = service.add_user_message(chat.id, "an ocelot")
    with db.engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE messages SET content = 'a capybara' WHERE id = ?", (message.id,)
        )
    assert _match(db, "ocelot") == []
    assert _match(db, "capybara") == [message.id]
    service.delete(chat.id)
    assert _match(db, "capybara") == [message.id], "an undo-able delete keeps the text"
    assert service.purge_deleted() == 1
    assert _match(db, "capybara") == []
    with db.engine.begin() as connection:
        # Raises if the index disagrees with the messages table.
        connection.exec_driver_sql(
            "INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)"
        )


def test_purging_a_deleted_conversation_cascades_to_its_messages(db: Database) -> None:
    service = ConversationService(db)
    chat = service.create()
    service.add_user_message(chat.id, "hello")
    service.delete(chat.id)
    service.purge_deleted()
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM messages").scalar() == 0


def test_model_file_paths_are_unique(db: Database) -> None:
    with db.session() as session:
        session.add(ModelFile(path="/m/a.gguf", name="a"))
    with pytest.raises(Exception, match="UNIQUE"), db.session() as session:
        session.add(ModelFile(path="/m/a.gguf", name="again"))


def test_session_rolls_back_on_error(db: Database) -> None:
    with pytest.raises(ZeroDivisionError), db.session() as session:
        session.add(ModelFile(path="/m/b.gguf"))
        session.flush()
        _ = 1 / 0
    with db.session() as session:
        assert session.query(ModelFile).count() == 0


def test_there_is_a_fixture_for_the_current_schema() -> None:
    assert (FIXTURES / f"{head_revision()}.sqlite3").is_file(), (
        "run tests/fixtures/db/make_fixture.py when releasing a schema version"
    )


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("*.sqlite3")), ids=lambda path: path.stem)
def test_fixture_databases_open_with_current_code(fixture: Path, tmp_path: Path) -> None:
    path = tmp_path / fixture.name
    shutil.copyfile(fixture, path)
    with open_database(path) as db:
        assert db.revision() == head_revision()
        assert _schema_diffs(db) == []
        service = ConversationService(db)
        chats = service.list_conversations()
        assert [c.title for c in chats] == [
            "An empty renamed chat",
            "How do I write a quicksort in Python?",
        ]
        messages = service.messages(chats[1].id)
        assert [(m.role, m.status) for m in messages] == [
            ("user", "complete"),
            ("assistant", "complete"),
            ("user", "complete"),
            ("assistant", "interrupted"),
        ]
        assert messages[1].stats is not None
        assert messages[1].stats.completion_tokens == 13
        assert messages[3].content == "def quicksort(items):"
        assert _match(db, "quicksort") == [messages[0].id, messages[3].id]
        with db.session() as session:
            assert session.query(ModelFile).one().quant == "Q4_1"
        saved = ModelOptionsStore(db).get(SMOLLM2_KEY)
        if fixture.stem < "0002":
            assert saved is None, "a database from before 0002 has no saved options"
        else:
            assert saved == LoadOptions(
                n_ctx=2048, flash_attn=True, kv_cache_type="q8_0", keep_alive_s=300.0
            )


def _active_leaves(db: Database) -> dict[str, int | None]:
    with db.engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT title, active_leaf_id FROM conversations")
        return {str(title): leaf for title, leaf in rows}


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("*.sqlite3")), ids=lambda path: path.stem)
def test_fixture_databases_keep_branches_pins_settings_and_presets(
    fixture: Path, tmp_path: Path
) -> None:
    path = tmp_path / fixture.name
    shutil.copyfile(fixture, path)
    with open_database(path) as db:
        service = ConversationService(db)
        empty, chat = service.list_conversations()
        shown = service.messages(chat.id)
        assert [m.parent_id for m in shown] == [None, *(m.id for m in shown[:-1])]
        leaves = _active_leaves(db)
        assert leaves[chat.title] == shown[-1].id, "the leaf is the end of the old thread"
        assert leaves[empty.title] is None
        presets = PresetStore(db)
        if fixture.stem < "0004":
            assert not empty.pinned
            assert [m.branch_count for m in shown] == [1, 1, 1, 1]
            assert service.settings(chat.id) == ConversationSettings()
            assert presets.names() == list(BUILTIN_PRESETS)
            return
        assert empty.pinned
        assert [(m.branch_index, m.branch_count) for m in shown] == [(1, 1), (1, 2), (1, 1), (1, 1)]
        other = service.switch_branch(chat.id, shown[1].id, +1)
        assert [m.content for m in other][1:] == [
            "Use sorted(); it is faster than a hand-written sort."
        ]
        assert service.settings(chat.id) == ConversationSettings(
            "You are terse.", "Precise", BUILTIN_PRESETS["Precise"], 4096
        )
        assert service.fallback(chat.id) == ("ollama::llama3.2:3b", "llama3.2:3b")
        assert presets.names() == [*BUILTIN_PRESETS, "Code review"]
        assert presets.get("Code review") == GenerationParams(temperature=0.1, max_tokens=1024)
        assert search_history(db, "bananas") == [], "a deleted chat is not found"
        assert service.purge_deleted() == 1


def test_upgrade_from_0001_adds_an_empty_options_table_and_keeps_history(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite3"
    shutil.copyfile(FIXTURES / "0001_initial.sqlite3", path)
    with sqlite3.connect(path) as connection:
        before = connection.execute("SELECT count(*) FROM messages").fetchone()[0]
    connection.close()
    with open_database(path) as db:
        assert db.revision() == head_revision()
        assert "model_load_options" in inspect(db.engine).get_table_names()
        with db.session() as session:
            assert session.query(ModelLoadOptions).count() == 0
            assert session.query(Message).count() == before == 4
        store = ModelOptionsStore(db)
        store.save(SMOLLM2_KEY, LoadOptions(n_ctx=1024))
        assert store.get(SMOLLM2_KEY) == LoadOptions(n_ctx=1024)


def test_downgrade_from_0002_to_0001_drops_only_the_options_table(db: Database) -> None:
    ModelOptionsStore(db).save(SMOLLM2_KEY, LoadOptions())
    ConversationService(db).create(model_name="kept")
    with db.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0001_initial")
    assert db.revision() == "0001_initial"
    assert set(inspect(db.engine).get_table_names()) >= {"models", "conversations", "messages"}
    assert "model_load_options" not in inspect(db.engine).get_table_names()
    with db.engine.connect() as connection:
        names = connection.exec_driver_sql("SELECT model_name FROM conversations").scalars()
        assert list(names) == ["kept"]


def test_schema_check_sees_an_options_column_the_migrations_lack(db: Database) -> None:
    # Proves the drift test covers the new table: drop a column the model declares.
    with db.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE model_load_options DROP COLUMN keep_alive_s")
    assert any("keep_alive_s" in repr(diff) for diff in _schema_diffs(db))


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("*.sqlite3")), ids=lambda path: path.stem)
def test_fixture_databases_keep_comparisons_and_eval_runs(fixture: Path, tmp_path: Path) -> None:
    from app.compare import CompareService
    from app.eval_store import EvalStore

    path = tmp_path / fixture.name
    shutil.copyfile(fixture, path)
    with open_database(path) as db:
        compare, evals = CompareService(db), EvalStore(db)
        if fixture.stem < "0005":
            assert compare.runs() == [] and evals.sets() == []
            return
        (summary,) = compare.runs()
        run = compare.run(summary.id)
        assert [p.name for p in run.panes] == ["SmolLM2 Q4_1", "SmolLM2 Q8_0"]
        (turn,) = run.turns
        assert turn.winner_pane_id == run.panes[1].id
        assert turn.reply_of(run.panes[0].id).text == "Divide and conquer."
        (rate_q8,) = [r for r in compare.win_rates() if r.model == "SmolLM2 Q8_0"]
        assert rate_q8.wins == 1
        (eval_set,) = evals.sets()
        (eval_run,) = evals.runs(eval_set.id)
        assert eval_run.status == "complete"
        (model_summary,) = evals.summary(eval_run.id)
        assert (model_summary.passed, model_summary.total) == (1, 2)
