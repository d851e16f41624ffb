"""``POST /make-call`` as the Twilio demo's webapp calls it, against a local stand-in for
Twilio's REST API (``TWILIO_API_URL``): the call is created with our TwiML URL."""

from __future__ import annotations

import base64
from dataclasses import replace
from urllib.parse import parse_qsl

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rt_server.config import Settings
from rt_server.serving import serve
from tests.support.harness import running_server

SID, TOKEN, CALLER = "AC0123456789abcdef0123456789abcdef", "0123456789abcdef" * 2, "+15550199"


class TwilioApi:
    """Twilio's ``Calls.json`` endpoint: records each request, answers like Twilio."""

    def __init__(self, status: int = 201) -> None:
        self.status = status
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    def app(self) -> Starlette:
        async def calls(request: Request) -> Response:
            form = dict(parse_qsl((await request.body()).decode()))
            self.requests.append((request.url.path, request.headers["authorization"], form))
            if self.status >= 400:
                return JSONResponse({"code": 21211, "message": "Invalid 'To'"}, self.status)
            return JSONResponse({"sid": "CA" + "1" * 32, "status": "queued"}, self.status)

        return Starlette(
            routes=[Route("/2010-04-01/Accounts/{sid}/Calls.json", calls, methods=["POST"])]
        )


def settings_for(api_url: str, **changes: object) -> Settings:
    settings = Settings(
        admin_local=True,
        twilio_account_sid=SID,
        twilio_auth_token=TOKEN,
        twilio_phone_number=CALLER,
        twilio_api_url=api_url,
        public_url="https://abc.ngrok.app",
    )
    return replace(settings, **changes)  # type: ignore[arg-type]


async def test_an_outbound_call_is_placed_with_our_twiml() -> None:
    twilio = TwilioApi()
    async with (
        serve(twilio.app()) as api,
        running_server(settings_for(api.http_url)) as server,
        httpx.AsyncClient() as http,
    ):
        placed = await http.post(f"{server.http_url}/make-call", json={"phoneNumber": "+15550100"})
    assert placed.status_code == 200, placed.text
    assert placed.json() == {"success": True, "callSid": "CA" + "1" * 32}
    [(path, authorization, form)] = twilio.requests
    assert path == f"/2010-04-01/Accounts/{SID}/Calls.json"
    assert authorization == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert form == {"To": "+15550100", "From": CALLER, "Url": "https://abc.ngrok.app/twiml"}


@pytest.mark.parametrize(
    ("changes", "body", "status", "code"),
    [
        ({}, {}, 422, "invalid_request"),
        ({"twilio_phone_number": None}, {"phoneNumber": "+15550100"}, 503, "calls_disabled"),
        ({"admin_local": False}, {"phoneNumber": "+15550100"}, 403, "admin_disabled"),
        (
            {"twilio_api_url": "http://127.0.0.1:9"},
            {"phoneNumber": "+1555"},
            502,
            "twilio_unreachable",
        ),
    ],
)
async def test_what_cannot_be_placed_is_answered(
    changes: dict[str, object], body: dict[str, str], status: int, code: str
) -> None:
    async with running_server(settings_for("http://127.0.0.1:9", **changes)) as server:
        async with httpx.AsyncClient() as http:
            answer = await http.post(f"{server.http_url}/make-call", json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code


async def test_a_call_twilio_refuses_is_a_502_with_its_reason() -> None:
    twilio = TwilioApi(status=400)
    async with (
        serve(twilio.app()) as api,
        running_server(settings_for(api.http_url)) as server,
        httpx.AsyncClient() as http,
    ):
        refused = await http.post(f"{server.http_url}/make-call", json={"phoneNumber": "nope"})
    assert refused.status_code == 502
    assert refused.json()["error"]["code"] == "twilio_refused"
    assert "Invalid 'To'" in refused.json()["error"]["message"]
