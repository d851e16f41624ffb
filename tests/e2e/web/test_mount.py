"""mount_web_client: the page, its assets and the security headers, no browser."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import httpx
import pytest
from fastapi import FastAPI

from rt_server.web import STATIC, mount_web_client


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    mount_web_client(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://chat.example:8080") as c:
        yield c


def assert_hardened(response: httpx.Response) -> None:
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "default-src 'none'" in csp
    assert "connect-src 'self' ws://chat.example:8080 wss://chat.example:8080" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "microphone=(self)" in response.headers["permissions-policy"]


async def test_the_page_is_served_at_the_root_with_security_headers(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<title>rt_server</title>" in response.text
    assert_hardened(response)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("app.js", "javascript"),
        ("audio.js", "javascript"),
        ("capture-worklet.js", "javascript"),
        ("playback-worklet.js", "javascript"),
        ("style.css", "text/css"),
    ],
)
async def test_assets_are_served_with_the_right_type(
    http: httpx.AsyncClient, name: str, kind: str
) -> None:
    response = await http.get(f"/static/{name}")
    assert response.status_code == 200
    assert kind in response.headers["content-type"]
    assert_hardened(response)


async def test_missing_assets_and_traversal_are_404(http: httpx.AsyncClient) -> None:
    assert (await http.get("/static/nope.js")).status_code == 404
    assert (await http.get("/static/../__init__.py")).status_code == 404
    assert (await http.get("/static/%2e%2e/__init__.py")).status_code == 404


async def test_a_hostile_host_header_never_reaches_the_policy(http: httpx.AsyncClient) -> None:
    response = await http.get("/", headers={"host": "evil.example; script-src *"})
    csp = response.headers["content-security-policy"]
    assert "evil" not in csp
    assert "connect-src 'self';" in csp


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline: list[str] = []
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts.append(dict(attrs))
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if tag == "style":
            self.inline.append("style")

    def handle_data(self, data: str) -> None:
        if self.lasttag == "script" and data.strip():
            self.inline.append(data)


def test_the_page_has_no_inline_script_style_or_handlers() -> None:
    page = (STATIC / "index.html").read_text()
    parser = _Scripts()
    parser.feed(page)
    assert parser.scripts == [{"type": "module", "src": "static/app.js"}]
    assert parser.inline == []
    assert parser.handlers == []
    assert not re.search(r"\sstyle=", page)


def test_every_static_file_is_small_and_readable() -> None:
    for path in STATIC.iterdir():
        assert path.stat().st_size < 16_000, path.name
