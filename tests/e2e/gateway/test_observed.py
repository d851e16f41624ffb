"""A gateway session as operators see it (the live monitor, metrics) and the limits every
route has (idle time, message size), through the real ``openai`` SDK."""

from __future__ import annotations

import base64
import wave
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from rt_server.config import Limits
from rt_server.emulator import RunningEmulator
from tests.conftest import openai_settings
from tests.e2e.gateway.conftest import event_of, recv, sdk, text_turn, until_event
from tests.support.harness import client, running_server

ADMIN = "admin-token-for-the-gateway"


async def test_the_monitor_and_metrics_see_a_gateway_session(emulator: RunningEmulator) -> None:
    settings = openai_settings(emulator.http_url, admin_token=ADMIN)
    async with running_server(settings) as server:
        monitor_url = f"{server.http_url.replace('http://', 'ws://')}/monitor?token={ADMIN}"
        async with client(monitor_url) as logs:
            assert (await event_of(logs))["type"] == "monitor"
            async with sdk(server).realtime.connect(model="gpt-realtime") as connection:
                await recv(connection)
                await text_turn(connection, "watched")
            seen: list[dict[str, Any]] = []
            while not seen or seen[-1]["type"] != "session_ended":
                seen.append(await event_of(logs))
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"{server.http_url}/metrics")).text
    assert {frame["dialect"] for frame in seen} == {"gateway"}
    kinds = [frame["type"] for frame in seen]
    assert kinds[0] == "session_started"
    assert {"user_text", "assistant_text", "usage"} <= set(kinds)
    [said] = [frame["data"]["text"] for frame in seen if frame["type"] == "user_text"]
    assert said == "watched"
    assert 'rt_sessions_total{dialect="gateway"} 1.0' in metrics


@pytest.mark.parametrize(
    ("limits", "code"),
    [
        (Limits(idle_timeout_seconds=0.5), "idle_timeout"),
        (Limits(max_session_seconds=0.5), "session_expired"),
    ],
)
async def test_an_idle_or_expired_session_is_told_and_closed(
    emulator: RunningEmulator, limits: Limits, code: str
) -> None:
    async with running_server(openai_settings(emulator.http_url, limits=limits)) as server:
        async with sdk(server).realtime.connect(model="gpt-realtime") as connection:
            await recv(connection)
            error = (await until_event(connection, ["error"])).of("error")[0]["error"]
            with pytest.raises(ConnectionClosed) as closed:
                await connection.recv()
    assert error["code"] == code
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


async def test_an_event_over_the_size_limit_closes_with_1009(emulator: RunningEmulator) -> None:
    limits = Limits(max_message_bytes=4096)
    async with running_server(openai_settings(emulator.http_url, limits=limits)) as server:
        async with sdk(server).realtime.connect(model="gpt-realtime") as connection:
            await recv(connection)
            await connection.input_audio_buffer.append(audio="A" * 8000)
            with pytest.raises(ConnectionClosed) as closed:
                await until_event(connection, ["never"])
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_both_sides_of_a_gateway_session_are_recorded(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    settings = openai_settings(emulator.http_url, record_audio_dir=str(tmp_path))
    sent = bytes(range(256)) * 15  # 80 ms, recorded byte-exact
    async with running_server(settings) as server:
        async with sdk(server).realtime.connect(model="gpt-realtime") as connection:
            await recv(connection)
            await connection.input_audio_buffer.append(audio=base64.b64encode(sent).decode())
            reply = await text_turn(connection, "record this")
    [user] = tmp_path.glob("*-user.wav")
    [assistant] = tmp_path.glob("*-assistant.wav")
    with wave.open(str(user)) as wav:
        assert wav.readframes(wav.getnframes()) == sent
    with wave.open(str(assistant)) as wav:
        assert len(wav.readframes(wav.getnframes())) == reply.audio > 0
