"""Alembic revision scripts, one per schema version, named `NNNN_<slug>.py`."""
