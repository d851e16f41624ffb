"""Alembic migrations of the records store; :func:`rt_server.records.store.migrate` runs them."""
