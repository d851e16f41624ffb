"""WAV reading, mixing and resampling: pure functions, no server."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from rt_server.client.wav import RATE, WavError, read_wav, resample, rms_dbfs, silence, write_wav


def _tone(rate: int, seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return 0.5 * np.sin(2 * np.pi * freq * t)


def _write(path: Path, samples: np.ndarray, rate: int, width: int = 2) -> Path:
    """``samples`` (n, channels) floats in [-1, 1] as a PCM WAV of ``width`` bytes."""
    scale = 2 ** (8 * width - 1)
    ints = np.round(samples * (scale - 1)).astype(np.int64)
    if width == 1:
        raw = (ints + 128).astype(np.uint8).tobytes()
    elif width == 3:
        raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints.ravel())
    else:
        raw = ints.astype(f"<i{width}").tobytes()
    with wave.open(str(path), "wb") as out:
        out.setnchannels(samples.shape[1])
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(raw)
    return path


def _decode(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, "<i2").astype(np.float64) / 32768.0


def _peak_hz(samples: np.ndarray, rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * rate / len(samples))


def test_24k_mono_16bit_passes_through_unchanged(tmp_path: Path) -> None:
    tone = _tone(RATE, 0.5)[:, None]
    path = _write(tmp_path / "a.wav", tone, RATE)
    with wave.open(str(path)) as f:
        original = f.readframes(f.getnframes())
    assert read_wav(path) == original


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_resamples_to_24k_keeping_duration_and_pitch(tmp_path: Path, rate: int) -> None:
    path = _write(tmp_path / "a.wav", _tone(rate, 1.0)[:, None], rate)
    samples = _decode(read_wav(path))
    assert abs(len(samples) - RATE) <= 1
    assert _peak_hz(samples) == pytest.approx(440.0, abs=2.0)
    assert np.sqrt(np.mean(samples**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_downsampling_removes_content_above_the_new_nyquist(tmp_path: Path) -> None:
    # 15 kHz is representable at 48 kHz but not at 24 kHz: it must not alias into the output.
    path = _write(tmp_path / "a.wav", _tone(48000, 0.5, 15000.0)[:, None], 48000)
    assert rms_dbfs(read_wav(path)) < -60.0


def test_stereo_is_mixed_to_mono(tmp_path: Path) -> None:
    left = _tone(RATE, 0.5)
    stereo = np.stack([left, -left], axis=1)  # opposite phases cancel
    assert rms_dbfs(read_wav(_write(tmp_path / "s.wav", stereo, RATE))) == float("-inf")
    same = np.stack([left, left], axis=1)
    mono = _decode(read_wav(_write(tmp_path / "m.wav", same, RATE)))
    np.testing.assert_allclose(mono, left, atol=2 / 32768)


@pytest.mark.parametrize("width", [1, 3, 4])
def test_other_integer_widths(tmp_path: Path, width: int) -> None:
    tone = _tone(RATE, 0.2)
    out = _decode(read_wav(_write(tmp_path / "w.wav", tone[:, None], RATE, width)))
    np.testing.assert_allclose(out, tone, atol=0.01)


def _riff(fmt: bytes, data: bytes = b"\0\0" * 10) -> bytes:
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_float_wav_is_rejected_by_name(tmp_path: Path) -> None:
    path = tmp_path / "f.wav"
    path.write_bytes(_riff(struct.pack("<HHIIHH", 3, 1, 24000, 96000, 4, 32)))
    with pytest.raises(WavError, match="IEEE float"):
        read_wav(path)


def test_extensible_pcm_is_accepted_and_extensible_float_rejected(tmp_path: Path) -> None:
    def ext(sub: int) -> bytes:
        base = struct.pack("<HHIIHH", 0xFFFE, 1, 24000, 48000, 2, 16)
        guid = struct.pack("<H", sub) + bytes.fromhex("000000001000800000aa00389b71")
        return base + struct.pack("<HHI", 22, 16, 4) + guid

    ok = tmp_path / "ok.wav"
    ok.write_bytes(_riff(ext(1), b"\x01\x00" * 10))
    assert read_wav(ok) == b"\x01\x00" * 10
    bad = tmp_path / "bad.wav"
    bad.write_bytes(_riff(ext(3)))
    with pytest.raises(WavError, match="IEEE float"):
        read_wav(bad)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"ID3\x03 not a wav at all", "not a WAV"),
        (b"RIFF\x04\0\0\0WAVE", "no fmt chunk"),
        (
            b"RIFF\x18\0\0\0WAVEfmt \x10\0\0\0" + struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16),
            "no data chunk",
        ),
        (_riff(struct.pack("<HHIIHH", 0x55, 1, 8000, 16000, 2, 16)), "MP3"),
        (_riff(struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 12)), "12-bit"),
    ],
)
def test_unreadable_files_say_why(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(content)
    with pytest.raises(WavError, match=message):
        read_wav(path)


def test_a_truncated_data_chunk_is_read_as_far_as_it_goes(tmp_path: Path) -> None:
    data = _riff(struct.pack("<HHIIHH", 1, 1, 24000, 48000, 2, 16), b"\x01\x00" * 10)
    path = tmp_path / "t.wav"
    path.write_bytes(data[:-3])  # cut mid-sample, as a crashed recorder would
    assert read_wav(path) == b"\x01\x00" * 8


def test_write_wav_round_trip(tmp_path: Path) -> None:
    pcm = (np.arange(480, dtype="<i2") * 50).tobytes()
    write_wav(tmp_path / "o.wav", pcm)
    with wave.open(str(tmp_path / "o.wav")) as f:
        assert (f.getframerate(), f.getnchannels(), f.getsampwidth()) == (RATE, 1, 2)
        assert f.readframes(f.getnframes()) == pcm
    assert read_wav(tmp_path / "o.wav") == pcm


def test_helpers() -> None:
    assert silence(0.5) == bytes(RATE)
    assert rms_dbfs(b"") == float("-inf")
    assert rms_dbfs(np.full(100, 32767, "<i2").tobytes()) == pytest.approx(0.0, abs=0.01)
    assert resample(np.zeros(0), 48000, RATE).size == 0
