"""RtClient against a fake server on loopback: connecting, turns, failures."""

from __future__ import annotations

import asyncio

import pytest

from rt_server.client import Closed, ConnectFailed, RtClient, is_text_done
from tests.support.fake_server import REPLY_AUDIO, FakeServer, running


async def test_connect_waits_for_the_greeting_and_sends_the_token_as_a_header() -> None:
    async with (
        running(FakeServer(token="s3cret")) as fake,
        RtClient.connect(fake.url, token="s3cret") as client,
    ):
        assert client.greeting == "Hello from the fake."
    assert fake.headers[0]["authorization"] == "Bearer s3cret"
    assert "permessage-deflate" not in fake.headers[0].get("sec-websocket-extensions", "")


async def test_reply_collects_text_and_audio() -> None:
    async with running(FakeServer()) as fake, RtClient.connect(fake.url) as client:
        reply = await client.reply("hello")
        again = await client.reply("again")
    assert reply.text.strip() == "You said: hello."
    assert reply.audio == REPLY_AUDIO * 4  # one before the deltas and one after each
    assert reply.first_delta is not None
    assert 0 < reply.first_delta <= reply.total
    assert reply.first_audio is not None
    assert reply.first_audio <= reply.first_delta
    assert again.text.strip() == "You said: again."  # nothing left over from the first turn
    assert fake.received == [
        '{"type":"user_message","text":"hello"}',
        '{"type":"user_message","text":"again"}',
    ]


async def test_audio_is_streamed_in_frames_and_commit_ends_the_turn() -> None:
    async with running(FakeServer()) as fake, RtClient.connect(fake.url) as client:
        await client.stream_audio(bytes(2000), frame_bytes=960, realtime=False)
        await client.commit()
        frames = await client.receive_until(is_text_done)
    assert [len(f) for f in fake.received[:3]] == [960, 960, 80]
    kinds = [f if isinstance(f, bytes) else f.get("action", f["type"]) for f in frames]
    assert kinds[:2] == ["speech_started", "transcription"]
    assert frames[1] == {"type": "transcription", "id": "u1", "text": "2000 bytes"}


async def test_interrupt_and_user_message_ids_are_sent_as_protocol_messages() -> None:
    async with running(FakeServer()) as fake, RtClient.connect(fake.url) as client:
        await client.interrupt()
        await client.send_text("hi", id="m1")
        await client.receive_until(is_text_done)
    assert fake.received[:2] == [
        '{"type":"control","action":"interrupt"}',
        '{"type":"user_message","text":"hi","id":"m1"}',
    ]


async def test_odd_length_audio_is_refused_before_sending() -> None:
    async with running(FakeServer()) as fake, RtClient.connect(fake.url) as client:
        with pytest.raises(ValueError, match="even length"):
            await client.send_audio(b"\0\0\0")


async def test_receive_until_times_out() -> None:
    async with running(FakeServer()) as fake, RtClient.connect(fake.url) as client:
        with pytest.raises(TimeoutError):
            await client.receive_until(is_text_done, timeout=0.05)


async def test_an_abnormal_close_raises_and_a_normal_one_ends_iteration() -> None:
    async with running(FakeServer()) as fake:
        async with RtClient.connect(fake.url) as client:
            await client.send_text("close")
            with pytest.raises(Closed) as caught:
                await client.receive()
            assert (caught.value.code, caught.value.reason) == (4000, "asked to close")
        async with RtClient.connect(fake.url) as client:
            await client.send_text("bye")
            assert [m async for m in client] == []
            with pytest.raises(Closed):
                await client.send_text("anyone?")


async def test_a_refused_handshake_reports_the_status() -> None:
    async with running(FakeServer(token="right")) as fake:
        with pytest.raises(ConnectFailed, match="HTTP 401") as caught:
            async with RtClient.connect(fake.url, token="wrong"):
                pass
    assert caught.value.status == 401


async def test_an_error_before_connected_fails_the_connect() -> None:
    error = {"type": "error", "code": "too_many_sessions", "message": "the server is full"}
    async with running(FakeServer(fail_first=error)) as fake:  # type: ignore[arg-type]
        with pytest.raises(ConnectFailed, match="too_many_sessions: the server is full"):
            async with RtClient.connect(fake.url):
                pass


async def test_no_connected_in_time_fails_the_connect() -> None:
    async with running(FakeServer(silent=True)) as fake:
        with pytest.raises(ConnectFailed, match="no 'connected'"):
            async with RtClient.connect(fake.url, open_timeout=0.1):
                pass


async def test_nothing_listening_fails_the_connect() -> None:
    # Bind a port and close it again so that nothing listens there.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(ConnectFailed, match="cannot connect"):
        async with RtClient.connect(f"ws://127.0.0.1:{port}/realtime"):
            pass


async def test_a_profile_goes_in_the_query_string() -> None:
    async with running(FakeServer()) as fake:
        url = fake.url + "?lang=en"
        async with RtClient.connect(url, profile="support desk") as client:
            assert client.ws.request is not None
            assert client.ws.request.path == "/realtime?lang=en&profile=support+desk"
