"""The records service for the application's lifespan: the store, its writer and purge, and
the recorder that observes sessions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from loguru import logger
from prometheus_client import CollectorRegistry

from rt_server.config import Settings
from rt_server.observe import Observer
from rt_server.records.recorder import Recorder
from rt_server.records.store import RecordStore, create_engine

PURGE_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class Records:
    """The running records service (``store`` is None when recording is off)."""

    store: RecordStore | None = None
    recorder: Recorder | None = None

    @property
    def observers(self) -> tuple[Observer, ...]:
        return (self.recorder,) if self.recorder is not None else ()


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
    tasks = [
        asyncio.create_task(store.run()),
        asyncio.create_task(store.purge_every(PURGE_SECONDS)),
    ]
    try:
        yield Records(store, Recorder(store, max_events=settings.records_max_events))
    finally:
        for task in tasks:
            task.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if not isinstance(result, asyncio.CancelledError):
                logger.error("records: a background task failed: {!r}", result)
        await store.close()
