"""Conversation records: every session, kept in a database and served by a REST API.

- :class:`~rt_server.records.recorder.Recorder` is the session observer; it turns notes
  into records and queues them (no I/O, never blocks the audio path);
- :class:`~rt_server.records.store.RecordStore` owns the queue, the writer task (batches,
  retries with backoff while the database is down), retention and the engine; a SQLite
  file is written on a thread of its own (:mod:`~rt_server.records.sqlite`);
- :mod:`~rt_server.records.api` is ``/api/conversations`` (admin token required);
- ``migrations/`` are the Alembic scripts, run to head at start-up (SQLite and PostgreSQL).

:func:`~rt_server.records.service.open_records` wires them for the application's lifespan.
"""
