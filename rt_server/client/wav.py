"""WAV files in and out of the wire format: PCM16 little-endian mono 24 kHz.

:func:`read_wav` accepts integer PCM of any rate, channel count and sample width (8, 16, 24
or 32 bit, plain or ``WAVE_FORMAT_EXTENSIBLE``), mixes it to mono and resamples it to 24 kHz.
Anything else (float, A-law, ADPCM, MP3 in a RIFF) is rejected with :class:`WavError` naming
the format. Pure functions, no I/O beyond reading and writing the file.
"""

from __future__ import annotations

import struct
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

RATE: Final = 24_000
"""The sample rate of the wire format."""

_PCM: Final = 0x0001
_EXTENSIBLE: Final = 0xFFFE
_FORMAT_NAMES: Final = {
    0x0003: "IEEE float",
    0x0006: "A-law",
    0x0007: "mu-law",
    0x0002: "Microsoft ADPCM",
    0x0011: "IMA ADPCM",
    0x0055: "MP3",
}


class WavError(ValueError):
    """The file is not a WAV this client can send; the message says why."""


@dataclass(frozen=True, slots=True)
class WavFormat:
    """What the ``fmt `` chunk of a file says."""

    rate: int
    channels: int
    bits: int


def read_wav(path: str | Path) -> bytes:
    """Read ``path`` and return its audio as PCM16 little-endian mono 24 kHz."""
    data = Path(path).read_bytes()
    fmt, payload = parse_wav(data)
    samples = _decode(payload, fmt)
    return to_pcm16(resample(samples.mean(axis=1), fmt.rate, RATE))


def parse_wav(data: bytes) -> tuple[WavFormat, bytes]:
    """Split a RIFF/WAVE file into its format and its raw sample bytes."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavError("not a WAV file (no RIFF/WAVE header)")
    fmt: WavFormat | None = None
    pos = 12
    while pos + 8 <= len(data):
        tag, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8 : pos + 8 + size]  # a streamed file may claim more than it has
        if tag == b"fmt ":
            fmt = _parse_fmt(body)
        elif tag == b"data":
            if fmt is None:
                raise WavError("the data chunk comes before the fmt chunk")
            frame = fmt.channels * fmt.bits // 8
            return fmt, body[: len(body) // frame * frame]
        pos += 8 + size + (size & 1)
    raise WavError("no fmt chunk" if fmt is None else "no data chunk")


def _parse_fmt(body: bytes) -> WavFormat:
    if len(body) < 16:
        raise WavError("the fmt chunk is too short")
    code, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
    if code == _EXTENSIBLE and len(body) >= 26:
        code = struct.unpack_from("<H", body, 24)[0]  # first two bytes of the sub-format GUID
    if code != _PCM:
        name = _FORMAT_NAMES.get(code, f"format code {code:#06x}")
        raise WavError(f"{name} WAV files are not supported; convert to integer PCM")
    if bits not in (8, 16, 24, 32):
        raise WavError(f"{bits}-bit samples are not supported; use 8, 16, 24 or 32 bit")
    if channels < 1 or rate < 1:
        raise WavError(f"invalid format: {channels} channels at {rate} Hz")
    return WavFormat(rate=rate, channels=channels, bits=bits)


def _decode(payload: bytes, fmt: WavFormat) -> npt.NDArray[np.float64]:
    """Samples as float in [-1, 1), one column per channel."""
    if fmt.bits == 8:  # 8-bit WAV is unsigned
        values = np.frombuffer(payload, np.uint8).astype(np.float64) - 128.0
    elif fmt.bits == 24:
        raw = np.frombuffer(payload, np.uint8).reshape(-1, 3)
        wide = np.zeros((len(raw), 4), np.uint8)
        wide[:, 1:] = raw  # shift left by 8: the sign lands in the top byte
        values = wide.view("<i4").ravel().astype(np.float64) / 256.0
    else:
        values = np.frombuffer(payload, f"<i{fmt.bits // 8}").astype(np.float64)
    scale = float(2 ** (fmt.bits - 1))
    return (values / scale).reshape(-1, fmt.channels)


def resample(samples: npt.NDArray[np.float64], rate: int, target: int) -> npt.NDArray[np.float64]:
    """Band-limited resampling of a whole mono signal (the FFT method, like scipy's)."""
    if rate == target or len(samples) == 0:
        return samples
    n_out = max(1, round(len(samples) * target / rate))
    spectrum = np.fft.rfft(samples)
    keep = min(len(spectrum), n_out // 2 + 1)
    out = np.zeros(n_out // 2 + 1, np.complex128)
    out[:keep] = spectrum[:keep]
    if n_out < len(samples) and n_out % 2 == 0:
        out[-1] = out[-1].real  # the new Nyquist bin of a real signal is real
    return np.fft.irfft(out, n_out) * (n_out / len(samples))


def to_pcm16(samples: npt.NDArray[np.float64]) -> bytes:
    """Float samples in [-1, 1] as PCM16 little-endian bytes, clipped."""
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2").tobytes()


def write_wav(path: str | Path, pcm: bytes, rate: int = RATE) -> None:
    """Write PCM16 mono ``pcm`` as a WAV file."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)


def silence(seconds: float, rate: int = RATE) -> bytes:
    """``seconds`` of PCM16 silence."""
    return bytes(2 * round(seconds * rate))


def rms_dbfs(pcm: bytes) -> float:
    """The RMS level of PCM16 audio in dBFS (-inf for digital silence or no audio)."""
    samples = np.frombuffer(pcm[: len(pcm) & ~1], "<i2").astype(np.float64)
    if len(samples) == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(samples**2)))
    return 20.0 * float(np.log10(rms / 32768.0)) if rms > 0 else float("-inf")
