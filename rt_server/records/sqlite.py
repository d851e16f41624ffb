"""The SQLite records writer: each batch in one transaction, on a thread of its own.

Through SQLAlchemy's async engine, a batch cost some twenty hand-overs between the event
loop and aiosqlite's thread, and SQLAlchemy's per-row work, all on the loop the audio
runs on (measured in ``benchmarks/DECISIONS.md``). Here the loop hands the batch over once; the rows are built, bound and stepped on the writer's thread
with the standard library's driver, which lets go of the GIL while SQLite works.

Rows are stored exactly as the SQLAlchemy tables in :mod:`.schema` read them: times as
``YYYY-MM-DD HH:MM:SS.ffffff`` text, ``data`` as JSON text (``null`` for None). Migrations,
retention and the REST API stay on the async engine; SQLite's locking keeps the two
connections apart.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import orjson

from rt_server.records.model import Ended, Event, Record, Started, discussion_filename

#: What SQLite refuses for the content of a record (not: the database is unavailable).
REFUSED = sqlite3.IntegrityError | sqlite3.DataError

_STARTED = (
    "INSERT INTO conversations (id, started_at, dialect, backend, profile, peer, discussion_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_OWN_DISCUSSION = (
    "INSERT INTO discussions (id, filename, started_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
)
# A conversation deleted (or purged) while it was live takes its late events with it.
_EVENT = (
    "INSERT INTO events (conversation_id, seq, at, kind, role, text, data)"
    " SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7"
    " WHERE EXISTS (SELECT 1 FROM conversations WHERE id = ?1) ON CONFLICT DO NOTHING"
)
_ENDED = (
    "UPDATE conversations SET ended_at = ?, close_code = ?, close_reason = ?, total_tokens = ?"
    " WHERE id = ?"
)


class SqliteWriter:
    """Writes batches of records to the SQLite file at ``path``, waiting up to ``timeout``
    seconds for another connection's lock; idempotent like the store."""

    def __init__(self, path: str, *, timeout: float) -> None:
        self.path = path
        self._timeout = timeout
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="records-sqlite")
        self.connection: sqlite3.Connection | None = None  # opened on the writer's thread

    async def write(self, batch: list[Record]) -> None:
        """Write ``batch`` in one transaction; raise what SQLite raised (nothing written)."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._write, batch)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown()

    # ------------------------------------------------------------- on the writer's thread

    def _write(self, batch: list[Record]) -> None:
        db = self._connect()
        started = [_started(r) for r in batch if isinstance(r, Started)]
        happened = [_event(r) for r in batch if isinstance(r, Event)]
        ended = [_ended(r) for r in batch if isinstance(r, Ended)]
        db.execute("BEGIN IMMEDIATE")
        try:
            if started:
                db.executemany(_STARTED, started)
                own = [_own_discussion(r) for r in batch if isinstance(r, Started)]
                db.executemany(_OWN_DISCUSSION, [row for row in own if row is not None])
            if happened:
                db.executemany(_EVENT, happened)
            if ended:
                db.executemany(_ENDED, ended)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _connect(self) -> sqlite3.Connection:
        if self.connection is None:
            # isolation_level=None: the transaction is ours (BEGIN ... COMMIT above).
            db = sqlite3.connect(
                self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA foreign_keys=ON")
            self.connection = db
        return self.connection

    def _close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def _time(value: datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S.%f}"


def _started(r: Started) -> tuple[object, ...]:
    discussion = r.discussion_id or r.id
    return (r.id, _time(r.started_at), r.dialect, r.backend, r.profile, r.peer, discussion)


def _own_discussion(r: Started) -> tuple[object, ...] | None:
    if r.discussion_id is not None:
        return None
    return (r.id, discussion_filename(r.started_at, r.id), _time(r.started_at))


def _event(r: Event) -> tuple[object, ...]:
    data = orjson.dumps(r.data).decode()
    return (r.conversation_id, r.seq, _time(r.at), r.kind, r.role, r.text, data)


def _ended(r: Ended) -> tuple[object, ...]:
    return (_time(r.ended_at), r.close_code, r.close_reason, r.total_tokens, r.id)
