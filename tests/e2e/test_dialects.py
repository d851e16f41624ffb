"""A dialect is one module: the toy dialect of ``tests/support/toy_dialect.py``, served."""

from __future__ import annotations

import httpx
import orjson

from rt_server.dialects import DIALECTS
from rt_server.emulator import RunningEmulator
from tests.conftest import openai_settings
from tests.support.harness import client, next_frame, running_server
from tests.support.toy_dialect import ToyTranslator


async def test_a_toy_dialect_is_served_at_its_path_and_described(
    emulator: RunningEmulator,
) -> None:
    settings = openai_settings(emulator.http_url, records_url=None)
    async with running_server(settings, dialects=(*DIALECTS, ToyTranslator)) as server:
        async with client(server.ws_url.replace("/realtime", "/toy")) as ws:
            await ws.send(orjson.dumps({"kind": "ask", "question": "hello toy"}).decode())
            answer = ""
            while (frame := await next_frame(ws)) != {"kind": "done"}:
                assert isinstance(frame, dict) and frame["kind"] == "answer", frame
                answer += frame["text"]
        assert answer == "You said: hello toy."
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            described = (await http.get("/protocol.json")).json()
    # /logs, the call console, is served whatever the dialects (it follows their sessions).
    assert set(described) == {"realtime", "conversation", "twilio", "gateway", "toy", "logs"}
    assert set(described["toy"]["client"]["discriminator"]["mapping"]) == {"ask"}
    assert "done" in orjson.dumps(described["toy"]["server"]).decode()


async def test_a_dialect_left_out_is_not_served(emulator: RunningEmulator) -> None:
    settings = openai_settings(emulator.http_url, records_url=None)
    async with running_server(settings, dialects=(ToyTranslator,)) as server:
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            described = (await http.get("/protocol.json")).json()
            page = await http.get("/ws/conversation")
            gateway = await http.post("/v1/realtime/client_secrets", json={})
    assert set(described) == {"toy", "logs"}
    assert gateway.status_code == 404
    assert page.status_code == 404
    assert page.json()["error"]["code"] == "not_found"
