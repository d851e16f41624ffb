"""The gateway's test kit: every backend behind an rt_server with client tokens (the
``backed`` fixture), the real ``openai`` SDK pointed at it, and a turn driven through
``client.realtime.connect()``."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from openai import AsyncOpenAI
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from openai.types.realtime import ClientSecretCreateResponse
from websockets.asyncio.client import ClientConnection

from rt_server.config import Limits, Settings
from rt_server.emulator import EmulatorConfig, RunningEmulator, run_emulator
from rt_server.serving import serve
from tests.conftest import API_KEY, azure_settings, openai_settings
from tests.support.harness import RunningServer, next_frame
from tests.support.identity import IdentityEndpoint

TOKEN = "client-token-for-the-gateway-0123"


LIMITS = Limits(backend_connect_timeout=5.0, max_audio_realtime_factor=1000.0)


@dataclass
class Backed:
    """Settings for one backend, the emulator behind it, and the credential it must see."""

    settings: Settings
    emulator: RunningEmulator | None
    credential: str | None
    path: str | None


@pytest.fixture(params=["emulator", "openai", "azure", "azure-identity", "azure-preview"])
async def backed(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Backed]:
    kind: str = request.param
    async with AsyncExitStack() as stack:
        if kind == "emulator":
            yield Backed(Settings(backend="emulator", limits=LIMITS), None, None, None)
            return
        if kind == "azure-identity":
            identity = IdentityEndpoint(secret="identity-header-secret")
            endpoint = await stack.enter_async_context(serve(identity.app()))
            monkeypatch.setenv("IDENTITY_ENDPOINT", f"{endpoint.http_url}/msi/token")
            monkeypatch.setenv("IDENTITY_HEADER", identity.secret)
            for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"):
                monkeypatch.delenv(name, raising=False)
            emulator = await stack.enter_async_context(run_emulator(EmulatorConfig()))
            settings = azure_settings(emulator.http_url, azure_api_key=None)
            yield Backed(settings, emulator, identity.token(1), "/openai/v1/realtime")
            return
        emulator = await stack.enter_async_context(run_emulator(EmulatorConfig(api_key=API_KEY)))
        if kind == "openai":
            yield Backed(openai_settings(emulator.http_url), emulator, API_KEY, "/v1/realtime")
        elif kind == "azure":
            yield Backed(
                azure_settings(emulator.http_url), emulator, API_KEY, "/openai/v1/realtime"
            )
        else:
            settings = azure_settings(emulator.http_url, azure_api_version="2025-04-01-preview")
            yield Backed(settings, emulator, API_KEY, "/openai/realtime")


def gated(backed: Backed) -> Settings:
    return replace(backed.settings, client_tokens=(TOKEN,), limits=LIMITS)


def assert_server_credential(backed: Backed) -> None:
    if backed.emulator is None:
        return  # the built-in emulator takes no credential
    state = backed.emulator.state
    assert state.last_authorization == backed.credential
    assert state.last_authorization != TOKEN


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
