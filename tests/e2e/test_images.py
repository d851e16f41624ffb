"""Images on ``/realtime`` end to end: a ``data:`` URL in a ``user_message`` reaches the
emulator as an ``input_image`` part and is answered (on the picows socket and the real
SDK's); too large or mislabelled ones get a coded error and the session goes on (real
rt_server, real sockets, the emulator)."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest

from rt_server.emulator import RunningEmulator
from tests.conftest import openai_settings
from tests.support.harness import (
    client,
    connected,
    is_type,
    next_frame,
    running_server,
    send_json,
    text_of,
    until,
)

# The smallest PNG (1x1, transparent), and a GIF header.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"


def data_url(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


@pytest.mark.parametrize("socket", ["picows", "sdk"])
async def test_an_image_reaches_the_model_and_limits_are_coded(
    emulator: RunningEmulator, socket: str
) -> None:
    settings = openai_settings(emulator.http_url, backend_socket=socket)
    settings = replace(settings, limits=replace(settings.limits, max_image_bytes=1024))
    async with running_server(settings) as server, client(server.ws_url) as ws:
        await connected(ws)
        image = data_url("image/png", PNG)
        await send_json(ws, {"type": "user_message", "text": "what is this", "image": image})
        _, before = await until(ws, is_type("control", "text_done"))
        assert f"what is this [an image/png image of {len(PNG)} bytes]" in text_of(before)

        await send_json(ws, {"type": "user_message", "image": data_url("image/gif", GIF)})
        _, before = await until(ws, is_type("control", "text_done"))
        assert f"[an image/gif image of {len(GIF)} bytes]" in text_of(before)

        refusals = [
            (data_url("image/png", PNG + bytes(2048)), "image_too_large"),
            (data_url("image/jpeg", PNG), "invalid_image"),  # a PNG declared JPEG
            (data_url("image/png", b"plain text, not an image"), "invalid_image"),
            ("https://example.com/cat.png", "invalid_image"),
        ]
        for url, code in refusals:
            await send_json(ws, {"type": "user_message", "image": url})
            error = await next_frame(ws)
            assert isinstance(error, dict) and error["code"] == code, error
        await send_json(ws, {"type": "user_message"})
        error = await next_frame(ws)
        assert isinstance(error, dict) and error["code"] == "missing_field"
        await send_json(ws, {"type": "user_message", "text": "still here"})
        _, before = await until(ws, is_type("control", "text_done"))
        assert "still here" in text_of(before)
