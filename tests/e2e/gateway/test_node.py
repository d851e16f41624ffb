"""The ``openai`` npm package's realtime WebSocket client (``OpenAIRealtimeWS``) through
the gateway to every backend, a text turn and an audio turn each, with node (its packages:
``.ci/deps``, which ``make test`` runs, installs them)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.e2e.gateway.conftest import TOKEN, Backed, Reply, assert_server_credential, gated
from tests.support.harness import RunningServer, running_server

DRIVER = Path(__file__).parents[2] / "support" / "node_openai" / "realtime.mjs"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="needs node"),
    pytest.mark.skipif(
        not (DRIVER.parent / "node_modules" / "openai").exists(),
        reason="needs .ci/deps (npm ci --prefix tests/support/node_openai)",
    ),
]


async def node_turn(server: RunningServer, mode: str, argument: str) -> tuple[int, Reply]:
    assert NODE is not None
    process = await asyncio.create_subprocess_exec(
        NODE,
        str(DRIVER),
        f"{server.http_url}/v1",
        TOKEN,
        mode,
        argument,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    result: dict[str, Any] = orjson.loads(out)
    return result["code"], Reply(result["events"])


async def test_a_text_turn_with_the_npm_client(backed: Backed) -> None:
    async with running_server(gated(backed)) as server:
        code, reply = await node_turn(server, "text", "hello from node")
    assert code == 1000
    assert reply.events[0]["type"] == "session.created"
    assert "hello from node" in reply.text
    assert_server_credential(backed)


@pytest.mark.audio
async def test_an_audio_turn_with_the_npm_client(backed: Backed, tmp_path: Path) -> None:
    from tests.support.speech import speech_pcm16

    speech = tmp_path / "speech.pcm"
    speech.write_bytes(speech_pcm16("What is the weather like today?"))
    async with running_server(gated(backed)) as server:
        _, reply = await node_turn(server, "audio", str(speech))
    [transcribed] = reply.of("conversation.item.input_audio_transcription.completed")
    assert transcribed["transcript"]
    assert reply.audio > 0 and reply.text
    assert_server_credential(backed)
