"""G.711 codecs, the reply voice and the VAD (pure numpy)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from rt_server.emulator.audio import (
    Vad,
    VadEvent,
    VadParams,
    alaw_decode,
    alaw_encode,
    speak,
    speak_slice,
    ulaw_decode,
    ulaw_encode,
    word_frequency,
)

samples = st.lists(st.integers(-32768, 32767), min_size=1, max_size=200)


@given(samples)
def test_ulaw_round_trip_is_within_the_quantisation_step(values: list[int]) -> None:
    pcm = np.array(values, dtype=np.int16)
    back = ulaw_decode(ulaw_encode(pcm)).astype(np.int32)
    error = np.abs(back - pcm.astype(np.int32))
    assert (error <= np.maximum(np.abs(pcm.astype(np.int32)) // 8, 8) + 1).all()


@given(samples)
def test_alaw_round_trip_is_within_the_quantisation_step(values: list[int]) -> None:
    pcm = np.array(values, dtype=np.int16)
    back = alaw_decode(alaw_encode(pcm)).astype(np.int32)
    error = np.abs(back - pcm.astype(np.int32))
    assert (error <= np.maximum(np.abs(pcm.astype(np.int32)) // 8, 16) + 1).all()


def test_g711_known_values() -> None:
    # ITU-T G.711 reference points: silence and full scale.
    assert ulaw_encode(np.array([0, 32767, -32768], dtype=np.int16)) == b"\xff\x80\x00"
    assert alaw_encode(np.array([0, 32767, -32768], dtype=np.int16)) == b"\xd5\xaa\x2a"
    assert ulaw_decode(b"\xff").tolist() == [0]


def test_each_word_is_a_tone_of_its_own_frequency() -> None:
    rate = 24000
    pcm = speak(["hello", "world"], rate, 500).astype(np.float64)
    for index, word in enumerate(["hello", "world"]):
        segment = pcm[index * rate // 2 : index * rate // 2 + rate // 4]
        spectrum = np.abs(np.fft.rfft(segment))
        peak_hz = np.argmax(spectrum) * rate / len(segment)
        assert abs(peak_hz - word_frequency(word)) < 8


def feed_in_frames(vad: Vad, pcm: np.ndarray, frame: int) -> list[VadEvent]:
    events: list[VadEvent] = []
    for start in range(0, len(pcm), frame):
        events += vad.feed(pcm[start : start + frame])
    return events


def test_vad_ignores_silence_and_low_noise() -> None:
    rng = np.random.default_rng(1)
    noise = (rng.normal(0, 30, 24000 * 3)).astype(np.int16)  # about -60 dBFS
    assert feed_in_frames(Vad(24000, VadParams()), noise, 480) == []


def test_vad_finds_a_tone_burst_and_its_end() -> None:
    quiet = np.zeros(24000, dtype=np.int16)
    burst = speak(["word"] * 3, 24000, 300)
    pcm = np.concatenate([quiet, burst, quiet])
    events = feed_in_frames(Vad(24000, VadParams(silence_duration_ms=500)), pcm, 480)
    assert [e.kind for e in events] == ["start", "stop"]
    assert 1000 <= events[0].ms <= 1030
    assert 1000 + 900 + 400 <= events[1].ms <= 1000 + 900 + 600


def test_vad_threshold_maps_to_level() -> None:
    tone = (np.sin(np.arange(24000) / 5) * 300).astype(np.int16)  # about -43 dBFS
    assert feed_in_frames(Vad(24000, VadParams(threshold=0.2)), tone, 480)
    assert not feed_in_frames(Vad(24000, VadParams(threshold=0.8)), tone, 480)


def test_reply_audio_made_in_slices_is_the_whole_reply_cut() -> None:
    words = ["hello", "there", "general", "kenobi"]
    whole = speak(words, 24000, 333)
    for start, stop in [(0, 100), (7000, 9000), (0, whole.size), (whole.size - 5, whole.size + 50)]:
        assert np.array_equal(speak_slice(words, 24000, 333, start, stop), whole[start:stop])
