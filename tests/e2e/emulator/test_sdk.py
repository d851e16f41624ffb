"""The emulator driven by the real openai SDK: OpenAI GA, Azure GA and Azure preview (beta)."""

from __future__ import annotations

import base64

import pytest
from openai import AsyncAzureOpenAI, AsyncOpenAI
from websockets.exceptions import InvalidStatus

from rt_server.emulator import RunningEmulator
from tests.e2e.emulator.conftest import KEY, raw


async def test_openai_ga_text_turn(emu: RunningEmulator) -> None:
    client = AsyncOpenAI(api_key=KEY, base_url=emu.http_url + "/v1")
    async with client.realtime.connect(model="gpt-realtime") as conn:
        created = await conn.recv()
        assert created.type == "session.created"
        await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        assert (await conn.recv()).type == "session.updated"
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "hi"}],
        }
        await conn.conversation.item.create(item=item)  # type: ignore[arg-type]
        await conn.response.create()
        text = ""
        async for event in conn:
            if event.type == "response.output_text.delta":
                text += event.delta
            if event.type == "response.done":
                assert event.response.status == "completed"
                assert event.response.usage and event.response.usage.total_tokens
                break
    assert text == "You said: hi."
    assert emu.state.last_authorization == KEY


async def test_openai_ga_audio_reply(emu: RunningEmulator) -> None:
    client = AsyncOpenAI(api_key=KEY, base_url=emu.http_url + "/v1")
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.response.create()
        audio, transcript = b"", ""
        async for event in conn:
            if event.type == "response.output_audio.delta":
                audio += base64.b64decode(event.delta)
            elif event.type == "response.output_audio_transcript.delta":
                transcript += event.delta
            elif event.type == "response.done":
                break
    assert transcript == "Hello! How can I help?"
    assert len(audio) == 5 * 2 * (24000 * 333 // 1000)  # five words of PCM16


async def test_wrong_key_is_refused_with_401(emu: RunningEmulator) -> None:
    client = AsyncOpenAI(api_key="sk-wrong", base_url=emu.http_url + "/v1")
    with pytest.raises(InvalidStatus) as refused:
        async with client.realtime.connect(model="gpt-realtime"):
            pass
    assert refused.value.response.status_code == 401
    assert b"invalid_api_key" in refused.value.response.body


async def test_missing_model_is_refused_with_400(emu: RunningEmulator) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with raw(emu.ws_url + "/v1/realtime"):
            pass
    assert refused.value.response.status_code == 400


async def test_api_key_header_is_accepted(emu: RunningEmulator) -> None:
    async with raw(emu.ws_url + "/openai/v1/realtime?model=dep", {"api-key": KEY}) as ws:
        assert (await ws.recv())["type"] == "session.created"
    assert emu.state.last_auth_header == "api-key"


async def test_azure_ga_path(emu: RunningEmulator) -> None:
    client = AsyncOpenAI(
        api_key=KEY,
        base_url=emu.http_url + "/openai/v1",
        websocket_base_url=emu.ws_url + "/openai/v1",
    )
    async with client.realtime.connect(model="my-deployment") as conn:
        created = await conn.recv()
        assert created.type == "session.created"
        assert created.session.model == "my-deployment"  # type: ignore[union-attr]
        [info] = emu.state.connections.values()
        assert (info.path, info.dialect) == ("/openai/v1/realtime", "ga")


async def test_azure_preview_speaks_beta(emu: RunningEmulator) -> None:
    client = AsyncAzureOpenAI(
        azure_endpoint=emu.http_url,
        api_key=KEY,
        api_version="2025-04-01-preview",
        websocket_base_url=emu.ws_url + "/openai",
    )
    async with client.beta.realtime.connect(model="my-deployment") as conn:
        created = await conn.recv()
        assert created.type == "session.created"
        assert created.session.input_audio_format == "pcm16"
        await conn.session.update(session={"modalities": ["text"], "instructions": "Be beta."})
        updated = await conn.recv()
        assert updated.type == "session.updated"
        assert updated.session.modalities == ["text"]
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "instructions?"}],
        }
        await conn.conversation.item.create(item=item)  # type: ignore[arg-type]
        assert (await conn.recv()).type == "conversation.item.created"
        await conn.response.create()
        seen, text = [], ""
        async for event in conn:
            seen.append(event.type)
            if event.type == "response.text.delta":
                text += event.delta
            if event.type == "response.done":
                assert event.response.output[0].content[0].type == "text"  # type: ignore[index]
                break
    assert text == "Instructions: Be beta."
    assert "conversation.item.created" in seen and "conversation.item.done" not in seen
    assert emu.state.last_auth_header == "api-key"
