"""Optional recording of both sides' audio to WAV files (``RECORD_AUDIO_DIR``; off by default).

The session hands over what the translator had in hand (``Outbox.recorded``: raw audio,
or base64 as it crossed the wire), so recording works for every dialect and format. Decoding and file writes
happen in a thread, about once a second, never on the audio path.
"""

from __future__ import annotations

import asyncio
import base64
import struct
from pathlib import Path
from typing import Any, BinaryIO

from loguru import logger

from rt_server.translate import AUDIO_FORMATS, Side

# WAV format tags of the Realtime API's audio formats: PCM, mu-law, A-law.
_WAV_TAGS = {"audio/pcm": 1, "audio/pcmu": 7, "audio/pcma": 6}


class AudioRecording:
    """``<session>-user.wav`` and ``<session>-assistant.wav`` for one session."""

    def __init__(self, directory: Path, session_id: str, audio_format: dict[str, Any]) -> None:
        self._paths = (
            directory / f"{session_id}-user.wav",
            directory / f"{session_id}-assistant.wav",
        )
        kind = audio_format["type"]
        rate, width = AUDIO_FORMATS[kind]
        self._format = (_WAV_TAGS[kind], width, rate)
        self._pending: tuple[list[bytes | str], list[bytes | str]] = ([], [])
        self._files: list[BinaryIO] = []
        self.failed = False

    @property
    def paths(self) -> tuple[Path, Path]:
        return self._paths

    def add(self, side: Side, audio: bytes | str) -> None:
        """Audio of one side: bytes, or base64 (decoded when written)."""
        if not self.failed:
            self._pending[side == "assistant"].append(audio)

    async def flush(self) -> None:
        """Write what arrived since the last flush (in a thread); a disk error stops it."""
        pending, self._pending = self._pending, ([], [])
        if self.failed or not (pending[0] or pending[1] or not self._files):
            return
        try:
            await asyncio.to_thread(self._write, pending)
        except OSError as exc:
            # The conversation matters more than its recording: log, stop recording.
            self.failed = True
            logger.warning("audio recording to {} stopped: {}", self._paths[0].parent, exc)

    async def close(self) -> None:
        """Write the rest and the final WAV headers."""
        await self.flush()
        if self._files:
            try:
                await asyncio.to_thread(self._finish)
            except OSError as exc:
                logger.warning("audio recording could not be finished: {}", exc)

    def _write(self, pending: tuple[list[bytes | str], list[bytes | str]]) -> None:
        if not self._files:
            for path in self._paths:
                path.parent.mkdir(parents=True, exist_ok=True)
                handle = path.open("wb")
                handle.write(self._header(0))
                self._files.append(handle)
        for file, chunks in zip(self._files, pending, strict=True):
            for chunk in chunks:
                file.write(_audio(chunk))

    def _finish(self) -> None:
        for handle in self._files:
            size = handle.tell() - 44
            handle.seek(0)
            handle.write(self._header(size))
            handle.close()
        self._files = []

    def _header(self, data_size: int) -> bytes:
        tag, width, rate = self._format
        return (
            b"RIFF"
            + struct.pack("<I", 36 + data_size)
            + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, tag, 1, rate, rate * width, width, width * 8)
            + b"data"
            + struct.pack("<I", data_size)
        )


def _audio(chunk: bytes | str) -> bytes:
    """Raw audio, or base64 as it crossed the wire (a caller's bad base64, which the
    backend refused too, records nothing)."""
    if isinstance(chunk, bytes):
        return chunk
    try:
        return base64.b64decode(chunk)
    except ValueError:
        return b""
