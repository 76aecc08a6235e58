"""Load options saved per model: keys, round trips of every field, replace, forget, the CHECK."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import pytest
from sqlalchemy.exc import IntegrityError

from app.model_options import ModelOptionsStore, model_key
from app.store import Database, open_database
from app.store.models import KV_CACHE_TYPES
from runtimes.base import KVCacheType, LoadOptions

KEY = "llamacpp:/models/x.gguf"
EVERY_FIELD_CHANGED = LoadOptions(
    n_ctx=8192,
    n_gpu_layers=-1,
    n_threads=6,
    n_batch=256,
    flash_attn=True,
    kv_cache_type="q4_0",
    use_mmap=False,
    use_mlock=True,
    keep_alive_s=90.5,
)


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[ModelOptionsStore]:
    db = open_database(tmp_path / "history.sqlite3")
    yield ModelOptionsStore(db)
    db.close()


def test_a_model_never_saved_has_no_options(store: ModelOptionsStore) -> None:
    assert store.get(KEY) is None


def test_every_field_survives_a_round_trip(store: ModelOptionsStore) -> None:
    store.save(KEY, EVERY_FIELD_CHANGED)
    assert store.get(KEY) == EVERY_FIELD_CHANGED
    assert store.get(KEY) != LoadOptions(), "the fixture really differs from the defaults"


def test_defaults_and_nones_survive_a_round_trip(store: ModelOptionsStore) -> None:
    store.save(KEY, LoadOptions())
    saved = store.get(KEY)
    assert saved == LoadOptions()
    assert saved is not None and saved.n_threads is None and saved.keep_alive_s is None


def test_saving_again_replaces_and_other_models_are_untouched(store: ModelOptionsStore) -> None:
    store.save(KEY, LoadOptions(n_ctx=1024))
    store.save("ollama:llama3.2", LoadOptions(n_ctx=2048))
    store.save(KEY, EVERY_FIELD_CHANGED)
    assert store.get(KEY) == EVERY_FIELD_CHANGED
    assert store.get("ollama:llama3.2") == LoadOptions(n_ctx=2048)
    assert store.keys() == [KEY, "ollama:llama3.2"]


def test_forget_drops_only_that_model_and_is_idempotent(store: ModelOptionsStore) -> None:
    store.save(KEY, LoadOptions())
    store.save("ollama:llama3.2", LoadOptions())
    store.forget(KEY)
    store.forget(KEY)
    store.forget("never-saved")
    assert store.get(KEY) is None
    assert store.keys() == ["ollama:llama3.2"]


def test_options_persist_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    with open_database(path) as db:
        ModelOptionsStore(db).save(KEY, EVERY_FIELD_CHANGED)
    with open_database(path) as db:
        assert ModelOptionsStore(db).get(KEY) == EVERY_FIELD_CHANGED


def test_the_table_refuses_an_unknown_kv_cache_type(tmp_path: Path) -> None:
    with open_database(tmp_path / "h.sqlite3") as db:
        _insert_kv_type(db, "q8_0")
        with pytest.raises(IntegrityError, match="CHECK"):
            _insert_kv_type(db, "q5_1")


def test_the_table_accepts_exactly_the_protocols_kv_cache_types() -> None:
    assert get_args(KVCacheType) == KV_CACHE_TYPES


def test_file_model_keys_hold_the_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert model_key("llamacpp", "m/x.gguf") == f"llamacpp:{tmp_path / 'm' / 'x.gguf'}"
    assert model_key("llamacpp", tmp_path / "a" / ".." / "y.gguf") == f"llamacpp:{tmp_path}/y.gguf"
    assert model_key("ollama", "llama3.2:3b") == "ollama:llama3.2:3b"
    assert model_key("openai", Path("gpt-oss")) == "openai:gpt-oss"


def _insert_kv_type(db: Database, kv_type: str) -> None:
    with db.engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO model_load_options (model_key, n_ctx, n_gpu_layers, n_batch, flash_attn,"
            " kv_cache_type, use_mmap, use_mlock, updated_at)"
            " VALUES (?, 4096, 0, 512, 0, ?, 1, 0, '2025-01-01 00:00:00')",
            (f"k-{kv_type}", kv_type),
        )
