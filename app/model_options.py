"""Load options remembered per model (context, GPU layers, KV cache, ...) in the database."""

from __future__ import annotations

import os
from typing import cast

from app.store import Database
from app.store.models import ModelLoadOptions, utc_now
from runtimes.base import KVCacheType, LoadOptions

_LOCAL_RUNTIMES = frozenset({"llamacpp"})
"""Runtimes whose models are files here: their keys hold the absolute path."""


def model_key(runtime: str, model: str | os.PathLike[str]) -> str:
    """The key a model's options and its loaded instance go by: runtime and model.

    Examples: "llamacpp:/models/x.gguf" (a file runtime gets the absolute path),
    "ollama:llama3.2".
    """
    name = os.fspath(model)
    if runtime in _LOCAL_RUNTIMES:
        name = os.path.abspath(os.path.expanduser(name))
    return f"{runtime}:{name}"


class ModelOptionsStore:
    """Saves, reads and forgets each model's load options.

    Args:
        db: the open history database.

    Every method raises `DatabaseUnavailable` when the database is locked, full or read-only.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def database(self) -> Database:
        """The database the options live in (other per-model records share it)."""
        return self._db

    def get(self, model_key: str) -> LoadOptions | None:
        """The options saved for `model_key`; None when none were ever saved."""
        with self._db.session() as session:
            row = session.get(ModelLoadOptions, model_key)
            return _options_from_row(row) if row is not None else None

    def save(self, model_key: str, options: LoadOptions) -> None:
        """Remember `options` for `model_key`, replacing what was saved before."""
        with self._db.session() as session:
            row = session.get(ModelLoadOptions, model_key)
            if row is None:
                row = ModelLoadOptions(model_key=model_key)
                session.add(row)
            row.n_ctx = options.n_ctx
            row.n_gpu_layers = options.n_gpu_layers
            row.n_threads = options.n_threads
            row.n_batch = options.n_batch
            row.flash_attn = options.flash_attn
            row.kv_cache_type = options.kv_cache_type
            row.use_mmap = options.use_mmap
            row.use_mlock = options.use_mlock
            row.keep_alive_s = options.keep_alive_s
            row.updated_at = utc_now()

    def forget(self, model_key: str) -> None:
        """Drop what was saved for `model_key` (nothing happens when nothing was)."""
        with self._db.session() as session:
            row = session.get(ModelLoadOptions, model_key)
            if row is not None:
                session.delete(row)

    def keys(self) -> list[str]:
        """Every model key with saved options, sorted."""
        with self._db.session() as session:
            rows = session.query(ModelLoadOptions.model_key).order_by(ModelLoadOptions.model_key)
            return [key for (key,) in rows]


def _options_from_row(row: ModelLoadOptions) -> LoadOptions:
    return LoadOptions(
        n_ctx=row.n_ctx,
        n_gpu_layers=row.n_gpu_layers,
        n_threads=row.n_threads,
        n_batch=row.n_batch,
        flash_attn=row.flash_attn,
        kv_cache_type=cast(KVCacheType, row.kv_cache_type),  # the table's CHECK allows no other
        use_mmap=row.use_mmap,
        use_mlock=row.use_mlock,
        keep_alive_s=row.keep_alive_s,
    )
