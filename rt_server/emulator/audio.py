"""Audio for the emulator: G.711 codecs, the audible reply "voice", and an energy-based VAD.

Pure numpy, no I/O. The hot path (`Vad.feed`, `decode_input`) does a fixed, small number of
vectorised numpy calls per client frame: 200+ real-time sessions must not make the emulator
the bottleneck of a benchmark.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import numpy.typing as npt

AudioFormat = Literal["audio/pcm", "audio/pcmu", "audio/pcma"]
Int16Array = npt.NDArray[np.int16]

PCM_RATE = 24_000
G711_RATE = 8_000


def sample_rate(fmt: AudioFormat) -> int:
    """PCM is 24 kHz; both G.711 laws are 8 kHz, as in the real service."""
    return PCM_RATE if fmt == "audio/pcm" else G711_RATE


def bytes_per_ms(fmt: AudioFormat) -> float:
    return sample_rate(fmt) * (2 if fmt == "audio/pcm" else 1) / 1000


# --- G.711 -------------------------------------------------------------------------------------
# The classic Sun g711.c algorithms, evaluated once over every input value into lookup tables, so
# encoding and decoding are a single numpy indexing operation each (audioop is deprecated).


def _build_ulaw_tables() -> tuple[npt.NDArray[np.uint8], Int16Array]:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), 8159) + 0x21
    seg = np.searchsorted(np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]), mag)
    uval = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> np.minimum(seg + 1, 8)) & 0xF))
    encode = ((uval ^ mask) & 0xFF).astype(np.uint8)
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    decode = np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)
    return encode, decode


def _build_alaw_tables() -> tuple[npt.NDArray[np.uint8], Int16Array]:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]), mag)
    shift = np.where(seg < 2, 1, seg)
    aval = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> shift) & 0xF))
    encode = ((aval ^ mask) & 0xFF).astype(np.uint8)
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg_d = (a & 0x70) >> 4
    t = ((a & 0x0F) << 4) + np.where(seg_d == 0, 8, 0x108)
    t = np.where(seg_d > 1, t << np.maximum(seg_d - 1, 0), t)
    decode = np.where(a & 0x80, t, -t).astype(np.int16)
    return encode, decode


_ULAW_ENCODE, _ULAW_DECODE = _build_ulaw_tables()
_ALAW_ENCODE, _ALAW_DECODE = _build_alaw_tables()


def ulaw_encode(pcm: Int16Array) -> bytes:
    return bytes(_ULAW_ENCODE[pcm.view(np.uint16) ^ 0x8000].tobytes())


def ulaw_decode(data: bytes) -> Int16Array:
    return _ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def alaw_encode(pcm: Int16Array) -> bytes:
    return bytes(_ALAW_ENCODE[pcm.view(np.uint16) ^ 0x8000].tobytes())


def alaw_decode(data: bytes) -> Int16Array:
    return _ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def decode_input(data: bytes, fmt: AudioFormat) -> Int16Array:
    """Wire bytes of `fmt` to int16 samples at `sample_rate(fmt)`."""
    if fmt == "audio/pcmu":
        return ulaw_decode(data)
    if fmt == "audio/pcma":
        return alaw_decode(data)
    return np.frombuffer(data[: len(data) - len(data) % 2], dtype="<i2")


def encode_output(pcm: Int16Array, fmt: AudioFormat) -> bytes:
    """int16 samples (already at `sample_rate(fmt)`) to wire bytes of `fmt`."""
    if fmt == "audio/pcmu":
        return ulaw_encode(pcm)
    if fmt == "audio/pcma":
        return alaw_encode(pcm)
    return pcm.astype("<i2").tobytes()


# --- the reply "voice" -------------------------------------------------------------------------
# One short tone per word: audible (a client can hear that something is spoken), deterministic, and
# its frequency identifies the word (a stable hash), so tests can check what was "said".

TONE_AMPLITUDE = 0.3
FADE_MS = 10
WORD_GAP_MS = 40


def word_frequency(word: str) -> float:
    """A stable frequency between 220 and 880 Hz for a word."""
    return 220.0 + zlib.crc32(word.lower().encode()) % 661


@lru_cache(maxsize=128)  # 16 KB a word at 24 kHz: a bounded few MB, shared by sessions
def _word_tone(word: str, rate: int, n_samples: int) -> bytes:
    gap = min(n_samples // 2, rate * WORD_GAP_MS // 1000)
    n_tone = n_samples - gap
    t = np.arange(n_tone, dtype=np.float64) / rate
    tone = TONE_AMPLITUDE * np.sin(2 * np.pi * word_frequency(word) * t)
    fade = min(n_tone // 2, rate * FADE_MS // 1000)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        tone[:fade] *= ramp
        tone[n_tone - fade :] *= ramp[::-1]
    samples = np.concatenate([tone, np.zeros(gap)]) * 32767
    return samples.astype("<i2").tobytes()


def speak(words: list[str], rate: int, word_ms: int) -> Int16Array:
    """The reply audio for `words`: `word_ms` of tone-and-gap per word."""
    return speak_slice(words, rate, word_ms, 0, len(words) * (rate * word_ms // 1000))


def speak_slice(words: list[str], rate: int, word_ms: int, start: int, stop: int) -> Int16Array:
    """Samples ``start:stop`` of ``speak(words, ...)``, built from the words they cover
    only (a reply's audio is made chunk by chunk, as it is sent)."""
    n_samples = rate * word_ms // 1000
    if not n_samples or stop <= start:
        return np.zeros(0, dtype="<i2")
    first, last = start // n_samples, min(len(words), -(-stop // n_samples))
    pieces = b"".join(_word_tone(word, rate, n_samples) for word in words[first:last])
    offset = first * n_samples
    samples = np.frombuffer(pieces, dtype="<i2")
    return samples[start - offset : stop - offset]


# --- voice activity detection ------------------------------------------------------------------

VAD_FRAME_MS = 10
VAD_MIN_SPEECH_FRAMES = 3  # 30 ms of consecutive energy starts a turn; clicks do not


def threshold_to_dbfs(threshold: float) -> float:
    """The VAD threshold (0..1) as a frame RMS level: 0 -> -60 dBFS, 0.5 -> -40, 1 -> -20.

    Typical close-talk speech sits around -30..-15 dBFS, room noise below -50 dBFS.
    """
    return -60.0 + 40.0 * threshold


@dataclass(frozen=True)
class VadParams:
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500


@dataclass(frozen=True)
class VadEvent:
    kind: Literal["start", "stop"]
    ms: int  # position in all audio appended during the session


class Vad:
    """Energy VAD over 10 ms frames. Feed it samples; it reports speech start and stop."""

    def __init__(self, rate: int, params: VadParams, position_ms: int = 0) -> None:
        self._frame = rate * VAD_FRAME_MS // 1000
        level = 32768.0 * 10 ** (threshold_to_dbfs(params.threshold) / 20)
        self._min_energy = level * level * self._frame  # sum of squares over one frame
        self._silence_frames = max(1, params.silence_duration_ms // VAD_FRAME_MS)
        self._rest: Int16Array = np.zeros(0, dtype=np.int16)
        self._frame_index = position_ms // VAD_FRAME_MS
        self.in_speech = False
        self._run = 0  # voiced frames in a row (before a start) or silent ones (during speech)

    def feed(self, samples: Int16Array) -> list[VadEvent]:
        if self._rest.size:
            samples = np.concatenate([self._rest, samples])
        n = samples.size // self._frame
        self._rest = samples[n * self._frame :]
        if n == 0:
            return []
        frames = samples[: n * self._frame].reshape(n, self._frame).astype(np.float32)
        voiced = np.einsum("ij,ij->i", frames, frames) > self._min_energy
        first = self._frame_index
        self._frame_index += n
        if not self.in_speech and self._run == 0 and not voiced.any():
            return []  # the common case between turns: silence, nothing to do
        if self.in_speech and voiced[-1] and voiced.all():
            self._run = 0
            return []  # the common case during a turn
        return self._walk(voiced.tolist(), first)

    def _walk(self, voiced: list[bool], first: int) -> list[VadEvent]:
        events: list[VadEvent] = []
        for offset, is_voiced in enumerate(voiced):
            index = first + offset
            if not self.in_speech:
                self._run = self._run + 1 if is_voiced else 0
                if self._run >= VAD_MIN_SPEECH_FRAMES:
                    start = index - VAD_MIN_SPEECH_FRAMES + 1
                    events.append(VadEvent("start", start * VAD_FRAME_MS))
                    self.in_speech, self._run = True, 0
            else:
                self._run = 0 if is_voiced else self._run + 1
                if self._run >= self._silence_frames:
                    events.append(VadEvent("stop", (index + 1) * VAD_FRAME_MS))
                    self.in_speech, self._run = False, 0
        return events
