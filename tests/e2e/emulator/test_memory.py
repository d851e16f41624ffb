"""The emulator's memory per session stays bounded however long the reply asked for:
reply audio is made chunk by chunk as it is sent, and a reply stops at MAX_REPLY_WORDS."""

from __future__ import annotations

import tracemalloc
from collections import Counter
from typing import Any

import orjson
import pytest

from rt_server.emulator import RunningEmulator
from rt_server.emulator.responses import MAX_REPLY_WORDS
from tests.e2e.emulator.conftest import Raw, raw

GA = "/v1/realtime?model=gpt-realtime"
HUGE = " ".join(f"w{i}" for i in range(60_000))  # 244 KB of words: about 20000 s of speech


async def reply_to(ws: Raw, text: str) -> tuple[Counter[str], dict[str, Any], str]:
    """Ask, then read the reply without keeping it: event counts, the response, and the
    transcript."""
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    await ws.send({"type": "conversation.item.create", "item": item})
    await ws.send({"type": "response.create"})
    counts: Counter[str] = Counter()
    transcript: list[str] = []
    async for raw_event in ws.ws:
        event = orjson.loads(raw_event)
        counts[event["type"]] += 1
        if event["type"] == "response.output_audio_transcript.delta":
            transcript.append(event["delta"])
        if event["type"] == "response.done":
            return counts, event["response"], "".join(transcript)
    raise AssertionError("the emulator closed mid-reply")


@pytest.mark.parametrize("messages", [1, 3])
async def test_a_huge_message_costs_little_memory_and_its_reply_is_capped(
    emu: RunningEmulator, messages: int
) -> None:
    async with raw(emu.ws_url + GA) as ws:
        await ws.until("session.created")
        tracemalloc.start()
        try:
            for _ in range(messages):
                counts, response, transcript = await reply_to(ws, HUGE)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    words = transcript.split()
    assert len(words) == MAX_REPLY_WORDS
    assert words[:3] == ["You", "said:", "w0"]
    assert response["status"] == "incomplete"
    assert response["status_details"] == {"type": "incomplete", "reason": "max_output_tokens"}
    assert counts["response.output_audio.delta"] > 100  # the capped reply is still spoken
    # Built whole, this reply's audio took 1.9 GB; capped but built whole, 25 MB.
    assert peak < 12_000_000, f"{peak / 1e6:.1f} MB"
