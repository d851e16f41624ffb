"""``ADMIN_LOCAL``: the seed frontends reach the admin endpoints from this machine without a
token; anything forwarded (a proxy, ngrok) still needs one; never beyond loopback."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from rt_server.config import Settings
from rt_server.emulator import RunningEmulator
from rt_server.errors import ConfigError
from tests.conftest import openai_settings
from tests.e2e.records.conftest import records_server
from tests.support.harness import client, until

ADMIN = "admin-local-test-token"


def test_admin_local_is_refused_unless_the_server_listens_on_loopback() -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        assert Settings.from_env({"ADMIN_LOCAL": "true", "HOST": host}).admin_local
    with pytest.raises(ConfigError, match="ADMIN_LOCAL"):
        Settings.from_env({"ADMIN_LOCAL": "true", "HOST": "0.0.0.0"})
    with pytest.raises(ConfigError, match="ADMIN_LOCAL"):
        Settings.from_env({"ADMIN_LOCAL": "maybe"})
    assert not Settings.from_env({}).admin_local


async def test_local_callers_need_no_token_and_forwarded_ones_do(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    settings = replace(
        openai_settings(emulator.http_url),
        admin_local=True,
        admin_token=ADMIN,
        records_url=f"sqlite+aiosqlite:///{tmp_path}/records.sqlite3",
    )
    async with records_server(settings) as live, httpx.AsyncClient() as http:
        base = live.ws_url.removesuffix("/realtime")
        listed = await http.get(f"{live.http_url}/api/conversations")
        assert listed.status_code == 200, listed.text
        forwarded = {"X-Forwarded-For": "203.0.113.7"}  # what ngrok adds
        refused = await http.get(f"{live.http_url}/api/conversations", headers=forwarded)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
        tokened = {**forwarded, "Authorization": f"Bearer {ADMIN}"}
        assert (await http.get(f"{live.http_url}/api/conversations", headers=tokened)).is_success
        async with client(f"{base}/monitor") as monitor:
            hello, _ = await until(monitor, lambda f: True)
            assert isinstance(hello, dict)
            assert hello["type"] == "monitor"
        with pytest.raises(InvalidStatus) as proxied:
            async with client(f"{base}/monitor", additional_headers=forwarded):
                pass
        assert proxied.value.response.status_code == 401


async def test_without_admin_local_a_local_caller_still_needs_the_token(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    settings = replace(
        openai_settings(emulator.http_url),
        admin_token=ADMIN,
        records_url=f"sqlite+aiosqlite:///{tmp_path}/records.sqlite3",
    )
    async with records_server(settings) as live, httpx.AsyncClient() as http:
        assert (await http.get(f"{live.http_url}/api/conversations")).status_code == 401
        with pytest.raises(InvalidStatus) as refused:
            async with client(live.ws_url.removesuffix("/realtime") + "/monitor"):
                pass
        assert refused.value.response.status_code == 401
