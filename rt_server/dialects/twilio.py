"""The ``/call`` dialect: Twilio Media Streams (a phone call bridged through ``<Connect><Stream>``).

Twilio sends JSON text frames keyed by ``event``: ``connected``, ``start`` (stream and call
ids, custom parameters, media format), ``media`` (base64 G.711 mu-law 8 kHz, 20 ms a
frame), ``mark`` (a mark we placed has been played), ``dtmf`` and ``stop``. We send back
only what a bidirectional stream accepts: ``media``, ``mark`` and ``clear``.

The backend session runs in ``audio/pcmu`` both ways, so audio is never resampled or even
decoded: a caller's base64 payload becomes ``input_audio_buffer.append`` as it is, and a
reply delta becomes a ``media`` message as it is, followed by a ``mark``. Twilio echoes
each mark once it has played everything before it; on barge-in the translator sends
``clear`` and truncates the reply at the last acknowledged mark plus the time Twilio's own
media clock has moved since, never past the next unacknowledged mark.

Twilio adds events over time, so unknown events are ignored (debug log) rather than
refused, and a malformed frame is logged and skipped: there is nobody on a phone line to
read an error message, and an error frame would make Twilio end the stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import (
    Any,
    ClassVar,
    Literal,
    NotRequired,
    TypeAlias,
)

from loguru import logger
from pydantic import with_config
from typing_extensions import TypedDict

from rt_server.errors import ClientError
from rt_server.protocol import STRICT, ClientProtocol
from rt_server.translate import BackendEvent, ClientFrame, Close, Outbox, Playback, Translator

_HELD_MS = 10_000.0  # reply audio kept for a call whose ``start`` has not arrived yet

# --------------------------------------------------------------------------- Twilio -> server


@with_config(STRICT)
class MediaFormat(TypedDict):
    """The caller's audio: ``audio/x-mulaw``, 8000 Hz, 1 channel on every Twilio call."""

    encoding: str
    sampleRate: int
    channels: int


@with_config(STRICT)
class StartDetails(TypedDict):
    """The ``start`` payload."""

    streamSid: str
    callSid: NotRequired[str]
    accountSid: NotRequired[str]
    tracks: NotRequired[list[str]]
    customParameters: NotRequired[dict[str, str]]
    mediaFormat: NotRequired[MediaFormat]


@with_config(STRICT)
class MediaPayload(TypedDict):
    """One frame of caller audio; ``timestamp`` is ms since the stream started."""

    payload: str
    track: NotRequired[str]
    chunk: NotRequired[str]
    timestamp: NotRequired[str]


@with_config(STRICT)
class MarkName(TypedDict):
    name: str


@with_config(STRICT)
class DtmfDigit(TypedDict):
    digit: str
    track: NotRequired[str]


@with_config(STRICT)
class StopDetails(TypedDict):
    accountSid: NotRequired[str]
    callSid: NotRequired[str]


@with_config(STRICT)
class Connected(TypedDict):
    """Twilio: the WebSocket is open (sent once, before ``start``)."""

    event: Literal["connected"]
    protocol: NotRequired[str]
    version: NotRequired[str]


@with_config(STRICT)
class Start(TypedDict):
    """Twilio: the stream starts; from here on messages carry its ``streamSid``."""

    event: Literal["start"]
    start: StartDetails
    sequenceNumber: NotRequired[str]
    streamSid: NotRequired[str]


@with_config(STRICT)
class Media(TypedDict):
    """Twilio: 20 ms of the caller's voice, base64 mu-law 8 kHz."""

    event: Literal["media"]
    media: MediaPayload
    sequenceNumber: NotRequired[str]
    streamSid: NotRequired[str]


@with_config(STRICT)
class MarkPlayed(TypedDict):
    """Twilio: every audio frame sent before the mark of this name has been played."""

    event: Literal["mark"]
    mark: MarkName
    sequenceNumber: NotRequired[str]
    streamSid: NotRequired[str]


@with_config(STRICT)
class Dtmf(TypedDict):
    """Twilio: the caller pressed a key."""

    event: Literal["dtmf"]
    dtmf: DtmfDigit
    sequenceNumber: NotRequired[str]
    streamSid: NotRequired[str]


@with_config(STRICT)
class Stop(TypedDict):
    """Twilio: the call hung up or the stream was stopped; the session ends."""

    event: Literal["stop"]
    stop: NotRequired[StopDetails]
    sequenceNumber: NotRequired[str]
    streamSid: NotRequired[str]


TwilioEvent: TypeAlias = Connected | Start | Media | MarkPlayed | Dtmf | Stop

# --------------------------------------------------------------------------- server -> Twilio


class OutPayload(TypedDict):
    payload: str


class OutMedia(TypedDict):
    """Server: base64 mu-law 8 kHz audio for the caller, queued behind earlier audio."""

    event: Literal["media"]
    streamSid: str
    media: OutPayload


class OutMark(TypedDict):
    """Server: echo ``name`` back once everything sent before it has played."""

    event: Literal["mark"]
    streamSid: str
    mark: MarkName


class OutClear(TypedDict):
    """Server: drop the audio queued for the caller (barge-in); pending marks come back."""

    event: Literal["clear"]
    streamSid: str


TwilioServerMessage: TypeAlias = OutMedia | OutMark | OutClear

# --------------------------------------------------------------------------- the translator


@dataclass(frozen=True, slots=True)
class _Mark:
    """A mark we placed: how much of which item had been sent when it was placed."""

    item_id: str
    ms: float


@dataclass(frozen=True, slots=True)
class _Heard:
    """The caller had heard ``ms`` of ``item_id`` at this media clock / monotonic time."""

    item_id: str
    ms: float
    clock_ms: float | None
    at: float


@dataclass(slots=True)
class TwilioTranslator(Translator):
    """The shared core, speaking Twilio Media Streams to the caller."""

    name: ClassVar[str] = "twilio"
    path: ClassVar[str | None] = None  # /call, mounted by rt_server.phone (signatures)
    protocol: ClassVar[ClientProtocol[Outbox]] = ClientProtocol("twilio", tag="event")
    server_messages: ClassVar[Any] = TwilioServerMessage

    audio_format: dict[str, Any] = field(default_factory=lambda: {"type": "audio/pcmu"})
    stream_sid: str | None = None
    call_sid: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    clock_ms: float | None = None  # the latest media timestamp: Twilio's clock of the call
    _pending: dict[str, _Mark] = field(default_factory=dict)  # placed, not yet played
    _heard: _Heard | None = None
    _held: list[tuple[str, str]] = field(default_factory=list)  # (payload, mark) before start
    _held_ms: float = 0.0
    _marks: int = 0

    # ---------------------------------------------------------------- from Twilio

    def client_text(self, raw: str | bytes, now: float) -> Outbox:
        """One Twilio frame; unknown events and malformed frames are logged and skipped."""
        try:
            return Translator.client_text(self, raw, now)
        except ClientError as exc:
            if exc.code == "unknown_type":
                logger.debug("< twilio: {} (ignored)", exc.message)
            else:
                logger.warning("< twilio: malformed frame skipped: {}", exc.message)
            return Outbox()

    def client_audio(self, pcm: bytes, now: float) -> Outbox:
        logger.warning("< twilio: binary frame of {} B skipped", len(pcm))
        return Outbox()

    @protocol.handles(Connected)
    @protocol.handles(Dtmf)  # keys are not passed on to the model (yet); digits are not logged
    def on_ignored(self, message: Mapping[str, Any], now: float) -> Outbox:
        logger.debug("< twilio {}", message["event"])
        return Outbox()

    @protocol.handles(Start)
    def on_start(self, message: Start, now: float) -> Outbox:
        details = message["start"]
        self.stream_sid = details["streamSid"]
        self.call_sid = details.get("callSid")
        self.parameters = dict(details.get("customParameters") or {})
        media_format = details.get("mediaFormat")
        if media_format and (media_format["encoding"], media_format["sampleRate"]) != (
            "audio/x-mulaw",
            8000,
        ):
            logger.warning("< twilio: unexpected media format {}", media_format)
        logger.info("< twilio start: call {} stream {}", self.call_sid, self.stream_sid)
        held, self._held, self._held_ms = self._held, [], 0.0
        frames: list[ClientFrame] = []
        for payload, name in held:
            frames.extend(self._media_and_mark(payload, name))
        return Outbox(client=frames)

    @protocol.handles(Media)
    def on_media(self, message: Media, now: float) -> Outbox:
        media = message["media"]
        if (timestamp := media.get("timestamp")) is not None:
            try:
                self.clock_ms = float(timestamp)
            except ValueError:
                logger.debug("< twilio: media timestamp {!r} is not a number", timestamp)
        if not media["payload"] or media.get("track", "inbound") != "inbound":
            return Outbox()
        # Already base64 mu-law, as the backend session expects: forwarded untouched.
        payload = media["payload"]
        if not payload.isascii():  # no base64 (the backend's is checked there)
            raise ClientError("invalid_audio", "'payload' is not valid base64")
        out = Outbox(
            backend=[{"type": "input_audio_buffer.append", "audio": payload}],
            audio_in_ms=_decoded_size(payload) / self.bytes_per_ms,
        )
        if self.record_audio:
            out.recorded.append(("user", payload))
        return out

    @protocol.handles(MarkPlayed)
    def on_mark(self, message: MarkPlayed, now: float) -> Outbox:
        name = message["mark"]["name"]
        if name not in self._pending:
            return Outbox()  # cleared by a barge-in, or not ours
        # Twilio plays in order: this mark and every one before it have been played.
        for placed in list(self._pending):
            mark = self._pending.pop(placed)
            if placed == name:
                break
        self._heard = _Heard(mark.item_id, mark.ms, self.clock_ms, now)
        following = next(iter(self._pending.values()), None)
        if following is not None and following.item_id != mark.item_id:
            # The next item starts playing now.
            self._heard = _Heard(following.item_id, 0.0, self.clock_ms, now)
        return Outbox()

    @protocol.handles(Stop)
    def on_stop(self, message: Stop, now: float) -> Outbox:
        logger.info("< twilio stop: call {} ended", self.call_sid)
        return Outbox(close=Close(1000, "call ended"))

    # ---------------------------------------------------------------- from the backend

    def backend_event(self, event: BackendEvent, now: float) -> Outbox:
        kind = event.get("type")
        if kind == "response.output_audio.delta":
            return self._reply_audio(event, now)
        out = Translator.backend_event(self, event, now)
        if kind == "input_audio_buffer.speech_started":
            self._forget_marks()  # after the truncation, which needed them
        return out

    def _reply_audio(self, event: BackendEvent, now: float) -> Outbox:
        """A reply chunk, forwarded as it came (base64 mu-law), then a mark."""
        item_id: str = event["item_id"]
        if item_id in self.truncated:
            return Outbox()
        payload: str = event["delta"]
        before = self.playback
        playing = self.played(event, now)
        if playing is not before and not self._pending:
            self._heard = _Heard(item_id, 0.0, self.clock_ms, now)  # plays at once
        ms = _decoded_size(payload) / self.bytes_per_ms
        playing.ms_sent += ms
        self._marks += 1
        name = f"m{self._marks}"
        self._pending[name] = _Mark(item_id, playing.ms_sent)
        frames = (
            self._hold(payload, name)
            if self.stream_sid is None
            else self._media_and_mark(payload, name)
        )
        out = Outbox(client=frames, audio_out_ms=ms)
        if self.record_audio:
            out.recorded.append(("assistant", payload))
        return out

    def heard_ms(self, playing: Playback, now: float) -> float:
        """The last played mark of this item, plus Twilio's clock since, capped by the next."""
        heard = self._heard
        if heard is None or heard.item_id != playing.item_id:
            return 0.0  # still queued behind an earlier reply
        if heard.clock_ms is not None and self.clock_ms is not None:
            elapsed = self.clock_ms - heard.clock_ms
        else:
            elapsed = (now - heard.at) * 1000.0
        cap = playing.ms_sent
        for mark in self._pending.values():
            if mark.item_id == playing.item_id:
                cap = min(cap, mark.ms)  # not played yet, so not heard yet
                break
        return max(heard.ms, min(heard.ms + max(elapsed, 0.0), cap))

    def _forget_marks(self) -> None:
        """After ``clear`` Twilio returns every pending mark at once; those were not played."""
        self._pending.clear()
        self._heard = None
        self._held, self._held_ms = [], 0.0

    def _hold(self, payload: str, name: str) -> list[ClientFrame]:
        """Reply audio before ``start`` (a welcome): kept for it, up to a limit."""
        ms = _decoded_size(payload) / self.bytes_per_ms
        if self._held_ms + ms > _HELD_MS:
            self._pending.pop(name, None)
            logger.warning("> twilio: no stream yet; reply audio dropped")
            return []
        self._held.append((payload, name))
        self._held_ms += ms
        return []

    def _media_and_mark(self, payload: str, name: str) -> list[ClientFrame]:
        assert self.stream_sid is not None
        sid = self.stream_sid
        return [
            OutMedia(event="media", streamSid=sid, media=OutPayload(payload=payload)),
            OutMark(event="mark", streamSid=sid, mark=MarkName(name=name)),
        ]

    # ---------------------------------------------------------------- rendering

    def render_speech_started(self) -> list[ClientFrame]:
        if self.stream_sid is None or not self._pending:
            return []  # nothing queued at Twilio: nothing to clear
        return [OutClear(event="clear", streamSid=self.stream_sid)]

    def render_interrupted(self) -> list[ClientFrame]:
        return self.render_speech_started()


def _decoded_size(payload: str) -> int:
    """Bytes in a base64 string, without decoding it."""
    return len(payload) * 3 // 4 - payload.count("=", -2)
