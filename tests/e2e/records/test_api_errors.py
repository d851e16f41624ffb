"""REST errors: statuses and ``{"error": {"code", "message"}}`` bodies."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from rt_server.emulator import RunningEmulator
from tests.conftest import openai_settings
from tests.e2e.records.conftest import ADMIN, records_server, with_records


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/records.sqlite3"


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/conversations/nope", 404, "not_found"),
        ("/api/conversations/bad%20id!", 400, "invalid_id"),
        ("/api/conversations/bad%20id!/transcript.md", 400, "invalid_id"),
        ("/api/conversations?since=yesterday", 422, "invalid_request"),
        ("/api/conversations?limit=0", 422, "invalid_request"),
        ("/api/conversations?limit=many", 422, "invalid_request"),
        ("/api/conversations?cursor=!!!", 400, "invalid_cursor"),
        ("/api/conversations?cursor=abc&offset=2", 400, "invalid_paging"),
        (
            "/api/conversations?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
            400,
            "invalid_filter",
        ),
        # times that exist in their zone but not in UTC (were a plain-text 500)
        ("/api/conversations?since=0001-01-01T00:00:00%2B00:01", 400, "invalid_filter"),
        ("/api/conversations?until=9999-12-31T23:59:59-14:00", 400, "invalid_filter"),
        ("/api/conversations?limit=99999999999999999999999", 422, "invalid_request"),
        ("/api/conversations?offset=-1", 422, "invalid_request"),
        ("/api/conversations?cursor=%ff%fe", 400, "invalid_cursor"),
    ],
)
async def test_bad_requests(
    emulator: RunningEmulator, sqlite_url: str, path: str, status: int, code: str
) -> None:
    settings = with_records(openai_settings(emulator.http_url), sqlite_url)
    async with records_server(settings) as live, live.api() as api:
        response = await api.get(path)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Bearer wrong"}, 401, "unauthorized"),
        ({"Authorization": f"Basic {ADMIN}"}, 401, "unauthorized"),
        ({"Authorization": f"Bearer {ADMIN}"}, 200, None),
    ],
)
async def test_the_admin_token_is_required(
    emulator: RunningEmulator,
    sqlite_url: str,
    headers: dict[str, str],
    status: int,
    code: str | None,
) -> None:
    settings = with_records(openai_settings(emulator.http_url), sqlite_url)
    async with records_server(settings) as live, httpx.AsyncClient() as http:
        response = await http.delete(f"{live.http_url}/api/conversations/x", headers=headers)
        listed = await http.get(f"{live.http_url}/api/conversations", headers=headers)
    assert listed.status_code == status
    if code is not None:
        assert response.status_code == status
        assert response.json()["error"]["code"] == code
        assert response.headers["www-authenticate"] == "Bearer"


async def test_without_an_admin_token_the_api_is_disabled(
    emulator: RunningEmulator, sqlite_url: str
) -> None:
    settings = with_records(openai_settings(emulator.http_url), sqlite_url, admin_token=None)
    async with records_server(settings) as live, live.api("anything") as api:
        response = await api.get("/api/conversations")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "admin_disabled"


async def test_with_records_off_the_api_says_so(emulator: RunningEmulator) -> None:
    settings = replace(openai_settings(emulator.http_url), admin_token=ADMIN)
    async with records_server(settings) as live, live.api() as api:
        response = await api.get("/api/conversations")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "records_disabled"


# main.py's TwiML route (GET and POST, one function) makes FastAPI warn; not ours.
async def test_the_api_is_in_the_openapi_document(
    emulator: RunningEmulator, sqlite_url: str
) -> None:
    settings = with_records(openai_settings(emulator.http_url), sqlite_url)
    async with records_server(settings) as live, live.api(None) as api:
        document = (await api.get("/openapi.json")).json()
    paths = document["paths"]
    assert {"get"} <= set(paths["/api/conversations"])
    assert {"get", "delete"} <= set(paths["/api/conversations/{id}"])
    assert "/api/conversations/{id}/transcript.md" in paths
    assert "post" in paths["/api/session"]
    assert "AdminToken" in document["components"]["securitySchemes"]


async def test_other_routes_keep_fastapi_validation_errors(
    emulator: RunningEmulator, sqlite_url: str
) -> None:
    settings = with_records(openai_settings(emulator.http_url), sqlite_url)
    async with records_server(settings) as live, live.api(None) as api:
        response = await api.get("/health")
    assert response.status_code == 200


@pytest.mark.parametrize("value", ["%00", "%ff", "%C3%A9%F0%9F%98%80", "x" * 32, "%27%3B--"])
async def test_odd_text_filters_are_answered_not_failed(
    emulator: RunningEmulator, sqlite_url: str, value: str
) -> None:
    settings = with_records(openai_settings(emulator.http_url), sqlite_url)
    async with records_server(settings) as live, live.api() as api:
        for name in ("q", "dialect"):
            response = await api.get(f"/api/conversations?{name}={value}")
            assert response.status_code == 200, response.text
            assert response.json()["conversations"] == []
