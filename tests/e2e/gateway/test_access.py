"""Who may use the gateway and how it answers: client tokens and rt_server's own client
secrets (never forwarded), both routes, refusals as the Realtime API's ``error`` events,
the shared limits, and a backend drop told to the client."""

from __future__ import annotations

import time
from dataclasses import replace

import httpx
import orjson
import pytest
from openai import AuthenticationError
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from rt_server.config import Limits, Settings
from rt_server.emulator import Faults, RunningEmulator
from rt_server.gateway import Minted, Secrets
from rt_server.profile import Profile
from tests.conftest import API_KEY, openai_settings
from tests.e2e.gateway.conftest import TOKEN, event_of, mint, recv, sdk, text_turn, until_event
from tests.support.harness import RunningServer, client, running_server, send_json


def gated(emulator: RunningEmulator, **changes: object) -> Settings:
    return openai_settings(emulator.http_url, client_tokens=(TOKEN,), **changes)


def ws_url(server: RunningServer, path: str = "/v1/realtime") -> str:
    return server.http_url.replace("http://", "ws://") + path


async def test_without_a_client_token_the_handshake_is_refused(emulator: RunningEmulator) -> None:
    async with running_server(gated(emulator)) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with sdk(server, token="sk-not-a-client-token").realtime.connect(model="m"):
                pass
    assert refused.value.response.status_code == 401
    assert orjson.loads(refused.value.response.body)["error"]["code"] == "unauthorized"
    assert emulator.state.total_connections == 0


async def test_ws_with_a_query_token_speaks_the_same_protocol(emulator: RunningEmulator) -> None:
    async with running_server(gated(emulator)) as server:
        async with client(f"{ws_url(server, '/ws')}?token={TOKEN}&model=gpt-realtime") as ws:
            created = await event_of(ws)
            assert created["type"] == "session.created"
            item = {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "via ws"}],
            }
            await send_json(ws, {"type": "conversation.item.create", "item": item})
            await send_json(ws, {"type": "response.create"})
            while (await event_of(ws))["type"] != "response.done":
                pass
    assert emulator.state.last_authorization == API_KEY


async def test_a_browser_subprotocol_key_is_accepted_and_never_echoed(
    emulator: RunningEmulator,
) -> None:
    offered = [Subprotocol("realtime"), Subprotocol(f"openai-insecure-api-key.{TOKEN}")]
    async with running_server(gated(emulator)) as server:
        async with client(ws_url(server), subprotocols=offered) as ws:
            created = await event_of(ws)
            assert ws.subprotocol == "realtime"
    assert created["type"] == "session.created"


async def test_a_minted_client_secret_connects_with_its_session(emulator: RunningEmulator) -> None:
    async with running_server(gated(emulator)) as server:
        secret = await mint(
            server,
            expires_after={"anchor": "created_at", "seconds": 60},
            session={"type": "realtime", "output_modalities": ["text"]},
        )
        assert secret.value.startswith("ek_rt_")
        assert time.time() < secret.expires_at <= time.time() + 61
        assert secret.session is not None
        assert secret.session.to_dict()["output_modalities"] == ["text"]
        async with sdk(server, token=secret.value).realtime.connect(model="m") as connection:
            await until_event(connection, ["session.updated"])  # the secret's session
            reply = await text_turn(connection, "with a secret")
        # A secret is no client token: it cannot mint another.
        with pytest.raises(AuthenticationError):
            await mint(server, secret.value)
    assert "with a secret" in reply.text and reply.audio == 0
    assert emulator.state.last_authorization == API_KEY


async def test_expired_tampered_and_refused_secrets(emulator: RunningEmulator) -> None:
    profile = Profile(gateway_locked=("instructions",))
    settings = gated(emulator, profile=profile)
    expired = Secrets().mint(settings, Minted("default", int(time.time()) - 1, None))
    # Minted before the lock (same tokens, so the same key): refused when it connects.
    stale = Secrets().mint(
        settings, Minted("default", int(time.time()) + 60, {"instructions": "Obey me."})
    )
    async with running_server(settings) as server:
        good = (await mint(server)).value
        for value, code in (
            (expired, "secret_expired"),
            (good[:-2] + "AA", "unauthorized"),
            (stale, "locked_field"),
        ):
            with pytest.raises(InvalidStatus) as refused:
                async with sdk(server, token=value).realtime.connect(model="m"):
                    pass
            assert orjson.loads(refused.value.response.body)["error"]["code"] == code
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            locked = await http.post(
                "/v1/realtime/client_secrets",
                json={"session": {"type": "realtime", "instructions": "no"}},
                headers=headers,
            )
            anonymous = await http.post("/v1/realtime/client_secrets", json={})
            unknown = await http.post(
                "/v1/realtime/client_secrets?profile=nope", json={}, headers=headers
            )
    assert (locked.status_code, locked.json()["error"]["code"]) == (400, "locked_field")
    assert (anonymous.status_code, anonymous.json()["error"]["code"]) == (401, "unauthorized")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (400, "unknown_profile")


async def test_bad_events_get_realtime_errors_and_the_session_goes_on(
    emulator: RunningEmulator,
) -> None:
    async with running_server(gated(emulator)) as server:
        async with client(
            ws_url(server), additional_headers={"Authorization": f"Bearer {TOKEN}"}
        ) as ws:
            await event_of(ws)
            errors = []
            for bad in (
                "{not json",
                "[1]",
                '{"type": 7}',
                '{"type": "session.update"}',
                b"\x01\x02",
            ):
                await ws.send(bad)
                errors.append(await event_of(ws))
            await send_json(ws, {"type": "no.such.event", "event_id": "evt_9"})
            from_backend = await event_of(ws)
            await send_json(ws, {"type": "response.create"})
            assert (await event_of(ws))["type"] == "response.created"
    codes = [(e["type"], e["error"]["type"], e["error"]["code"]) for e in errors]
    assert codes == [
        ("error", "invalid_request_error", "invalid_json"),
        ("error", "invalid_request_error", "not_an_object"),
        ("error", "invalid_request_error", "missing_type"),
        ("error", "invalid_request_error", "missing_field"),
        ("error", "invalid_request_error", "invalid_audio"),
    ]
    assert errors[3]["error"]["param"] == "session"
    # Events the gateway does not know pass on: the backend itself answers.
    assert from_backend["type"] == "error"
    assert from_backend["error"]["event_id"] == "evt_9"


async def test_limits_apply_as_on_every_route(emulator: RunningEmulator) -> None:
    limits = Limits(max_sessions=1, max_audio_realtime_factor=1.0, backend_connect_timeout=5.0)
    async with running_server(gated(emulator, limits=limits)) as server:
        async with sdk(server).realtime.connect(model="m") as first:
            await first.recv()
            async with sdk(server).realtime.connect(model="m") as second:
                refused = await recv(second)
            audio = "A" * 200_000  # 150 KB of PCM at once: 3 s, ahead of real time
            await first.input_audio_buffer.append(audio=audio)
            error = (await until_event(first, ["error"])).of("error")[0]["error"]
            with pytest.raises(ConnectionClosed) as closed:
                await first.recv()
    assert (refused["type"], refused["error"]["code"]) == ("error", "too_many_sessions")
    assert error["code"] == "audio_rate_exceeded"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_a_backend_drop_is_an_error_then_close_1013(emulator: RunningEmulator) -> None:
    settings = replace(gated(emulator), limits=Limits(backend_connect_timeout=5.0))
    emulator.state.set_faults(Faults(close_mid_response=True))
    async with running_server(settings) as server:
        async with sdk(server).realtime.connect(model="m") as connection:
            await connection.recv()
            await connection.response.create()
            error = (await until_event(connection, ["error"])).of("error")[0]["error"]
            with pytest.raises(ConnectionClosed) as closed:
                await connection.recv()
    assert (error["type"], error["code"]) == ("server_error", "backend_closed")
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    assert emulator.state.total_connections == 1  # not reconnected: the client holds the ids
