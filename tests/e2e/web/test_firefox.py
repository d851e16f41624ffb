"""The web client in a real headless Firefox (Debian's ``firefox-esr``) over WebDriver BiDi.

``firefox/drive.mjs`` browses with puppeteer-core: it connects, types a message, waits for the
streamed reply and its audio, then speaks through Firefox's fake microphone (a steady tone at
about -23 dBFS, loud enough for the emulator's VAD) and falls silent to end the turn. It waits
on page state only and prints one JSON report, which this test checks. CI installs Firefox and
the driver's node_modules (``npm ci --prefix tests/support/firefox``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import RunningServer

FIREFOX = Path("/usr/bin/firefox-esr")
DRIVER = Path(__file__).parents[2] / "support" / "firefox" / "drive.mjs"
PUPPETEER = DRIVER.parent / "node_modules" / "puppeteer-core"
NODE = shutil.which("node")
ARTIFACTS = Path(__file__).parents[3] / "test-artifacts"
RUN_TIMEOUT = 60.0  # the whole browser run; it takes about 10 s

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not FIREFOX.exists(), reason=f"needs Firefox at {FIREFOX}"),
    pytest.mark.skipif(
        NODE is None or not PUPPETEER.is_dir(),
        reason="needs node and `npm ci --prefix tests/support/firefox`",
    ),
]


async def drive(url: str, screenshot: Path) -> dict[str, Any]:
    """Run the driver against ``url``; its report, which says what failed if it did."""
    assert NODE is not None
    process = await asyncio.create_subprocess_exec(
        NODE,
        str(DRIVER),
        url,
        str(screenshot),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # so that a timeout takes Firefox down with node
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        pytest.fail(f"the Firefox run took longer than {RUN_TIMEOUT:.0f} s")
    lines = stdout.decode().splitlines()
    assert lines, f"no report from the driver; stderr: {stderr.decode()[-2000:]}"
    report: dict[str, Any] = json.loads(lines[-1])
    assert "error" not in report, report  # a wait timed out: the step says which
    assert report["problems"] == [], report["problems"]  # no page error, no CSP violation
    assert process.returncode == 0, stderr.decode()[-2000:]
    return report


async def test_the_web_client_converses_by_text_and_voice_in_firefox(
    server: RunningServer,
) -> None:
    screenshot = ARTIFACTS / "firefox.png"
    screenshot.unlink(missing_ok=True)
    report = await drive(f"{server.http_url}/", screenshot)

    assert report["browser"].startswith("firefox/")
    assert report["status"] == "Connected"
    assert report["greeting"]
    assert report["userBubble"] == "hello firefox"
    assert report["reply"] == "You said: hello firefox."
    assert re.fullmatch(r"\S+-\d+", report["replyId"])
    typed = report["afterReply"]
    assert typed["framesReceived"] > 0
    assert typed["samplesPlayed"] > 0  # the playback worklet ran the reply's audio
    assert typed["playbackRate"] > 0

    assert report["micButton"] == "Stop microphone"
    assert report["levelWhileTone"] > 0.05  # the meter moved with the fake tone
    assert re.fullmatch(r"\[speech \d+\.\d\d s\]", report["heard"])
    assert report["spokenReply"] == f"You said: {report['heard']}."
    stats = report["stats"]
    assert stats["framesSent"] >= 50  # 20 ms frames: a second of the tone went out
    assert stats["bytesSent"] == 960 * stats["framesSent"]  # PCM16 at 24 kHz
    assert stats["captureRate"] > 0
    assert stats["speechStarted"] == 1
    assert stats["playbackClears"] == 1  # barge-in cleared the (idle) queue once
    assert report["interrupted"] == 0  # nothing was playing
    assert stats["samplesPlayed"] > typed["samplesPlayed"]  # the spoken reply was played
    assert stats["samplesQueued"] == 0

    assert screenshot.read_bytes().startswith(b"\x89PNG")
