"""The ``/call`` dialect: Twilio Media Streams (a phone call bridged through ``<Connect><Stream>``).

Twilio sends JSON text frames keyed by ``event``: ``connected``, ``start`` (stream and call
ids, custom parameters, media format), ``media`` (base64 G.711 mu-law 8 kHz, 20 ms a
frame), ``mark`` (a mark we placed has been played), ``dtmf`` (a key: a user text item
"The caller pressed 1", unless ``DTMF=ignore``) and ``stop``. We send back
only what a bidirectional stream accepts: ``media``, ``mark`` and ``clear``.

The backend session runs in ``audio/pcmu`` both ways, so audio is never resampled or even
decoded: a caller's base64 payload becomes ``input_audio_buffer.append`` as it is, and a
reply delta becomes a ``media`` message as it is, followed by a ``mark``, except that deltas
shorter than ``frame_ms`` (``PHONE_FRAME_MS``) after an item's first are joined into frames
of at least that (short frames make the caller hear jitter); what is held is sent when
enough has come, the item ends, or the next item begins, and never once it is cut. Twilio echoes
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

import pybase64
from loguru import logger
from pydantic import with_config
from typing_extensions import TypedDict

from rt_server.errors import ClientError
from rt_server.protocol import STRICT, ClientProtocol
from rt_server.translate import (
    BackendEvent,
    ClientFrame,
    Close,
    Note,
    Outbox,
    Playback,
    Translator,
)

_HELD_MS = 10_000.0  # reply audio kept for a call whose ``start`` has not arrived yet
_DTMF_KEYS = frozenset("0123456789*#ABCD")


def dtmf_text(digit: str) -> str:
    """The user turn a DTMF key becomes."""
    return f"The caller pressed {digit}"


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
class FrameJoiner:
    """Joins reply audio deltas into frames of at least ``min_bytes`` (pure). An item's
    first delta goes out as it came, so the caller hears it at once; later short ones are
    held until there is enough, their item ends or the next item begins."""

    min_bytes: int
    item_id: str | None = None  # whose audio is held
    content_index: int = 0
    _held: bytearray = field(default_factory=bytearray)

    def add(self, item_id: str, content_index: int, payload: str, *, first: bool) -> str | None:
        """A delta (base64): what to send now (base64), or None while it is held."""
        if first or (not self._held and _decoded_size(payload) >= self.min_bytes):
            return payload  # as it came: nothing to decode or encode
        self.item_id, self.content_index = item_id, content_index
        self._held += pybase64.b64decode(payload)
        return self.flush() if len(self._held) >= self.min_bytes else None

    def flush(self) -> str | None:
        """What is held, as one payload (None: nothing)."""
        if not self._held:
            return None
        payload = pybase64.b64encode_as_string(bytes(self._held))
        self._held.clear()
        return payload

    def drop(self) -> None:
        self._held.clear()
        self.item_id = None


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
    #: Reply media frames are at least this long (``PHONE_FRAME_MS``; 0: as they come).
    frame_ms: int = 40
    #: What a DTMF key becomes (``DTMF``): a user text item, or nothing.
    dtmf: Literal["text", "ignore"] = "text"
    _joiner: FrameJoiner = field(init=False)
    _pending: dict[str, _Mark] = field(default_factory=dict)  # placed, not yet played
    _heard: _Heard | None = None
    _held: list[tuple[str, str]] = field(default_factory=list)  # (payload, mark) before start
    _held_ms: float = 0.0
    _marks: int = 0

    def __post_init__(self) -> None:
        Translator.__post_init__(self)
        self._joiner = FrameJoiner(self.frame_ms * self.bytes_per_ms)

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
    def on_ignored(self, message: Mapping[str, Any], now: float) -> Outbox:
        logger.debug("< twilio {}", message["event"])
        return Outbox()

    @protocol.handles(Dtmf)
    def on_dtmf(self, message: Dtmf, now: float) -> Outbox:
        """A key the caller pressed: a user turn saying so (``DTMF=text``), answered like
        any other; never logged (keys can be a PIN)."""
        digit = message["dtmf"]["digit"]
        if self.dtmf == "ignore" or digit not in _DTMF_KEYS:
            logger.debug("< twilio dtmf (ignored)")
            return Outbox()
        out = self.user_text(dtmf_text(digit), now)
        out.notes = [Note("user_text", {"text": dtmf_text(digit), "dtmf": digit})]
        return out

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
        if kind in ("response.output_audio.done", "response.done"):
            out = Outbox()
            self._send_held(now, out)  # the item's last, short frame
            return _joined(out, Translator.backend_event(self, event, now))
        out = Translator.backend_event(self, event, now)
        if kind == "input_audio_buffer.speech_started":
            self._forget_marks()  # after the truncation, which needed them
        return out

    def _reply_audio(self, event: BackendEvent, now: float) -> Outbox:
        """A reply chunk, forwarded as it came (base64 mu-law) or joined to the next ones
        (:class:`FrameJoiner`), then a mark."""
        item_id: str = event["item_id"]
        out = Outbox()
        if self._joiner.item_id not in (None, item_id):
            self._send_held(now, out)  # the previous item's rest goes first
        if item_id in self.truncated:
            return out
        playing = self.playback
        first = playing is None or playing.item_id != item_id
        content_index = event.get("content_index", 0)
        payload = self._joiner.add(item_id, content_index, event["delta"], first=first)
        if payload is not None:
            self._send_audio(item_id, content_index, payload, now, out)
        return out

    def _send_held(self, now: float, out: Outbox) -> None:
        joiner = self._joiner
        item_id, payload = joiner.item_id, joiner.flush()
        joiner.item_id = None
        if item_id is not None and payload is not None and item_id not in self.truncated:
            self._send_audio(item_id, joiner.content_index, payload, now, out)

    def _send_audio(
        self, item_id: str, content_index: int, payload: str, now: float, out: Outbox
    ) -> None:
        """One ``media`` frame and its mark (held instead while the stream has not started)."""
        before = self.playback
        playing = self.played({"item_id": item_id, "content_index": content_index}, now)
        if playing is not before and not self._pending:
            self._heard = _Heard(item_id, 0.0, self.clock_ms, now)  # plays at once
        ms = _decoded_size(payload) / self.bytes_per_ms
        playing.ms_sent += ms
        self._marks += 1
        name = f"m{self._marks}"
        self._pending[name] = _Mark(item_id, playing.ms_sent)
        if self.stream_sid is None:
            out.client.extend(self._hold(payload, name))
        else:
            out.client.extend(self._media_and_mark(payload, name))
        out.audio_out_ms += ms
        if self.record_audio:
            out.recorded.append(("assistant", payload))

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
        self._joiner.drop()
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


def _joined(first: Outbox, then: Outbox) -> Outbox:
    """``then`` with ``first``'s frames, audio and recording before its own."""
    then.client[:0] = first.client
    then.audio_out_ms += first.audio_out_ms
    then.recorded[:0] = first.recorded
    return then


def _decoded_size(payload: str) -> int:
    """Bytes in a base64 string, without decoding it."""
    return len(payload) * 3 // 4 - payload.count("=", -2)
