"""Collecting one assistant turn from the messages of a session (sans-I/O).

:class:`ReplyCollector` is fed each server message or audio frame with the time it arrived
and says when the turn is complete: the ``text_done`` of the reply's text (and, for a spoken
turn, the user's transcription). The client's ``reply()`` and the CLI drive it; tests feed it
directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

from rt_server.client.errors import ServerError
from rt_server.dialects.realtime import ServerMessage

Incoming: TypeAlias = ServerMessage | bytes
"""What a client receives: a parsed text frame, or a binary frame of PCM16 24 kHz audio."""

BYTES_PER_SECOND = 48_000  # PCM16 mono at 24 kHz


@dataclass(frozen=True, slots=True)
class Reply:
    """One assistant turn as the client saw it; latencies in seconds from ``started``."""

    id: str | None
    text: str
    audio: bytes
    transcription: str | None
    first_delta: float | None
    first_audio: float | None
    total: float

    @property
    def audio_seconds(self) -> float:
        return len(self.audio) / BYTES_PER_SECOND


@dataclass(slots=True)
class ReplyCollector:
    """Accumulates the reply to the turn that began at ``started`` (a ``perf_counter`` time).

    The reply's text is the first ``text_delta`` id seen; deltas with other ids are ignored.
    With ``transcription=True`` the turn is also waiting for what the user said. An ``error``
    message raises :class:`ServerError`.
    """

    started: float
    transcription: bool = False
    id: str | None = None
    user_text: str | None = None
    speech_started: bool = False
    text_done: bool = False
    first_delta: float | None = None
    first_audio: float | None = None
    finished: float | None = None
    _text: list[str] = field(default_factory=list)
    _audio: bytearray = field(default_factory=bytearray)

    @property
    def done(self) -> bool:
        return self.text_done and (not self.transcription or self.user_text is not None)

    def feed(self, message: Incoming, now: float) -> bool:
        """Take one frame; return whether the turn is now complete."""
        if isinstance(message, bytes):
            if self.first_audio is None:
                self.first_audio = now - self.started
            self._audio += message
            return self._check(now)
        match message["type"]:
            case "text_delta":
                if self.id is None:
                    self.id = message["id"]
                if message["id"] == self.id:
                    if self.first_delta is None:
                        self.first_delta = now - self.started
                    self._text.append(message["delta"])
            case "control":
                action = message["action"]
                if action == "text_done":
                    done_id = message.get("id")
                    if self.id is None or done_id is None or done_id == self.id:
                        self.id = self.id or done_id  # a reply with no text at all
                        self.text_done = True
                elif action == "speech_started":
                    self.speech_started = True
            case "transcription" if not message.get("partial"):  # a caption, not the turn
                text = message["text"]
                self.user_text = text if self.user_text is None else f"{self.user_text} {text}"
            case "error":
                raise ServerError(message)
        return self._check(now)

    def _check(self, now: float) -> bool:
        if self.finished is None and self.done:
            self.finished = now
        return self.done

    @property
    def text(self) -> str:
        return "".join(self._text)

    def reply(self, now: float) -> Reply:
        """The turn so far; ``total`` is up to completion, or up to ``now`` if not complete."""
        end = self.finished if self.finished is not None else now
        return Reply(
            id=self.id,
            text=self.text,
            audio=bytes(self._audio),
            transcription=self.user_text,
            first_delta=self.first_delta,
            first_audio=self.first_audio,
            total=end - self.started,
        )
