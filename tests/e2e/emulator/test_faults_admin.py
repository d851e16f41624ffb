"""Fault injection, the admin API, client secrets and health."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from rt_server.emulator import EmulatorConfig, Faults, RunningEmulator, run_emulator
from tests.e2e.emulator.conftest import KEY, raw, types

GA = "/v1/realtime?model=gpt-realtime"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.mark.parametrize("status", [401, 403, 429, 500, 503])
async def test_handshake_status_fault(emu: RunningEmulator, status: int) -> None:
    emu.state.set_faults(Faults(handshake_status=status, retry_after=7))
    with pytest.raises(InvalidStatus) as refused:
        async with raw(emu.ws_url + GA):
            pass
    response = refused.value.response
    assert response.status_code == status
    assert response.headers.get("Retry-After") == ("7" if status == 429 else None)


async def test_faults_once_apply_to_the_next_connection_only(emu: RunningEmulator) -> None:
    async with httpx.AsyncClient(base_url=emu.http_url) as http:
        answer = await http.post("/_emulator/faults/once", json={"handshake_status": 503})
        assert answer.status_code == 200
    with pytest.raises(InvalidStatus):
        async with raw(emu.ws_url + GA):
            pass
    async with raw(emu.ws_url + GA) as ws:
        assert (await ws.recv())["type"] == "session.created"


async def test_close_after_events(emu: RunningEmulator) -> None:
    emu.state.set_faults(Faults(close_after_events=3, close_code=1011))
    async with raw(emu.ws_url + GA) as ws:
        await ws.send({"type": "response.create"})
        with pytest.raises(ConnectionClosed) as closed:
            await ws.until("response.done")
    assert len(ws.seen) == 3
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011


async def test_close_mid_response(emu: RunningEmulator) -> None:
    emu.state.set_faults(Faults(close_mid_response=True))
    async with raw(emu.ws_url + GA) as ws:
        await ws.send({"type": "response.create"})
        with pytest.raises(ConnectionClosed):
            await ws.until("response.done")
    assert "response.output_audio.delta" in types(ws.seen)
    assert "response.done" not in types(ws.seen)


async def test_session_cap_sends_session_expired_then_closes(emu: RunningEmulator) -> None:
    emu.state.set_faults(Faults(max_session_seconds=0.2))
    async with raw(emu.ws_url + GA) as ws:
        error = (await ws.until("error"))[-1]["error"]
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert error["code"] == "session_expired"
    assert "maximum duration of 0.2 seconds" in error["message"]


async def test_stalled_response_can_be_cancelled(emu: RunningEmulator) -> None:
    emu.state.set_faults(Faults(stall_responses=True))
    async with raw(emu.ws_url + GA) as ws:
        await ws.send({"type": "response.create"})
        await ws.until("response.created")
        await ws.send({"type": "conversation.item.retrieve", "item_id": "provoke"})
        events = await ws.until("error")
        assert types(events) == ["error"]  # nothing of the response arrived meanwhile
        await ws.send({"type": "response.cancel"})
        done = (await ws.until("response.done"))[-1]
        assert done["response"]["status"] == "cancelled"


async def test_latency_delays_each_event() -> None:
    config = EmulatorConfig(faults=Faults(latency_ms=150))
    async with run_emulator(config) as emu, raw(emu.ws_url + GA) as ws:
        await ws.recv()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await ws.send({"type": "input_audio_buffer.clear"})
        await ws.until("input_audio_buffer.cleared")
        assert loop.time() - started >= 0.14


async def test_admin_state_and_faults(emu: RunningEmulator) -> None:
    async with httpx.AsyncClient(base_url=emu.http_url) as http:
        assert (await http.get("/health")).json() == {"status": "ok"}
        async with raw(emu.ws_url + GA) as ws:
            await ws.recv()
            state = (await http.get("/_emulator/state")).json()
            assert state["active_connections"] == 1 and state["total_connections"] == 1
            assert state["last_authorization"] == KEY
            [connection] = state["connections"]
            assert connection["dialect"] == "ga" and connection["events_out"] == 1
            assert connection["session"]["audio"]["output"]["voice"] == "alloy"
        answer = await http.put(
            "/_emulator/faults", json={"latency_ms": 5, "stall_responses": True}
        )
        assert answer.json()["faults"]["stall_responses"] is True
        assert emu.state.faults == Faults(latency_ms=5.0, stall_responses=True)
        bad = await http.put("/_emulator/faults", json={"explode": True})
        assert bad.status_code == 400


async def test_client_secret_then_connect_with_it(emu: RunningEmulator) -> None:
    body = {
        "session": {"type": "realtime", "instructions": "From the secret."},
        "expires_after": {"anchor": "created_at", "seconds": 60},
    }
    async with httpx.AsyncClient(base_url=emu.http_url) as http:
        refused = await http.post("/v1/realtime/client_secrets", json=body)
        assert refused.status_code == 401
        made = (await http.post("/v1/realtime/client_secrets", json=body, headers=AUTH)).json()
        bad = await http.post(
            "/openai/v1/realtime/client_secrets",
            json={"session": {"type": "realtime", "audio": {"output": {"voice": "bob"}}}},
            headers=AUTH,
        )
        assert (
            bad.status_code == 400 and bad.json()["error"]["param"] == "session.audio.output.voice"
        )
    assert made["value"].startswith("ek_") and made["expires_at"] > 0
    assert made["session"]["instructions"] == "From the secret."
    async with raw(emu.ws_url + GA, {"Authorization": f"Bearer {made['value']}"}) as ws:
        created = await ws.recv()
    assert created["session"]["instructions"] == "From the secret."
