"""Real speech for tests: espeak-ng speaks, sox resamples to the wire format. Cached per text.

Tests using these need the `espeak-ng` and `sox` programs; mark them `@pytest.mark.audio`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path


def have_speech_tools() -> bool:
    return shutil.which("espeak-ng") is not None and shutil.which("sox") is not None


@lru_cache(maxsize=64)
def _spoken(text: str, rate: int, encoding: str, bits: int) -> bytes:
    with tempfile.TemporaryDirectory(prefix="speech-") as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)
        sox = ["sox", str(wav), "-r", str(rate), "-c", "1", "-b", str(bits), "-e", encoding]
        result = subprocess.run([*sox, "-t", "raw", "-"], check=True, capture_output=True)
        return result.stdout


def speech_pcm16(text: str, rate: int = 24000) -> bytes:
    """`text` spoken as mono 16-bit little-endian PCM at `rate` Hz."""
    return _spoken(text, rate, "signed-integer", 16)


def speech_mulaw(text: str, rate: int = 8000) -> bytes:
    """`text` spoken as mono G.711 mu-law at `rate` Hz."""
    return _spoken(text, rate, "u-law", 8)


def speech_alaw(text: str, rate: int = 8000) -> bytes:
    """`text` spoken as mono G.711 A-law at `rate` Hz."""
    return _spoken(text, rate, "a-law", 8)
