"""Migrations: an empty database and a database at the first revision, with data, both
upgrade to head (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from pathlib import Path

from sqlalchemy import inspect, text

from rt_server.records import queries
from rt_server.records.store import Ended, Event, RecordStore, Started, create_engine, migrate


async def _columns(store: RecordStore, table: str) -> set[str]:
    async with store.engine.connect() as conn:
        found = await conn.run_sync(lambda sync: inspect(sync).get_columns(table))
    return {column["name"] for column in found}


async def _revision(store: RecordStore) -> str:
    async with store.engine.connect() as conn:
        return str(await conn.scalar(text("SELECT version_num FROM alembic_version")))


async def test_an_empty_database_upgrades_to_head(database_url: str) -> None:
    store = RecordStore(create_engine(database_url))
    await store.start()
    await migrate(store.engine)  # a second run (another instance) changes nothing
    assert await _revision(store) == "0003"
    assert "total_tokens" in await _columns(store, "conversations")
    await store.close()


async def test_a_first_revision_database_with_data_upgrades_to_head(database_url: str) -> None:
    engine = create_engine(database_url)
    await migrate(engine, "0001")
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO conversations (id, started_at, dialect, backend, profile, peer) "
                "VALUES ('before', :at, 'realtime', 'openai', 'default', '?')"
            ),
            {"at": datetime(2026, 1, 1)},
        )
    store = RecordStore(engine, retention_days=0)
    assert "total_tokens" not in await _columns(store, "conversations")
    store.put(Started("after", datetime(2026, 1, 2), "realtime", "openai", "default", "?"))
    store.put(Event("after", 1, datetime(2026, 1, 2), "usage", None, None, {"total_tokens": 7}))
    store.put(Ended("after", datetime(2026, 1, 2), 1000, "session ended", 7))
    await store.flush()  # upgrades first, then writes
    assert await _revision(store) == "0003"
    found = await queries.get_conversation(engine, "before")
    assert found is not None and found[0].total_tokens == 0
    after = await queries.get_conversation(engine, "after")
    assert after is not None and after[0].total_tokens == 7 and len(after[1]) == 1
    await store.close()


async def test_workers_starting_together_on_one_sqlite_file_take_turns(tmp_path: Path) -> None:
    """`uvicorn --workers N`: each worker process migrates the same file at start-up."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'records.sqlite3'}"
    script = (
        "import asyncio, sys\n"
        "from rt_server.records.store import create_engine, migrate\n"
        "asyncio.run(migrate(create_engine(sys.argv[1])))\n"
    )
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, url, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(4)
    ]
    async with asyncio.timeout(60):
        results = [await worker.communicate() for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * 4, [err for _, err in results]
    store = RecordStore(create_engine(url))
    assert await _revision(store) == "0003"
    await store.close()
