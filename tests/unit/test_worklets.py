"""The audio worklets outside a browser: node runs them at several context sample rates.

The browser test runs where Chromium grants a 24 kHz context; Firefox and others capture at
the device rate, so the resampling paths are checked here with a 440 Hz tone.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rt_server.web import STATIC

NODE = shutil.which("node")
HARNESS = Path(__file__).parents[1] / "support" / "worklet_harness.mjs"
FRAME = 480  # 20 ms at 24 kHz

pytestmark = pytest.mark.skipif(NODE is None, reason="needs node")


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    assert NODE is not None
    run = subprocess.run(
        [NODE, str(HARNESS), str(STATIC)], capture_output=True, text=True, check=True, timeout=60
    )
    result: dict[str, Any] = json.loads(run.stdout)
    return result


def test_capture_sends_20_ms_pcm16_frames_at_24k_from_any_rate(report: dict[str, Any]) -> None:
    for run in report["capture"]:
        assert run["sizes"] == [2 * FRAME], run  # every frame is 480 samples of PCM16
        assert abs(run["length"] - 24_000) <= FRAME, run  # one second in, one second out
        assert run["crossings"] == pytest.approx(880, rel=0.03), run  # still 440 Hz
        assert run["rms"] == pytest.approx(0.5 / 2**0.5, rel=0.03), run  # no loss, no gain
        assert run["maxLevel"] > 0.5, run  # the meter moves


def test_playback_plays_24k_audio_at_the_context_rate(report: dict[str, Any]) -> None:
    for run in report["playback"]:
        assert abs(run["length"] - run["rate"]) <= 2, run  # one second of audio
        assert run["played"] == run["length"], run
        assert run["queued"] == 0, run
        assert run["crossings"] == pytest.approx(880, rel=0.03), run
        assert run["rms"] == pytest.approx(0.5 / 2**0.5, rel=0.03), run


def test_clear_silences_playback_at_once_and_reports_what_it_dropped(
    report: dict[str, Any],
) -> None:
    barge_in = report["bargeIn"]
    assert barge_in["before"] > 0.3
    assert barge_in["after"] == 0
    assert barge_in["report"]["queued"] == 0
    assert barge_in["report"]["dropped"] > 40_000  # most of a second at 48 kHz
