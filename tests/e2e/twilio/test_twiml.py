"""The HTTP side of the bridge: TwiML, the public URL, and Twilio's request signatures."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]
from websockets.exceptions import InvalidStatus

from rt_server.config import Settings
from rt_server.emulator import RunningEmulator
from rt_server.errors import ConfigError
from tests.conftest import openai_settings
from tests.e2e.twilio.test_calls import FAST, until
from tests.support.harness import client, running_server
from tests.support.media_streams import twilio_call

TOKEN = "0123456789abcdef0123456789abcdef"  # a test Auth Token
PUBLIC = "https://abc.ngrok.app"


def signed(url: str, params: dict[str, str] | None = None, token: str = TOKEN) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, params or {})}


def twiml_for(stream: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<Response><Connect><Stream url="{stream}" /></Connect></Response>'
    )


async def test_twiml_streams_to_the_request_host_without_public_url() -> None:
    async with running_server(Settings()) as server, httpx.AsyncClient() as http:
        host = server.http_url.removeprefix("http://")
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):  # Express app.all
            response = await http.request(method, f"{server.http_url}/twiml")
            assert response.status_code == 200, method
            assert response.headers["content-type"].startswith("text/xml")
            assert response.text == twiml_for(f"ws://{host}/call")
        head = await http.head(f"{server.http_url}/twiml")
        assert head.status_code == 200
        assert head.headers["content-type"].startswith("text/xml")
        urls = (await http.get(f"{server.http_url}/public-url")).json()
    assert urls == {
        "publicUrl": server.http_url,  # what the Twilio demo's frontend reads
        "public_url": server.http_url,
        "twiml_url": f"{server.http_url}/twiml",
        "stream_url": f"ws://{host}/call",
        "source": "request Host",
    }


@pytest.mark.parametrize(
    ("public", "stream"),
    [
        (PUBLIC, "wss://abc.ngrok.app/call"),
        ("https://calls.example.com/rt/", "wss://calls.example.com/rt/call"),
        ("http://10.0.0.5:8080", "ws://10.0.0.5:8080/call"),
    ],
)
async def test_twiml_streams_to_the_public_url(public: str, stream: str) -> None:
    settings = Settings.from_env({"PUBLIC_URL": public, "BACKEND": "emulator"})
    async with running_server(settings) as server, httpx.AsyncClient() as http:
        response = await http.get(f"{server.http_url}/twiml")
        urls = (await http.get(f"{server.http_url}/public-url")).json()
    assert response.text == twiml_for(stream)
    assert urls["stream_url"] == stream
    assert urls["twiml_url"] == f"{public.rstrip('/')}/twiml"
    assert urls["source"] == "PUBLIC_URL"


async def test_the_root_answers_a_json_status_to_json_clients_and_the_page_to_browsers() -> None:
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    async with running_server(Settings()) as server, httpx.AsyncClient() as http:
        status = await http.get(server.http_url + "/", headers={"Accept": "application/json"})
        page = await http.get(server.http_url + "/", headers={"Accept": browser})
    assert status.status_code == 200
    assert status.headers["content-type"] == "application/json"
    assert status.json()["status"] == "ok"
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>rt_server</title>" in page.text


def test_settings_read_the_twilio_and_monitor_variables() -> None:
    settings = Settings.from_env(
        {"PUBLIC_URL": PUBLIC + "/", "TWILIO_AUTH_TOKEN": TOKEN, "MONITOR_BUFFER": "50"}
    )
    assert (settings.public_url, settings.twilio_auth_token) == (PUBLIC, TOKEN)
    assert settings.monitor_buffer == 50
    assert TOKEN not in repr(settings)
    with pytest.raises(ConfigError, match="PUBLIC_URL"):
        Settings.from_env({"PUBLIC_URL": "abc.ngrok.app"})
    with pytest.raises(ConfigError, match="MONITOR_BUFFER"):
        Settings.from_env({"MONITOR_BUFFER": "0"})


async def test_signed_webhooks_are_accepted_and_others_refused() -> None:
    settings = replace(Settings(), twilio_auth_token=TOKEN)
    async with running_server(settings) as server, httpx.AsyncClient() as http:
        url = f"{server.http_url}/twiml"
        form = {"CallSid": "CA1", "From": "+15550100", "To": "+15550199"}

        unsigned = await http.post(url, data=form)
        assert unsigned.status_code == 403
        assert unsigned.json()["error"]["code"] == "unauthorized"  # the envelope

        assert (await http.post(url, data=form, headers=signed(url, form))).status_code == 200
        assert (await http.get(url, headers=signed(url))).status_code == 200
        query = f"{url}?attempt=2"
        assert (await http.get(query, headers=signed(query))).status_code == 200

        tampered = {**form, "From": "+15550666"}
        assert (await http.post(url, data=tampered, headers=signed(url, form))).status_code == 403
        wrong = signed(url, form, token="f" * 32)
        assert (await http.post(url, data=form, headers=wrong)).status_code == 403
        assert (await http.get(query, headers=signed(url))).status_code == 403


@pytest.mark.parametrize("token", [TOKEN, None])
async def test_a_form_that_is_not_utf8_is_refused_with_the_envelope(
    token: str | None, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = replace(Settings(), twilio_auth_token=token)
    body = b"CallSid=CA1&From=%2B1555\xff\xfe"
    async with running_server(settings) as server, httpx.AsyncClient() as http:
        url = f"{server.http_url}/twiml"
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        answers = [await http.post(url, content=body, headers=form) for _ in range(3)]
        answers.append(await http.post(url, content=body, headers=form | signed(url)))
        huge = await http.post(url, content=b"a=" + b"x" * 100_000, headers=form)
    for answer in answers:
        assert answer.status_code == (403 if token else 400)
        assert answer.json()["error"]["code"] == ("unauthorized" if token else "invalid_form")
    assert huge.status_code == 413
    assert huge.json()["error"]["code"] == "body_too_large"
    assert "Traceback" not in capfd.readouterr().err  # was a traceback per request


async def test_signatures_are_checked_against_the_public_url() -> None:
    settings = replace(Settings(), twilio_auth_token=TOKEN, public_url=PUBLIC)
    async with running_server(settings) as server, httpx.AsyncClient() as http:
        local = f"{server.http_url}/twiml"
        form = {"CallSid": "CA1"}
        public = await http.post(local, data=form, headers=signed(f"{PUBLIC}/twiml", form))
        assert public.status_code == 200
        assert public.text == twiml_for("wss://abc.ngrok.app/call")
        assert (await http.post(local, data=form, headers=signed(local, form))).status_code == 403


async def test_sha256_signatures_named_in_the_settings_header_are_accepted() -> None:
    settings = replace(Settings(), twilio_auth_token=TOKEN)
    async with running_server(settings) as server, httpx.AsyncClient() as http:
        url = f"{server.http_url}/twiml"
        signature = RequestValidator(TOKEN).compute_signature(url, {}, "HMAC_SHA256")
        headers = {
            "X-Twilio-Signature": signature,
            "X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256",
        }
        assert (await http.get(url, headers=headers)).status_code == 200
        del headers["X-Twilio-Webhooks-Signature-Settings"]  # then it is taken as SHA-1
        assert (await http.get(url, headers=headers)).status_code == 403


async def test_the_stream_handshake_must_be_signed_too(emulator: RunningEmulator) -> None:
    settings = openai_settings(emulator.http_url, limits=FAST, twilio_auth_token=TOKEN)
    async with running_server(settings) as server:
        url = server.ws_url.removesuffix("/realtime") + "/call"
        with pytest.raises(InvalidStatus) as refused:
            async with twilio_call(url):
                pass
        assert refused.value.response.status_code == 403
        with pytest.raises(InvalidStatus):
            async with twilio_call(url, headers=signed(url, token="f" * 32)):
                pass
        assert emulator.state.total_connections == 0  # refused before any backend work
        async with twilio_call(url, headers=signed(url)):
            await until(lambda: emulator.state.active_connections == 1)


async def test_a_signed_call_needs_no_client_token(emulator: RunningEmulator) -> None:
    settings = openai_settings(
        emulator.http_url, limits=FAST, twilio_auth_token=TOKEN, client_tokens=("client-token",)
    )
    async with running_server(settings) as server:
        url = server.ws_url.removesuffix("/realtime") + "/call"
        async with twilio_call(url, headers=signed(url)):
            await until(lambda: emulator.state.active_connections == 1)
        with pytest.raises(InvalidStatus) as refused:
            async with client(server.ws_url):
                pass
        assert refused.value.response.status_code == 401  # /realtime still asks for one


async def test_without_an_auth_token_calls_need_the_client_token(
    emulator: RunningEmulator,
) -> None:
    settings = openai_settings(emulator.http_url, limits=FAST, client_tokens=("client-token",))
    async with running_server(settings) as server:
        url = server.ws_url.removesuffix("/realtime") + "/call"
        with pytest.raises(InvalidStatus) as refused:
            async with twilio_call(url):
                pass
        assert refused.value.response.status_code == 401


async def test_protocol_json_describes_the_twilio_dialect() -> None:
    import jsonschema

    async with running_server(Settings()) as server, httpx.AsyncClient() as http:
        schema = (await http.get(f"{server.http_url}/protocol.json")).json()["twilio"]
    start = {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": "MZ1",
        "start": {
            "streamSid": "MZ1",
            "callSid": "CA1",
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    }
    jsonschema.validate(start, schema["client"])
    jsonschema.validate({"event": "clear", "streamSid": "MZ1"}, schema["server"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"event": "media", "streamSid": "MZ1"}, schema["server"])
