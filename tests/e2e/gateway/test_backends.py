"""The real ``openai`` SDK through the gateway to every backend: the emulator built in,
OpenAI and Azure (GA with a key, managed identity through the identity stand-in, the
preview path), a text turn and an audio turn each. The backend sees the server's
credential, never the client's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace

import pytest

from rt_server.config import Limits, Settings
from rt_server.emulator import EmulatorConfig, RunningEmulator, run_emulator
from rt_server.serving import serve
from tests.conftest import API_KEY, azure_settings, openai_settings
from tests.e2e.gateway.conftest import TOKEN, audio_turn, sdk, text_turn
from tests.support.harness import running_server
from tests.support.identity import IdentityEndpoint

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


async def test_a_text_turn_through_every_backend(backed: Backed) -> None:
    async with running_server(gated(backed)) as server:
        async with sdk(server).realtime.connect(model="gpt-realtime") as connection:
            created = await connection.recv()
            assert created.type == "session.created"
            if backed.emulator is not None:
                [seen] = backed.emulator.state.connections.values()
                assert seen.path == backed.path
            reply = await text_turn(connection, "hello through the gateway")
    assert "hello through the gateway" in reply.text
    assert reply.of("response.created"), "the response's own events reach the client"
    [done] = reply.of("response.done")
    assert done["response"]["status"] == "completed"
    assert_server_credential(backed)


@pytest.mark.audio
async def test_an_audio_turn_through_every_backend(backed: Backed) -> None:
    from tests.support.speech import speech_pcm16

    async with running_server(gated(backed)) as server:
        async with sdk(server).realtime.connect(model="gpt-realtime") as connection:
            reply = await audio_turn(connection, speech_pcm16("What is the weather like today?"))
    assert reply.of("input_audio_buffer.speech_started")
    [transcribed] = reply.of("conversation.item.input_audio_transcription.completed")
    assert transcribed["transcript"]
    assert reply.audio > 0 and reply.audio % 2 == 0
    assert reply.text, "the spoken reply's transcript"
    assert_server_credential(backed)
