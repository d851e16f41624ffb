"""A client flooding a session with bad messages cannot fill the records: a session keeps
at most RECORDS_MAX_EVENTS events, and says how many more there were (issue 19, item 7)."""

from __future__ import annotations

from pathlib import Path

from rt_server.emulator import RunningEmulator
from tests.conftest import openai_settings
from tests.e2e.records.conftest import records_server, with_records
from tests.support.harness import client, connected, is_type, send_json, until


async def test_a_flood_of_bad_messages_is_recorded_up_to_the_cap(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/records.sqlite3"
    settings = with_records(openai_settings(emulator.http_url), url, records_max_events=100)
    async with records_server(settings) as live:
        async with client(live.ws_url) as ws:
            await connected(ws)
            for _ in range(500):
                await ws.send("{not json")
            await send_json(ws, {"type": "user_message", "text": "still here"})
            await until(ws, is_type("control", "text_done"))
        await live.settle()
        async with live.api() as api:
            [summary] = (await api.get("/api/conversations")).json()["conversations"]
            talk = (await api.get(f"/api/conversations/{summary['id']}")).json()
    errors = [e["code"] for e in talk["errors"]]
    assert errors.count("invalid_json") == 100
    assert errors[-1] == "records_truncated"
    # 400 errors, then the turn (its user and assistant text, its usage)
    assert "403 later events" in talk["errors"][-1]["message"]
    assert talk["turns"] == []  # the turn came after the cap: counted, not recorded
