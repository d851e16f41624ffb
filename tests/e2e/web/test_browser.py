"""The web client in a real headless Chromium against a running rt_server and the emulator.

Chromium's fake microphone plays a WAV of espeak-ng speech followed by silence, so server
VAD hears one spoken turn. Every wait is on page state (DOM or ``window.rtStats``), never a
sleep. A screenshot of the finished conversation goes to ``test-artifacts/``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect

from rt_server.client.wav import silence, write_wav
from rt_server.edge import server_options
from rt_server.emulator import RunningEmulator
from rt_server.main import create_app
from rt_server.runtime import app_runtime
from rt_server.serving import serve
from tests.conftest import openai_settings
from tests.support.harness import RunningServer, running_server
from tests.support.speech import have_speech_tools, speech_pcm16

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parents[3] / "test-artifacts"
MIC_RATE = 48_000  # Chromium's fake capture device is happiest at 48 kHz

pytestmark = [
    pytest.mark.browser,
    pytest.mark.audio,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Chromium at {CHROMIUM}"),
    pytest.mark.skipif(not have_speech_tools(), reason="needs espeak-ng and sox"),
]

# Replies are done when no bubble is still streaming; the greeting is not a reply.
REPLIES = ".bubble.assistant:not(.greeting)"
DONE_REPLIES = f"{REPLIES}:not(.streaming)"


@pytest.fixture
def mic_wav(tmp_path: Path) -> Path:
    """What the fake microphone says: a question, then silence so that VAD ends the turn."""
    path = tmp_path / "mic.wav"
    speech = speech_pcm16("Hello there, what is the time?", MIC_RATE)
    write_wav(path, speech + silence(3.0, MIC_RATE), rate=MIC_RATE)
    return path


@asynccontextmanager
async def web_client(url: str, mic_wav: Path, profile: Path) -> AsyncIterator[Page]:
    """The web client at ``url`` in a fresh Chromium profile; fails on CSP or page errors."""
    args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic_wav}%noloop",  # say it once
        "--autoplay-policy=no-user-gesture-required",
    ]
    problems: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=args,
            viewport={"width": 960, "height": 600},
        )
        try:
            page = browser.pages[0] if browser.pages else await browser.new_page()
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on(
                "console",
                lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
            )
            await page.goto(url)
            yield page
        finally:
            await browser.close()
    assert problems == []  # no CSP violation, no uncaught exception


@pytest.fixture
async def page(server: RunningServer, mic_wav: Path, tmp_path: Path) -> AsyncIterator[Page]:
    async with web_client(f"{server.http_url}/", mic_wav, tmp_path / "profile") as page:
        yield page


@pytest.fixture
async def token_page(
    emulator: RunningEmulator, mic_wav: Path, tmp_path: Path
) -> AsyncIterator[Page]:
    """The web client of a server that wants the client token ``letmein``."""
    settings = openai_settings(emulator.http_url, client_tokens=("letmein",))
    async with (
        running_server(settings) as server,
        web_client(f"{server.http_url}/", mic_wav, tmp_path / "profile") as page,
    ):
        yield page


async def closed_port() -> int:
    """A loopback port that nothing listens on (just bound and released)."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port


async def connect(page: Page) -> None:
    await page.click("#connect")
    await expect(page.locator("body")).to_have_attribute("data-state", "connected")
    await expect(page.locator("#status")).to_have_text("Connected")
    await expect(page.locator(".bubble.greeting")).not_to_be_empty()


async def test_typed_message_streams_a_reply_that_is_played(page: Page) -> None:
    await connect(page)
    await page.fill("#text", "hello browser")
    await page.press("#text", "Enter")
    await expect(page.locator(".bubble.user")).to_have_text("hello browser")
    reply = page.locator(DONE_REPLIES)
    await expect(reply).to_have_text("You said: hello browser.")
    await expect(reply).to_have_attribute("data-id", re.compile(r"\S+-\d+"))
    await page.wait_for_function("() => rtStats.samplesPlayed > 0 && rtStats.samplesQueued === 0")
    assert await page.evaluate("() => rtStats.framesReceived") > 0

    await page.click("#connect")  # now labelled Disconnect
    await expect(page.locator("body")).to_have_attribute("data-state", "disconnected")
    await expect(page.locator("#text")).to_be_disabled()
    await expect(page.locator("#connect")).to_have_text("Connect")


async def test_a_new_question_stops_the_answer_that_is_playing(page: Page) -> None:
    await connect(page)
    await page.fill("#text", " ".join(["a question with a long answer"] * 6))
    await page.press("#text", "Enter")
    await page.wait_for_function("() => rtStats.samplesPlayed > 0 && rtStats.samplesQueued > 0")
    await page.fill("#text", "never mind")
    await page.press("#text", "Enter")
    await expect(page.locator(DONE_REPLIES).last).to_have_text("You said: never mind.")
    assert await page.evaluate("() => rtStats.playbackClears") == 1
    await expect(page.locator(REPLIES).first).to_have_class(re.compile(r"\binterrupted\b"))


async def test_spoken_question_is_transcribed_answered_and_played(page: Page) -> None:
    await connect(page)
    await page.fill("#text", "first a typed question")
    await page.press("#text", "Enter")
    await expect(page.locator(DONE_REPLIES)).to_have_count(1)
    await page.wait_for_function("() => rtStats.samplesPlayed > 0 && rtStats.samplesQueued === 0")
    played_before = await page.evaluate("() => rtStats.samplesPlayed")

    await page.click("#mic")
    await expect(page.locator("body")).to_have_attribute("data-mic", "on")
    await expect(page.locator("#mic")).to_have_text("Stop microphone")
    await page.wait_for_function("() => rtStats.level > 0.05")  # the meter moves
    spoken = page.locator(".bubble.user.speech:not(.pending):not(.partial)")
    await expect(spoken).to_have_text(re.compile(r"\S"), timeout=20_000)
    heard = await spoken.text_content()
    # The caption grew as the transcript streamed, before its final text.
    captions = await page.evaluate("() => rtStats.captions")
    assert heard and captions and captions[-1] == heard
    assert all(heard.startswith(caption) for caption in captions)
    await expect(page.locator(DONE_REPLIES)).to_have_count(2, timeout=20_000)
    await expect(page.locator(DONE_REPLIES).last).to_have_text(f"You said: {heard}.")
    await page.wait_for_function(
        "(before) => rtStats.samplesPlayed > before && rtStats.samplesQueued === 0",
        arg=played_before,
        timeout=20_000,
    )
    stats = await page.evaluate("() => rtStats")
    assert stats["framesSent"] > 50  # 20 ms frames: more than a second of speech went out
    assert stats["bytesSent"] == 960 * stats["framesSent"]  # PCM16 at 24 kHz
    assert stats["speechStarted"] == 1
    assert stats["playbackClears"] == 1  # barge-in cleared the (idle) queue once
    await expect(page.locator(".interrupted")).to_have_count(0)  # nothing was playing

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "web-client.png")
    await page.click("#mic")
    await expect(page.locator("body")).to_have_attribute("data-mic", "off")


async def test_connection_problems_are_reported_in_plain_words(page: Page) -> None:
    await page.fill("#url", f"ws://127.0.0.1:{await closed_port()}/realtime")
    await page.click("#connect")
    await expect(page.locator(".error")).to_have_text(
        re.compile(r"This page can only connect to the server it came from \(127\.0\.0\.1:\d+\)\.")
    )
    await expect(page.locator("body")).to_have_attribute("data-state", "disconnected")

    await page.fill("#url", page.url.replace("http://", "ws://") + "nothing-here")
    await page.click("#connect")
    await expect(page.locator("body")).to_have_attribute("data-state", "error")
    await expect(page.locator(".error").last).to_have_text(
        "Could not connect. The server may be down, or it refused the token."
    )


async def test_the_token_field_is_sent_and_a_refusal_explained(token_page: Page) -> None:
    await token_page.click("#connect")
    await expect(token_page.locator("body")).to_have_attribute("data-state", "error")
    await expect(token_page.locator(".error")).to_contain_text("refused the token")
    await token_page.fill("#token", "letmein")
    await connect(token_page)


async def test_speaking_over_a_reply_stops_its_playback_at_once(page: Page) -> None:
    await connect(page)
    long_text = " ".join(["this is a long question that takes a while to answer"] * 4)
    await page.fill("#text", long_text)
    await page.press("#text", "Enter")
    await page.wait_for_function("() => rtStats.samplesPlayed > 0")  # the reply is playing
    await page.click("#mic")
    await page.wait_for_function("() => rtStats.speechStarted === 1", timeout=20_000)
    stats = await page.evaluate("() => rtStats")
    assert stats["playbackClears"] == 1
    assert stats["samplesQueued"] == 0
    await page.wait_for_function("() => rtStats.samplesDropped > 0")  # the worklet confirms
    first = page.locator(REPLIES).first
    await expect(first).to_have_class(re.compile(r"\binterrupted\b"))
    # The spoken turn still gets its own answer after the interruption.
    await expect(page.locator(".bubble.user.speech:not(.pending)")).to_have_count(1, timeout=20_000)
    await expect(page.locator(DONE_REPLIES).last).to_contain_text("You said: [", timeout=20_000)


async def test_a_drained_session_is_resumed_by_the_page_with_its_context(
    emulator: RunningEmulator, mic_wav: Path, tmp_path: Path
) -> None:
    """The server drains (``shutting_down`` with the resume token, close 1001): the page
    reconnects with ``?resume=`` by itself and the conversation goes on."""
    settings = openai_settings(emulator.http_url)
    app = create_app(settings)
    async with (
        serve(app, **server_options(settings.limits)) as served,
        web_client(f"{served.http_url}/", mic_wav, tmp_path / "profile") as page,
    ):
        await connect(page)
        await page.fill("#text", "my name is Ada")
        await page.press("#text", "Enter")
        await expect(page.locator(DONE_REPLIES)).to_have_count(1)
        for session in list(app_runtime(app).sessions):
            session.shutdown(0.0)
        await expect(page.locator(".note").last).to_have_text(
            "Reconnected; the conversation goes on."
        )
        await expect(page.locator("body")).to_have_attribute("data-state", "connected")
        await page.fill("#text", "recap")
        await page.press("#text", "Enter")
        await expect(page.locator(DONE_REPLIES).last).to_contain_text("my name is Ada")
        assert await page.locator(".bubble.greeting").count() == 1  # not greeted again
