"""The records service for the application's lifespan: the store, its writer and purge, the
recorder that observes sessions, and the discussions' transcript files."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from loguru import logger
from prometheus_client import CollectorRegistry

from rt_server.config import Settings
from rt_server.observe import Observer
from rt_server.records.discussions import Discussions
from rt_server.records.recorder import Recorder
from rt_server.records.store import RecordStore, create_engine

PURGE_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class Records:
    """The running records service (``store`` is None when recording is off)."""

    store: RecordStore | None = None
    recorder: Recorder | None = None
    discussions: Discussions | None = None

    @property
    def observers(self) -> tuple[Observer, ...]:
        found: list[Observer] = []
        if self.recorder is not None:
            found.append(self.recorder)
        if self.discussions is not None:
            found.append(self.discussions)
        return tuple(found)


@contextlib.asynccontextmanager
async def open_records(
    settings: Settings, registry: CollectorRegistry | None = None
) -> AsyncIterator[Records]:
    """Migrate, start the writer and the hourly purge; write what is left on the way out."""
    if settings.records_url is None:
        yield Records()
        return
    store = RecordStore(
        create_engine(settings.records_url),
        queue_limit=settings.records_queue,
        retention_days=settings.records_retention_days,
        registry=registry,
    )
    await store.start()
    logger.info(
        "records: {} (retention {} days)", store.engine.url.get_backend_name(), store.retention_days
    )
    directory = Path(settings.discussions_dir) if settings.discussions_dir else None
    discussions = Discussions(store, directory)
    tasks = [
        asyncio.create_task(store.run()),
        asyncio.create_task(store.purge_every(PURGE_SECONDS)),
        asyncio.create_task(discussions.autosave()),
    ]
    try:
        yield Records(store, Recorder(store, max_events=settings.records_max_events), discussions)
    finally:
        for task in tasks:
            task.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if not isinstance(result, asyncio.CancelledError):
                logger.error("records: a background task failed: {!r}", result)
        await store.close()
