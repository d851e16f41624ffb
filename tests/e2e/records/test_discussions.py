"""The proxy's discussions API, as its client calls it: start -> session -> save -> list ->
content, the Markdown files in ``DISCUSSIONS_DIR``, auto-save at session end, the test
discussion, and what is refused."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from rt_server.config import Settings
from rt_server.emulator import RunningEmulator
from tests.conftest import openai_settings
from tests.e2e.records.conftest import Live, records_server, with_records
from tests.e2e.twilio.test_calls import until as poll
from tests.support.harness import client, connected, is_type, send_json, until


def discussion_settings(emulator: RunningEmulator, database_url: str, folder: Path) -> Settings:
    settings = with_records(openai_settings(emulator.http_url), database_url)
    return replace(settings, discussions_dir=str(folder))


async def talk(live: Live, query: str, text: str) -> None:
    """One typed turn on /realtime, answered."""
    async with client(f"{live.ws_url}{query}", max_queue=None) as ws:
        await connected(ws)
        await send_json(ws, {"type": "user_message", "text": text})
        await until(ws, is_type("control", "text_done"))


async def test_start_session_save_list_content(
    emulator: RunningEmulator, database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "discussions"
    async with (
        records_server(discussion_settings(emulator, database_url, folder)) as live,
        live.api() as api,
    ):
        started = await api.post("/api/discussions/start", json={"title": "Planning call"})
        assert started.status_code == 201, started.text
        body: dict[str, Any] = started.json()
        session_id, filename = body["sessionId"], body["filename"]
        assert body["startedAt"].endswith("Z") or "+00:00" in body["startedAt"]
        await talk(live, f"?discussion={session_id}", "first question")
        await talk(live, f"?discussion={session_id}", "second question")  # the same discussion

        saved = await api.post(f"/api/discussions/{session_id}/save")
        listed = await api.get("/api/discussions")
        markdown = await api.get(f"/api/discussions/{filename}/content")
        as_json = await api.get(f"/api/discussions/{filename}/content?format=json")

    assert saved.status_code == 200, saved.text
    assert saved.json() == {"sessionId": session_id, "filename": filename, "turns": 4}
    [entry] = [d for d in listed.json() if d["sessionId"] == session_id]
    assert entry["filename"] == filename
    assert entry["title"] == "Planning call"
    assert entry["turns"] == 4
    assert entry["endedAt"] is not None
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text.startswith("# Planning call")
    assert "**User**" in markdown.text
    assert "first question" in markdown.text
    assert markdown.text.index("first question") < markdown.text.index("second question")
    roles = [(t["role"], t["text"]) for t in as_json.json()["turns"]]
    assert roles[0] == ("user", "first question")
    assert roles[1][0] == "assistant"
    assert "first question" in roles[1][1]
    assert as_json.json()["filename"] == filename
    assert (folder / filename).read_text(encoding="utf-8") == markdown.text  # the saved file


async def test_every_session_is_a_discussion_saved_when_it_ends(
    emulator: RunningEmulator, database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "discussions"
    async with (
        records_server(discussion_settings(emulator, database_url, folder)) as live,
        live.api() as api,
    ):
        await talk(live, "", "no discussion asked for")
        await live.settle()
        [entry] = (await api.get("/api/discussions")).json()
        path = folder / entry["filename"]
        await poll(path.exists)  # auto-save runs once the session's records are written
        content = await api.get(f"/api/discussions/{entry['filename']}/content")
    assert entry["title"] is None
    assert entry["turns"] == 2
    assert "no discussion asked for" in path.read_text(encoding="utf-8")
    assert content.text == path.read_text(encoding="utf-8")


async def test_the_test_discussion_has_two_turns_and_a_file(
    emulator: RunningEmulator, database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "discussions"
    async with (
        records_server(discussion_settings(emulator, database_url, folder)) as live,
        live.api() as api,
    ):
        made = await api.post("/api/discussions/test")
        listed = await api.get("/api/discussions")
    assert made.status_code == 201, made.text
    assert made.json()["turns"] == 2
    assert made.json()["endedAt"] is not None
    assert listed.json()[0]["sessionId"] == made.json()["sessionId"]
    text = (folder / made.json()["filename"]).read_text(encoding="utf-8")
    assert text.count("**User**") == 1
    assert text.count("**Assistant**") == 1


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/discussions/nope.md/content", 404, "not_found"),
        ("GET", "/api/discussions/..%2Fsecret.md/content", 404, "not_found"),
        ("GET", "/api/discussions/notes.txt/content", 404, "not_found"),
        ("GET", "/api/discussions/x.md/content?format=xml", 422, "invalid_request"),
        ("POST", "/api/discussions/nope/save", 404, "not_found"),
        ("POST", "/api/discussions/bad%20id!/save", 400, "invalid_id"),
        ("GET", "/api/discussions?limit=0", 422, "invalid_request"),
    ],
)
async def test_unknown_and_bad_requests_are_answered_in_the_envelope(
    emulator: RunningEmulator,
    database_url: str,
    tmp_path: Path,
    method: str,
    path: str,
    status: int,
    code: str,
) -> None:
    (tmp_path / "secret.md").write_text("not yours")
    settings = discussion_settings(emulator, database_url, tmp_path / "discussions")
    async with records_server(settings) as live, live.api() as api:
        response = await api.request(method, path)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


async def test_start_needs_no_body_and_the_api_needs_the_admin_token(
    emulator: RunningEmulator, database_url: str, tmp_path: Path
) -> None:
    settings = discussion_settings(emulator, database_url, tmp_path)
    async with records_server(settings) as live, live.api() as api, live.api(None) as anonymous:
        bare = await api.post("/api/discussions/start")
        refused = await anonymous.get("/api/discussions")
    assert bare.status_code == 201
    assert bare.json()["filename"].endswith(".md")
    assert refused.status_code == 401


async def test_a_session_for_an_unknown_discussion_is_refused(
    emulator: RunningEmulator, database_url: str, tmp_path: Path
) -> None:
    settings = discussion_settings(emulator, database_url, tmp_path)
    async with records_server(settings) as live:
        for asked in ("nope", "bad%20id!"):
            async with client(f"{live.ws_url}?discussion={asked}") as ws:
                error, _ = await until(ws, is_type("error"))
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
            assert isinstance(error, dict)
            assert error["code"] == "unknown_discussion"
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1008
