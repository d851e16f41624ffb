"""POST /api/session: ephemeral client secrets minted by the backend (the emulator, through
the real SDK), bound to the server's profile; the client never sees the server's key."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI

from rt_server.emulator import RunningEmulator
from rt_server.profile import Profile
from tests.conftest import API_KEY, azure_settings, openai_settings
from tests.e2e.records.test_records import weather_tools
from tests.support.harness import running_server


async def mint(url: str, **options: Any) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(f"{url}/api/session", **options)


def assert_no_server_key(response: httpx.Response) -> None:
    assert API_KEY not in response.text
    assert all(API_KEY not in value for value in response.headers.values())


async def test_openai_secret_carries_the_profile_and_tools(emulator: RunningEmulator) -> None:
    profile = Profile(instructions="You are the front desk.", voice="marin")
    settings = openai_settings(emulator.http_url, profile=profile)
    async with running_server(settings, tools=weather_tools()) as server:
        response = await mint(server.http_url)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert_no_server_key(response)
    secret = response.json()
    assert set(secret) == {"value", "expires_at", "session"}
    assert secret["value"].startswith("ek_")
    session = secret["session"]
    assert session["instructions"] == "You are the front desk."
    assert session["audio"]["output"]["voice"] == "marin"
    assert [tool["name"] for tool in session["tools"]] == ["get_weather"]
    assert emulator.state.last_authorization == API_KEY  # the server's key went to the backend
    # The secret works as a credential, and the session it opens is the server's profile.
    sdk = AsyncOpenAI(api_key=secret["value"], base_url=f"{emulator.http_url}/v1")
    async with sdk.realtime.connect(model="gpt-realtime") as connection:
        created = await connection.recv()
    await sdk.close()
    assert created.type == "session.created"
    assert created.session.instructions == "You are the front desk."  # type: ignore[union-attr]


async def test_azure_ga_secret_goes_to_the_v1_path(emulator: RunningEmulator) -> None:
    settings = azure_settings(emulator.http_url, client_secret_seconds=120)
    async with running_server(settings) as server:
        response = await mint(server.http_url)
    assert response.status_code == 200, response.text
    assert_no_server_key(response)
    secret = response.json()
    assert secret["session"]["model"] == "my-realtime"
    assert secret["value"] in emulator.state.client_secrets
    assert emulator.state.last_authorization == API_KEY


@pytest.mark.parametrize(
    ("options", "status", "code"),
    [
        ({}, 401, "unauthorized"),
        ({"headers": {"Authorization": "Bearer nope"}}, 401, "unauthorized"),
        ({"headers": {"Authorization": "Bearer client-1"}}, 200, None),
        ({"params": {"token": "client-1"}}, 200, None),
        ({"params": {"token": "client-1", "profile": "nope"}}, 400, "unknown_profile"),
        (
            {"params": {"token": "client-1"}, "headers": {"Origin": "https://evil.example"}},
            403,
            "forbidden_origin",
        ),
    ],
)
async def test_client_authentication_as_for_realtime(
    emulator: RunningEmulator, options: dict[str, Any], status: int, code: str | None
) -> None:
    settings = openai_settings(
        emulator.http_url,
        client_tokens=("client-1",),
        allowed_origins=("https://app.example",),
    )
    async with running_server(settings) as server:
        response = await mint(server.http_url, **options)
    assert response.status_code == status, response.text
    assert_no_server_key(response)
    if code is not None:
        assert response.json()["error"]["code"] == code


async def test_a_refused_key_is_a_bad_gateway_without_the_key(emulator: RunningEmulator) -> None:
    settings = replace(openai_settings(emulator.http_url), openai_api_key="sk-wrong-key")
    async with running_server(settings) as server:
        response = await mint(server.http_url)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "backend_auth_failed"
    assert "sk-wrong-key" not in response.text


async def test_an_unreachable_backend_is_unavailable() -> None:
    settings = openai_settings("http://127.0.0.1:9", limits=openai_settings("x").limits)
    async with running_server(settings) as server:
        response = await mint(server.http_url)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "backend_unreachable"


async def test_minting_is_rate_limited_per_caller(emulator: RunningEmulator) -> None:
    tokens = ("caller-one-token-abc", "caller-two-token-abc")
    settings = openai_settings(emulator.http_url, client_tokens=tokens, client_secrets_per_minute=3)
    async with running_server(settings) as server:
        one = {"headers": {"Authorization": f"Bearer {tokens[0]}"}}
        answers = [await mint(server.http_url, **one) for _ in range(4)]
        other = await mint(server.http_url, params={"token": tokens[1]})
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 20  # 3 a minute: one more in 20 s
    assert other.status_code == 200  # another caller has a rate of its own
