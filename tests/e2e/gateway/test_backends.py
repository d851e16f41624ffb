"""The real ``openai`` SDK through the gateway to every backend: the emulator built in,
OpenAI and Azure (GA with a key, managed identity through the identity stand-in, the
preview path), a text turn and an audio turn each. The backend sees the server's
credential, never the client's."""

from __future__ import annotations

import pytest

from tests.e2e.gateway.conftest import (
    Backed,
    assert_server_credential,
    audio_turn,
    gated,
    sdk,
    text_turn,
)
from tests.support.harness import running_server


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
