"""The gateway's test kit: an rt_server behind client tokens, the real ``openai`` SDK
pointed at it, and a turn driven through ``client.realtime.connect()``."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from openai import AsyncOpenAI
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from openai.types.realtime import ClientSecretCreateResponse
from websockets.asyncio.client import ClientConnection

from tests.support.harness import RunningServer, next_frame

TOKEN = "client-token-for-the-gateway-0123"


def sdk(server: RunningServer | str, token: str = TOKEN) -> AsyncOpenAI:
    """The SDK as a team's own code builds it, with rt_server's address instead of OpenAI's."""
    http_url = server if isinstance(server, str) else server.http_url
    return AsyncOpenAI(
        api_key=token,
        base_url=f"{http_url}/v1",
        websocket_base_url=f"{http_url.replace('http://', 'ws://')}/v1",
        max_retries=0,
    )


async def recv(connection: AsyncRealtimeConnection) -> dict[str, Any]:
    """The next event the SDK parsed, as a plain dict."""
    event: dict[str, Any] = (await connection.recv()).to_dict()
    return event


async def event_of(ws: ClientConnection) -> dict[str, Any]:
    """The next frame of a raw WebSocket client: always a JSON event on the gateway."""
    frame = await next_frame(ws)
    assert isinstance(frame, dict), "the gateway sends no binary frames"
    return frame


async def mint(
    server: RunningServer, token: str = TOKEN, **body: Any
) -> ClientSecretCreateResponse:
    """``client.realtime.client_secrets.create(**body)``, as the SDK calls it."""
    async with sdk(server, token) as openai:
        return await openai.realtime.client_secrets.create(**body)


@dataclass
class Reply:
    """Everything a client received during one response, as plain dicts."""

    events: list[dict[str, Any]] = field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["type"] == kind]

    @property
    def text(self) -> str:
        kinds = ("response.output_text.delta", "response.output_audio_transcript.delta")
        return "".join(event["delta"] for event in self.events if event["type"] in kinds)

    @property
    def audio(self) -> int:
        deltas = self.of("response.output_audio.delta")
        return sum(len(base64.b64decode(event["delta"])) for event in deltas)


async def until_event(
    connection: AsyncRealtimeConnection, kinds: Iterable[str], timeout: float = 15.0
) -> Reply:
    """Read events until one of ``kinds`` arrives; return all read, that one last."""
    wanted, reply = set(kinds), Reply()
    async with asyncio.timeout(timeout):
        async for event in connection:
            reply.events.append(event.to_dict())
            if event.type in wanted:
                return reply
    raise AssertionError(f"the connection ended before any of {sorted(wanted)}")


async def text_turn(connection: AsyncRealtimeConnection, text: str) -> Reply:
    """A typed user message and the response to it, up to ``response.done``."""
    await connection.conversation.item.create(
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    )
    await connection.response.create()
    return await until_event(connection, ["response.done"])


async def audio_turn(connection: AsyncRealtimeConnection, pcm: bytes) -> Reply:
    """Speech then silence, as a microphone sends it; server VAD ends the turn."""
    audio = pcm + bytes(48 * 1500)
    for start in range(0, len(audio), 4800):  # 100 ms chunks
        chunk = base64.b64encode(audio[start : start + 4800]).decode()
        await connection.input_audio_buffer.append(audio=chunk)
    return await until_event(connection, ["response.done"], timeout=30.0)
