"""Alembic environment: run on the connection :func:`rt_server.records.store.migrate` passes.

The same scripts serve SQLite and PostgreSQL; they are run programmatically (upgrade to
head at start-up), never from an ``alembic.ini``.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
)
with context.begin_transaction():
    context.run_migrations()
