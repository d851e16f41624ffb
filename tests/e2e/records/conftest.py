"""Fixtures: a records database (SQLite file, or a database on a throwaway PostgreSQL
cluster) and an rt_server with records on, whose store the test can flush."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from rt_server.backends import Backend
from rt_server.config import Settings, async_database_url
from rt_server.main import create_app
from rt_server.records.service import Records
from rt_server.runtime import app_runtime
from rt_server.serving import serve
from tests.support.postgres import Cluster, find_bin, remove_cluster, start_cluster

ADMIN = "admin-token-for-tests"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    if find_bin() is None:
        pytest.skip("PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql)")
    cluster = start_cluster()
    yield cluster
    remove_cluster(cluster)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty records database: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/records.sqlite3"
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    return async_database_url(await cluster.create_database(f"t{uuid.uuid4().hex[:12]}"))


@dataclass
class Live:
    """A running rt_server with records on."""

    http_url: str
    ws_url: str
    records: Records

    async def settle(self) -> None:
        """Every session has ended and everything recorded is in the database."""
        assert self.records.recorder is not None and self.records.store is not None
        await self.records.recorder.settled()
        await self.records.store.flush()

    def api(self, token: str | None = ADMIN) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.http_url, headers=headers, timeout=30)


@asynccontextmanager
async def records_server(
    settings: Settings, backend: Backend | None = None, **options: Any
) -> AsyncIterator[Live]:
    app = create_app(settings, backend, **options)
    async with serve(app) as served:
        yield Live(served.http_url, f"{served.ws_url}/realtime", app_runtime(app).records)


def with_records(settings: Settings, url: str, **changes: Any) -> Settings:
    return replace(settings, **{"records_url": url, "admin_token": ADMIN, **changes})
