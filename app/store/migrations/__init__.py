"""Alembic migrations of the history database (run by `app.store.database.open_database`)."""
