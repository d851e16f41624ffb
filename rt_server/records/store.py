"""The records store: a bounded in-memory queue in front of the database, and its writer.

Observers only :meth:`RecordStore.put` (never awaits, never blocks the audio path). The
writer task (:meth:`RecordStore.run`, owned by the lifespan) writes the queue in batches,
one transaction each, every second and as soon as a session ends. While the database is
down, records stay queued and the writer retries with backoff (0.5 s doubling to 30 s);
failures are logged once per outage and counted. Writes are idempotent (insert-or-ignore
on primary keys), so a batch whose commit was lost on the way back is safely written again.

A batch the database refuses for its content (an integrity or data error, not an outage)
is written record by record and only the refused ones are dropped and counted, so one bad
record never stalls the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from loguru import logger
from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import Connection, bindparam, delete, event, select, text, update
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from rt_server.records.model import Ended, Event, Record, Started, discussion_filename, utcnow
from rt_server.records.schema import conversations, discussions, events
from rt_server.records.sqlite import REFUSED, SqliteWriter

__all__ = ["Ended", "Event", "Record", "RecordStore", "Started", "create_engine", "utcnow"]

BATCH = 500  # records per transaction
FLUSH_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
_MIGRATION_LOCK = 0x72745F7265636F72  # pg_advisory_xact_lock key: instances migrate one at a time
_SQLITE_TIMEOUT = 15.0  # seconds to wait for another connection's lock on the file


def create_engine(url: str) -> AsyncEngine:
    """An engine for ``url`` (``sqlite+aiosqlite`` or ``postgresql+asyncpg``).

    The JSON column is written with orjson: the standard library's encoder was most of a
    row's cost, and PostgreSQL's rows are built on the event loop the audio runs on (a
    SQLite file's are built on :class:`SqliteWriter`'s thread)."""
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url, connect_args={"timeout": _SQLITE_TIMEOUT}, json_serializer=_json
        )
        if (database := _sqlite_file(engine)) is not None:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # pre-ping: pooled connections die with a database restart; find out before using one
    return create_async_engine(
        url, pool_pre_ping=True, pool_size=5, max_overflow=5, json_serializer=_json
    )


def _sqlite_file(engine: AsyncEngine) -> str | None:
    """The file ``engine`` keeps its SQLite database in; None for PostgreSQL or ``:memory:``."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return database


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")  # deleting a conversation cascades
    cursor.close()


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision``. Processes sharing the database take turns:
    instances on one PostgreSQL, or ``--workers N`` on one SQLite file."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})"))
        else:
            # The SQLite driver opens no transaction for DDL, so two workers would both
            # create the tables; an exclusive one makes the second wait (busy timeout).
            await conn.exec_driver_sql("BEGIN EXCLUSIVE")
        await conn.run_sync(_upgrade, revision)


def _upgrade(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


class StoreMetrics:
    """Prometheus series of the records writer (``rt_records_*`` on ``/metrics``)."""

    def __init__(self, registry: CollectorRegistry, queued: Any) -> None:
        self.registry = registry
        self.written = Counter(
            "rt_records_written", "Records written to the database", registry=registry
        )
        self.failures = Counter(
            "rt_records_write_failures",
            "Failed attempts to write records (they stay queued and are retried)",
            registry=registry,
        )
        self.dropped = Counter(
            "rt_records_dropped",
            "Records lost: the queue was full, or the database refused their content",
            registry=registry,
        )
        self.queued = Gauge("rt_records_queued", "Records waiting to be written", registry=registry)
        self.queued.set_function(queued)


class RecordStore:
    """The queue of records and the database they go to."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        queue_limit: int = 100_000,
        retention_days: int = 30,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.engine = engine
        self.retention_days = retention_days
        self._queue: deque[Record] = deque()
        self._limit = queue_limit
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._migrated = False
        self._failing = False
        # A SQLite file is written on a thread of its own (see .sqlite); PostgreSQL
        # through the engine (asyncpg: one round trip per statement, no thread).
        database = _sqlite_file(engine)
        self.sqlite = (
            SqliteWriter(database, timeout=_SQLITE_TIMEOUT) if database is not None else None
        )
        self.metrics = StoreMetrics(registry or CollectorRegistry(), lambda: len(self._queue))

    # ------------------------------------------------------------------ the observer side

    def put(self, record: Record) -> None:
        """Queue ``record`` for writing; never blocks (a full queue loses it, counted)."""
        if len(self._queue) >= self._limit:
            self.metrics.dropped.inc()
            logger.warning("records: queue full ({} records), a record was lost", self._limit)
            return
        self._queue.append(record)
        if len(self._queue) >= BATCH:
            self._wake.set()

    def wake(self) -> None:
        """Write soon (a session ended)."""
        self._wake.set()

    @property
    def queued(self) -> int:
        return len(self._queue)

    # --------------------------------------------------------------------- the writer

    async def start(self) -> None:
        """Migrate and purge once at start-up; a database that is down is only logged."""
        try:
            await self._ensure_schema()
            await self.purge()
        except Exception as exc:
            logger.error(
                "records: database unavailable at start-up ({}); will retry", describe(exc)
            )

    async def run(self) -> None:
        """Write queued records until cancelled; back off while the database is down."""
        backoff = 0.0
        while True:
            if backoff:
                await asyncio.sleep(backoff)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), FLUSH_SECONDS)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                backoff = min(max(backoff * 2, 0.5), MAX_BACKOFF_SECONDS)
            else:
                backoff = 0.0

    async def purge_every(self, seconds: float) -> None:
        """Purge expired records every ``seconds`` until cancelled."""
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.purge()
            except Exception as exc:
                logger.warning("records: purge failed ({})", describe(exc))

    async def flush(self) -> None:
        """Write every queued record now; raise if the database fails (they stay queued)."""
        async with self._lock:
            try:
                await self._ensure_schema()
                while self._queue:
                    batch = list(itertools.islice(self._queue, BATCH))
                    await self._write(batch)
                    for _ in batch:
                        self._queue.popleft()
                    self.metrics.written.inc(len(batch))
            except Exception as exc:
                self.metrics.failures.inc()
                if not self._failing:
                    self._failing = True
                    logger.error(
                        "records: cannot write ({}); {} records kept for retry",
                        describe(exc),
                        len(self._queue),
                    )
                raise
            if self._failing:
                self._failing = False
                logger.info("records: the database is back; the queue is written")

    def count(self, name: str) -> float:
        """A counter's value, e.g. ``count("dropped")``."""
        return self.metrics.registry.get_sample_value(f"rt_records_{name}_total") or 0.0

    async def close(self, grace: float = 10.0) -> None:
        """Write what is left (for at most ``grace`` seconds), then release the engine."""
        try:
            async with asyncio.timeout(grace):
                await self.flush()
        except Exception as exc:
            logger.error(
                "records: {} records not written at shutdown ({})", self.queued, describe(exc)
            )
        if self.sqlite is not None:
            await self.sqlite.close()
        await self.engine.dispose()

    async def purge(self, now: datetime | None = None) -> int:
        """Delete conversations older than the retention period; how many went."""
        if not self.retention_days:
            return 0
        cutoff = (now or utcnow()) - timedelta(days=self.retention_days)
        old = select(conversations.c.id).where(conversations.c.started_at < cutoff)
        async with self.engine.begin() as conn:
            await conn.execute(delete(events).where(events.c.conversation_id.in_(old)))
            result = await conn.execute(delete(conversations).where(conversations.c.id.in_(old)))
            # Their saved files stay: they are the user's.
            await conn.execute(delete(discussions).where(discussions.c.started_at < cutoff))
        if result.rowcount:
            logger.info("records: purged {} conversations older than {}", result.rowcount, cutoff)
        return int(result.rowcount or 0)

    async def _ensure_schema(self) -> None:
        if not self._migrated:
            await migrate(self.engine)
            self._migrated = True

    async def _write(self, batch: list[Record]) -> None:
        try:
            if self.sqlite is not None:
                await self.sqlite.write(batch)
            else:
                async with self.engine.begin() as conn:
                    await write_records(conn, batch)
        except Exception as exc:
            if not _refused_content(exc):
                raise
            if len(batch) > 1:
                for record in batch:  # find the bad one; write the rest
                    await self._write([record])
                return
            self.metrics.dropped.inc()
            logger.error("records: the database refused a record ({})", describe(exc))


async def write_records(conn: AsyncConnection, batch: Iterable[Record]) -> None:
    """Write ``batch`` in the transaction ``conn`` is in; writing it twice changes nothing."""
    started = [r for r in batch if isinstance(r, Started)]
    happened = [r for r in batch if isinstance(r, Event)]
    ended = [r for r in batch if isinstance(r, Ended)]
    insert = _insert_or_ignore(conn.dialect.name)
    if started:
        rows = [{**_row(r), "discussion_id": r.discussion_id or r.id} for r in started]
        await conn.execute(insert(conversations).on_conflict_do_nothing(), rows)
        own = [
            {
                "id": r.id,
                "filename": discussion_filename(r.started_at, r.id),
                "started_at": r.started_at,
            }
            for r in started
            if r.discussion_id is None
        ]
        if own:
            await conn.execute(insert(discussions).on_conflict_do_nothing(), own)
    if happened:
        # A conversation deleted (or purged) while it was live takes its late events with it.
        ids = {r.conversation_id for r in happened}
        query = select(conversations.c.id).where(conversations.c.id.in_(ids))
        known = set((await conn.scalars(query)).all())
        rows = [_row(r) for r in happened if r.conversation_id in known]
        if rows:
            await conn.execute(insert(events).on_conflict_do_nothing(), rows)
    if ended:
        await conn.execute(_END, [_end_row(r) for r in ended])


_END = (
    update(conversations)
    .where(conversations.c.id == bindparam("b_id"))
    .values(
        ended_at=bindparam("b_ended_at"),
        close_code=bindparam("b_close_code"),
        close_reason=bindparam("b_close_reason"),
        total_tokens=bindparam("b_total_tokens"),
    )
)


_COLUMNS = {kind: tuple(f.name for f in fields(kind)) for kind in (Started, Event, Ended)}


def _row(record: Started | Event) -> dict[str, Any]:
    return {name: getattr(record, name) for name in _COLUMNS[type(record)]}


def _end_row(record: Ended) -> dict[str, Any]:
    return {f"b_{name}": getattr(record, name) for name in _COLUMNS[Ended]}


def _insert_or_ignore(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def _refused_content(exc: Exception) -> bool:
    """The database refused what we sent (not: it is unreachable)."""
    if isinstance(exc, IntegrityError | DataError | REFUSED):
        return True
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)


def describe(exc: BaseException) -> str:
    """A one-line reason, without SQL or parameters (they may hold conversation text)."""
    if isinstance(exc, StatementError) and exc.orig is not None:
        exc = exc.orig
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
