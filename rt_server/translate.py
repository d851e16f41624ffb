"""The sans-I/O core: the client protocol <-> Realtime API events.

No awaits and no sockets here. :class:`Translator` takes what one side sent and returns an
:class:`Outbox` of what to send to each side; the session moves the bytes. Backend events
use the GA names (a preview backend normalises beta names before they get here). The
current time is passed in, so barge-in truncation is a pure function of what was sent.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from loguru import logger

from rt_server.errors import ClientError
from rt_server.profile import Profile
from rt_server.protocol import (
    ClientMessage,
    ErrorMessage,
    ServerControl,
    ServerMessage,
    TextDelta,
    Transcription,
    parse_client_message,
)

BackendEvent: TypeAlias = dict[str, Any]
ClientFrame: TypeAlias = ServerMessage | bytes

PCM_BYTES_PER_MS = 48  # PCM16 mono at 24 kHz
_INTERNAL = "rt_"  # event_id prefix of events the server sends on its own behalf


@dataclass(slots=True)
class Outbox:
    """What one input produced: frames for the client, events for the backend."""

    client: list[ClientFrame] = field(default_factory=list)
    backend: list[BackendEvent] = field(default_factory=list)


@dataclass(slots=True)
class Turn:
    """One finished turn of the conversation, kept to restore it on a new backend."""

    role: Literal["user", "assistant"]
    text: str


@dataclass(slots=True)
class _Playback:
    """The assistant audio item the client is playing, and how much of it it has."""

    item_id: str
    content_index: int
    started_at: float
    ms_sent: float = 0.0

    def heard_ms(self, now: float) -> float:
        """What the client can have played: never more than was sent."""
        return max(0.0, min((now - self.started_at) * 1000.0, self.ms_sent))

    def ends_at(self) -> float:
        return self.started_at + self.ms_sent / 1000.0


@dataclass(slots=True)
class Translator:
    """The state of one session's translation; feed it both sides, send what it returns."""

    profile: Profile
    ready: bool = False
    responding: bool = False
    playback: _Playback | None = None
    truncated: set[str] = field(default_factory=set)
    history: list[Turn] = field(default_factory=list)
    _serial: int = 0

    # ------------------------------------------------------------------ towards the backend

    def session_update(self) -> BackendEvent:
        """The ``session.update`` that configures a new backend session."""
        return {"type": "session.update", "session": self.profile.session()}

    def restore(self) -> list[BackendEvent]:
        """Events that rebuild this conversation on a fresh backend session."""
        events = [self.session_update()]
        for turn in self.history:
            kind = "input_text" if turn.role == "user" else "output_text"
            content = [{"type": kind, "text": turn.text}]
            item = {"type": "message", "role": turn.role, "content": content}
            events.append({"type": "conversation.item.create", "item": item})
        return events

    def client_text(self, raw: str | bytes, now: float = 0.0) -> Outbox:
        """A client text frame; raises :class:`ClientError` when it is malformed."""
        return self.client_message(parse_client_message(raw), now)

    def client_message(self, message: ClientMessage, now: float = 0.0) -> Outbox:
        match message["type"]:
            case "user_message":
                text = message["text"]
                self.history.append(Turn("user", text))
                item = {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": text}],
                }
                return Outbox(
                    backend=[
                        {"type": "conversation.item.create", "item": item},
                        {"type": "response.create"},
                    ]
                )
            case "audio":
                try:
                    pcm = base64.b64decode(message["audio"], validate=True)
                except binascii.Error:
                    raise ClientError("invalid_audio", "'audio' is not valid base64") from None
                return self.client_audio(pcm)
            case "control":
                if message["action"] == "interrupt":
                    return self.interrupt(now)
                return Outbox(
                    backend=[
                        {"type": "input_audio_buffer.commit", "event_id": self._event_id()},
                        {"type": "response.create"},
                    ]
                )

    def client_audio(self, pcm: bytes) -> Outbox:
        """A binary frame of PCM16 audio from the client."""
        if not pcm or len(pcm) % 2:
            raise ClientError(
                "invalid_audio", f"audio frames must be whole PCM16 samples, got {len(pcm)} bytes"
            )
        audio = base64.b64encode(pcm).decode("ascii")
        return Outbox(backend=[{"type": "input_audio_buffer.append", "audio": audio}])

    def interrupt(self, now: float) -> Outbox:
        """Stop the reply the client is hearing, as if the user had started speaking."""
        out = Outbox(backend=[{"type": "response.cancel", "event_id": self._event_id()}])
        self._truncate(now, out)
        return out

    # ------------------------------------------------------------------ towards the client

    def backend_event(self, event: BackendEvent, now: float) -> Outbox:
        """One event from the backend."""
        match event.get("type"):
            case "response.output_audio.delta":
                return self._audio_delta(event, now)
            case "response.output_text.delta" | "response.output_audio_transcript.delta":
                delta = TextDelta(type="text_delta", id=_text_id(event), delta=event["delta"])
                return Outbox(client=[delta])
            case "response.output_text.done" | "response.output_audio_transcript.done":
                text = event.get("text") or event.get("transcript") or ""
                if text:
                    self.history.append(Turn("assistant", text))
                done = ServerControl(type="control", action="text_done", id=_text_id(event))
                return Outbox(client=[done])
            case "input_audio_buffer.speech_started":
                out = Outbox(client=[ServerControl(type="control", action="speech_started")])
                self._truncate(now, out)
                return out
            case "conversation.item.input_audio_transcription.completed":
                text = event.get("transcript", "")
                self.history.append(Turn("user", text))
                return Outbox(
                    client=[Transcription(type="transcription", id=event["item_id"], text=text)]
                )
            case "session.updated" if not self.ready:
                self.ready = True
                greeting = self.profile.greeting
                return Outbox(
                    client=[ServerControl(type="control", action="connected", greeting=greeting)]
                )
            case "response.created":
                self.responding = True
                return Outbox()
            case "response.done":
                self.responding = False
                return Outbox()
            case "error":
                return Outbox(client=self._backend_error(event))
            case kind:
                logger.trace("< {} (not forwarded)", kind)
                return Outbox()

    def _audio_delta(self, event: BackendEvent, now: float) -> Outbox:
        item_id = event["item_id"]
        if item_id in self.truncated:
            return Outbox()
        pcm = base64.b64decode(event["delta"])
        playing = self.playback
        if playing is None or playing.item_id != item_id:
            # Audio queues behind whatever the client is still playing.
            start = now if playing is None else max(now, playing.ends_at())
            playing = self.playback = _Playback(item_id, event.get("content_index", 0), start)
        playing.ms_sent += len(pcm) / PCM_BYTES_PER_MS
        return Outbox(client=[pcm])

    def _truncate(self, now: float, out: Outbox) -> None:
        """Cut the playing item at what the client can have heard, never past it."""
        playing = self.playback
        if playing is None:
            return
        self.playback = None
        heard = playing.heard_ms(now)
        self.truncated.add(playing.item_id)
        if heard >= playing.ms_sent and not self.responding:
            return  # the client heard all of a finished reply: nothing to cut
        out.backend.append(
            {
                "type": "conversation.item.truncate",
                "event_id": self._event_id(),
                "item_id": playing.item_id,
                "content_index": playing.content_index,
                "audio_end_ms": int(heard),
            }
        )

    def _backend_error(self, event: BackendEvent) -> list[ClientFrame]:
        error = event.get("error") or {}
        if str(error.get("event_id") or "").startswith(_INTERNAL):
            # A race of our own (cancel after the reply ended): nothing the client did.
            logger.debug("< error for internal event: {}", error.get("code"))
            return []
        message = str(error.get("message") or "the Realtime backend reported an error")
        return [ErrorMessage(type="error", code="backend_error", message=message)]

    def _event_id(self) -> str:
        self._serial += 1
        return f"{_INTERNAL}{self._serial}"


def _text_id(event: BackendEvent) -> str:
    return f"{event['item_id']}-{event.get('content_index', 0)}"
