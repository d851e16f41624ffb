"""The sans-I/O core: a client dialect <-> Realtime API events.

No awaits and no sockets here. :class:`Translator` takes what one side sent and returns an
:class:`Outbox`: frames for the client, events for the backend, notes for observers
(monitor, records, metrics), tool calls for the session to run, and what the session must
do besides (close the client with a code, replace a stalled backend, record audio).
Backend events use GA names (a preview backend normalises beta names before they get
here). The time is passed in, so barge-in truncation is a pure function of what was sent
and when.

The base class is neutral: it renders nothing. Each client dialect
(:mod:`rt_server.dialects`) is a subclass with a ``name``, a ``path``, its
:class:`~rt_server.protocol.ClientProtocol` (the messages its clients send, each with its
handler) and the ``render_*`` methods of the frames it sends; a hook it does not override
sends that client nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal, TypeAlias

import pybase64
from loguru import logger
from pydantic import TypeAdapter

from rt_server.config import Limits
from rt_server.context import Context, message
from rt_server.errors import BackendError, ClientError, ErrorCode
from rt_server.images import DEFAULT_MAX_IMAGE_BYTES, parse_image
from rt_server.profile import Profile
from rt_server.protocol import ClientProtocol

BackendEvent: TypeAlias = dict[str, Any]
#: What a client is sent: a message to encode as JSON, audio (a binary frame), or JSON
#: text sent as it is (an event passed through unchanged, :class:`RawEvent`).
ClientFrame: TypeAlias = Mapping[str, Any] | bytes | str
Side: TypeAlias = Literal["user", "assistant"]

_INTERNAL = "rt_"  # event_id prefix of events the server sends on its own behalf

#: The Realtime API's audio formats: sample rate and bytes per sample (mono).
AUDIO_FORMATS = {
    "audio/pcm": (24000, 2),
    "audio/pcmu": (8000, 1),
    "audio/pcma": (8000, 1),
}

NoteKind: TypeAlias = Literal[
    "user_text",
    "user_transcript",
    "assistant_text",
    "speech_started",
    "truncated",
    "tool_call",
    "tool_result",
    "usage",
    "rate_limits",
    "timeout_triggered",
    "mcp_list_tools",
    "mcp_call",
    "error",
]


class RawEvent(dict[str, Any]):
    """An event that keeps the JSON text it was decoded from, so that one passed on
    unchanged is not encoded again (a GA backend's events, a GA client's). Never mutate
    one: a changed event is a new plain dict. Made by :func:`raw_event`."""

    __slots__ = ("raw",)
    raw: bytes


def raw_event(event: Mapping[str, Any], raw: bytes) -> RawEvent:
    """``event`` with the text it was decoded from (dict's own constructor: this runs per
    event, and a Python ``__init__`` would double its cost)."""
    kept = RawEvent(event)
    kept.raw = raw
    return kept


@dataclass(frozen=True, slots=True)
class Note:
    """Something observers may want to know (transcripts, tools, usage, errors)."""

    kind: NoteKind
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the model asked for; the session runs it."""

    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Close:
    """End the session with this WebSocket close code and reason."""

    code: int
    reason: str


@dataclass(slots=True)
class Outbox:
    """What one input produced, and everything the session must do about it."""

    client: list[ClientFrame] = field(default_factory=list)
    backend: list[BackendEvent] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    #: End the session once the frames above are sent.
    close: Close | None = None
    #: The reply in progress is given up: replace the backend connection (the
    #: conversation is restored on the new one).
    abandoned: bool = False
    #: The backend session is configured (:meth:`Translator.setup_event`).
    configured: bool = False
    #: Milliseconds of audio in the backend events (from the client) and in the client
    #: frames (from the assistant).
    audio_in_ms: float = 0.0
    audio_out_ms: float = 0.0
    #: Audio to record (only when the translator's ``record_audio`` is set): raw bytes,
    #: or base64 as it crossed the wire, in the session's audio format.
    recorded: list[tuple[Side, bytes | str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CallConfig:
    """What an operator may set on a session (``/logs``' ``session.update``): profile fields
    (``instructions``, ``voice``; None: unchanged) and function tools (None: unchanged)."""

    profile: Mapping[str, Any] = field(default_factory=dict)
    tools: list[dict[str, Any]] | None = None

    def merged(self, later: CallConfig) -> CallConfig:
        """This configuration with ``later``'s changes on top."""
        profile = {**self.profile, **{k: v for k, v in later.profile.items() if v is not None}}
        return CallConfig(profile, later.tools if later.tools is not None else self.tools)


@dataclass(slots=True)
class Playback:
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


_TEXT_BURST = 20  # typed turns a client may send at once before the rate applies


@dataclass(slots=True)
class TextRate:
    """How fast a client may type: a token bucket for turns and one for their bytes
    (``MAX_TEXT_MESSAGES_PER_SECOND``, ``MAX_TEXT_BYTES_PER_SECOND``). Each turn costs the
    backend a reply and the records a row: a flood of them is refused, not queued."""

    per_second: float
    bytes_per_second: float
    burst: float
    burst_bytes: float
    _turns: float = field(init=False)
    _bytes: float = field(init=False)
    _at: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._turns, self._bytes = self.burst, self.burst_bytes

    @classmethod
    def of(cls, limits: Limits) -> TextRate:
        """The limits' rates, with a burst of 20 turns and of one message of the most."""
        return cls(
            limits.max_text_messages_per_second,
            limits.max_text_bytes_per_second,
            _TEXT_BURST,
            max(limits.max_message_bytes, limits.max_text_bytes_per_second),
        )

    def take(self, size: int, now: float) -> float:
        """Count a turn of ``size`` bytes: 0.0 when it is allowed, otherwise the seconds
        until it would be (it is then not counted)."""
        if self._at is not None:
            elapsed = max(0.0, now - self._at)
            self._turns = min(self.burst, self._turns + elapsed * self.per_second)
            self._bytes = min(self.burst_bytes, self._bytes + elapsed * self.bytes_per_second)
        self._at = now
        short_turns, short_bytes = 1.0 - self._turns, size - self._bytes
        if short_turns <= 0 and short_bytes <= 0:
            self._turns -= 1.0
            self._bytes -= size
            return 0.0
        wait = max(short_turns / self.per_second, short_bytes / self.bytes_per_second)
        return max(wait, 0.001)


@dataclass(slots=True)
class Translator:
    """The translation state of one session; feed it both sides, send what it returns."""

    #: The dialect's name (records, metrics, ``/protocol.json``) and its WebSocket route
    #: (None: a route of its own mounts it, as the phone routes do for Twilio).
    name: ClassVar[str] = "neutral"
    path: ClassVar[str | None] = None
    #: The client messages this dialect understands, each with its handler.
    protocol: ClassVar[ClientProtocol[Outbox]] = ClientProtocol("neutral")
    #: The union of the TypedDicts of the messages this dialect sends.
    server_messages: ClassVar[Any] = None
    #: A lost backend is replaced and the conversation restored (False: the session ends,
    #: as for a client that keeps the conversation's item ids itself).
    restores: ClassVar[bool] = True

    profile: Profile
    tools: list[dict[str, Any]] = field(default_factory=list)
    ready: bool = False
    responding: bool = False
    playback: Playback | None = None
    truncated: set[str] = field(default_factory=set)
    #: The conversation's items, in order: what a new backend session is given.
    history: Context = field(default_factory=Context)
    pending_calls: set[str] = field(default_factory=set)
    #: Tools an operator declared (``/logs``): the model may call them, the operator
    #: answers; the session does not run them.
    operator_tools: list[dict[str, Any]] = field(default_factory=list)
    operator_calls: dict[str, str] = field(default_factory=dict)  # call id -> tool name
    #: The instructions of the next reply (a tool's ``reply_instructions``), once.
    reply_instructions: str | None = None
    reply_due: bool = False
    reply_on_commit: bool = False
    _serial: int = 0
    #: Assistant text sent to the client and not yet done, by text id: recorded as a cut
    #: turn if the reply ends without its ``done`` (barge-in, interrupt, shutdown, a drop).
    _unfinished: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    #: Text parts an ``interrupt`` ended (their late deltas are dropped), and whether the
    #: cancelled response's done was told the client already.
    _cut_texts: set[str] = field(default_factory=set)
    _done_told: bool = False
    #: The transcript so far of spoken turns being transcribed, by input item id.
    _partials: dict[str, str] = field(default_factory=dict)

    #: Client audio: PCM16 mono 24 kHz.
    audio_format: dict[str, Any] = field(
        default_factory=lambda: {"type": "audio/pcm", "rate": 24000}
    )

    #: Client audio frames shorter than this are held and appended together (0: never).
    coalesce_ms: int = 0

    #: Hand both sides' audio to the session for recording (``Outbox.recorded``).
    record_audio: bool = False

    #: How fast typed turns may come (None: unlimited).
    text_rate: TextRate | None = None

    #: The largest image a user turn may carry, decoded (``MAX_IMAGE_BYTES``).
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    #: The token a client reconnects with to take this conversation up again
    #: (``?resume=``, :mod:`rt_server.resume`); ``connected`` carries it.
    resume_token: str | None = None
    #: Items of the conversation before a resume (what :meth:`restore` built on the lost
    #: instance): rebuilt before the turns of this part.
    carried: list[BackendEvent] = field(default_factory=list)

    #: Bytes of ``audio_format`` audio per millisecond (derived, read per frame).
    bytes_per_ms: int = field(init=False)
    _coalesce_bytes: int = field(init=False)
    _coalescing: bytearray = field(init=False, default_factory=bytearray)

    def __post_init__(self) -> None:
        rate, width = AUDIO_FORMATS[self.audio_format["type"]]
        self.bytes_per_ms = rate * width // 1000
        self._coalesce_bytes = self.coalesce_ms * self.bytes_per_ms

    # ------------------------------------------------------------------ towards the backend

    def session_update(self) -> BackendEvent:
        """The ``session.update`` that configures a new backend session."""
        session = self.profile.session(self.audio_format)
        tools = [*self.tools, *self.operator_tools, *session.get("tools", ())]
        if tools:
            session["tools"] = tools
            session["tool_choice"] = self.profile.tool_choice_value()
        return {"type": "session.update", "session": session}

    def restore(self) -> list[BackendEvent]:
        """Events that (re)build this conversation on a fresh backend session: its
        configuration, the items a resumed session carried over, then every message,
        function call and output since, in order."""
        return [self.session_update(), *self.carried, *self.history.restore()]

    def welcome(self) -> list[BackendEvent]:
        """A response in which the assistant speaks first, if the profile asks for one."""
        if self.profile.welcome_instructions is None:
            return []
        response = {"instructions": self.profile.welcome_instructions}
        return [{"type": "response.create", "response": response}]

    @classmethod
    def refusal(cls, code: str, message: str) -> dict[str, Any]:
        """The ``error`` a client turned away before its session starts is sent."""
        return {"type": "error", "code": code, "message": message}

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """JSON Schemas of what this dialect's clients send and what they are sent."""
        server = TypeAdapter[Any](cls.server_messages).json_schema() if cls.server_messages else {}
        return {"client": cls.protocol.schema(), "server": server}

    def client_text(self, raw: str | bytes, now: float) -> Outbox:
        """A client text frame; raises :class:`ClientError` when it is malformed."""
        message, handle = self.protocol.parse(raw)
        return handle(self, message, now)

    def client_audio_b64(self, audio: str, now: float) -> Outbox:
        """Audio sent as base64 in a JSON message (clients without binary frames)."""
        try:
            pcm = pybase64.b64decode(audio, validate=True)
        except ValueError:  # binascii.Error, or (pybase64) a string that is not ASCII
            raise ClientError("invalid_audio", "'audio' is not valid base64") from None
        return self.client_audio(pcm, now)

    def client_audio(self, pcm: bytes, now: float) -> Outbox:
        """A binary frame of audio from the client, in ``audio_format``."""
        if not pcm or len(pcm) % 2:
            raise ClientError(
                "invalid_audio", f"audio frames must be whole PCM16 samples, got {len(pcm)} bytes"
            )
        out = Outbox(audio_in_ms=len(pcm) / self.bytes_per_ms)
        if self.record_audio:
            out.recorded.append(("user", pcm))
        held = self._coalescing
        if not held and len(pcm) >= self._coalesce_bytes:
            out.backend.append(self.append(pcm))
            return out
        # Tiny frames (a 10 ms device, a 128-sample worklet) cost a backend event each:
        # join them into appends of at least coalesce_ms.
        held += pcm
        if len(held) >= self._coalesce_bytes:
            out.backend.extend(self._release_audio())
        return out

    def _release_audio(self) -> list[BackendEvent]:
        """The held audio as one append (none when nothing is held)."""
        if not self._coalescing:
            return []
        audio = bytes(self._coalescing)
        self._coalescing.clear()
        return [self.append(audio)]

    def append(self, audio: bytes) -> BackendEvent:
        return {"type": "input_audio_buffer.append", "audio": pybase64.b64encode_as_string(audio)}

    def user_text(self, text: str, now: float, image: str | None = None) -> Outbox:
        """A typed user turn, answered by the assistant; refused (``text_rate_exceeded``,
        with ``retry_after``) when turns come faster than ``text_rate``. ``image``: a
        ``data:`` URL sent with it as ``input_image`` (checked by :func:`parse_image`)."""
        checked = parse_image(image, self.max_image_bytes) if image is not None else None
        if self.text_rate is not None and (wait := self.text_rate.take(len(text.encode()), now)):
            rate = self.text_rate
            raise ClientError(
                "text_rate_exceeded",
                f"typed turns are limited to {rate.per_second:g} a second and "
                f"{rate.bytes_per_second:g} bytes a second",
                retry_after=round(wait, 3),
            )
        content: list[dict[str, Any]] = message("user", text)["content"] if text else []
        data: dict[str, Any] = {"text": text}
        if checked is not None:
            content.append({"type": "input_image", "image_url": checked.url})
            data["image"] = {"type": checked.media_type, "bytes": checked.size}
        item = {"type": "message", "role": "user", "content": content}
        self.history.user_item(item)
        out = Outbox(
            backend=[{"type": "conversation.item.create", "item": dict(item)}],
            notes=[Note("user_text", data)],
        )
        self._request_reply(out)
        return out

    def commit(self) -> Outbox:
        """End a push-to-talk turn (turn detection off); the reply follows the commit."""
        self.reply_on_commit = True
        return Outbox(backend=[*self._release_audio(), {"type": "input_audio_buffer.commit"}])

    def interrupt(self, now: float) -> Outbox:
        """Stop the reply the client is hearing, as if the user had started speaking; the
        client is told at once: each cut text part's done (its response's, in a dialect
        that has one), then that the interrupt took effect. The cut parts' late deltas
        are dropped."""
        out = Outbox()
        cancelled = self.responding
        if cancelled:
            out.backend.append({"type": "response.cancel", "event_id": self._event_id()})
        self._truncate(now, out)
        for text_id in self._unfinished:
            self._cut_texts.add(text_id)
            out.client.extend(self.render_text_done(text_id))
        self.cut_short(out)
        if cancelled:
            self._done_told = True  # the cancelled response's own done is not told again
            out.client.extend(self.render_response_done("cancelled"))
        out.client.extend(self.render_interrupted())
        return out

    def tool_result(self, call: ToolCall, output: str, instructions: str | None = None) -> Outbox:
        """Give the model a tool's output; ask for the next reply once all are in
        (``instructions``: that reply's, the tool's way of describing its result)."""
        self.pending_calls.discard(call.call_id)
        if instructions is not None:
            self.reply_instructions = instructions
        item = {"type": "function_call_output", "call_id": call.call_id, "output": output}
        self.history.function_output(call.call_id, output)
        out = Outbox(
            backend=[{"type": "conversation.item.create", "item": item}],
            client=self.render_tool(call.name, done=True),
            notes=[
                Note("tool_result", {"name": call.name, "call_id": call.call_id, "output": output})
            ],
        )
        self._request_reply(out)
        return out

    # ------------------------------------------------ an operator's changes (the ``/logs`` client)

    def adopt(self, config: CallConfig) -> None:
        """Take an operator's configuration (instructions, voice, tools) for the sessions
        this translator opens from now on; server tools keep their names."""
        changes = {key: value for key, value in config.profile.items() if value is not None}
        if changes:
            self.profile = replace(self.profile, **changes)
        if config.tools is not None:
            served = {tool.get("name") for tool in self.tools}
            self.operator_tools = [tool for tool in config.tools if tool["name"] not in served]

    def configure(self, config: CallConfig) -> Outbox:
        """An operator changes the live session: adopted, and sent as a ``session.update``."""
        self.adopt(config)
        return Outbox(backend=[self.session_update()])

    def operator_output(self, call_id: str, output: str) -> Outbox:
        """An operator's answer to a call of one of their tools (the model's reply is asked
        for by the operator's ``response.create``, as the Realtime API expects)."""
        self.pending_calls.discard(call_id)
        name = self.operator_calls.pop(call_id, "")
        item = {"type": "function_call_output", "call_id": call_id, "output": output}
        self.history.function_output(call_id, output)
        out = Outbox(
            backend=[{"type": "conversation.item.create", "item": item}],
            notes=[Note("tool_result", {"name": name, "call_id": call_id, "output": output})],
        )
        self._reply_if_due(out)
        return out

    def operator_reply(self) -> Outbox:
        """An operator asks for a reply: now, or once the running one is done."""
        out = Outbox()
        self._request_reply(out)
        return out

    def _operator_tool(self, name: str) -> bool:
        return any(tool["name"] == name for tool in self.operator_tools)

    def resume(self) -> Outbox:
        """On a fresh backend after a reconnect: nothing runs there; ask for a reply due."""
        self.responding = False
        out = Outbox()
        self.cut_short(out)  # the lost connection's reply ended where the client has it
        self._reply_if_due(out)
        return out

    def stalled(self, seconds: float) -> Outbox:
        """The reply in progress went silent for ``seconds``: give it up, tell the client."""
        self.responding = False
        out = self.error("backend_timeout", f"the assistant did not answer for {seconds:g} s")
        self.cut_short(out)
        out.abandoned = True
        return out

    def cut_short(self, out: Outbox | None = None) -> Outbox:
        """The assistant text the client was sent of replies that ended before it was done
        (the session also calls this as it closes): a turn each, marked ``cut``."""
        out = out if out is not None else Outbox()
        for item_id, parts in self._unfinished.values():
            if text := "".join(parts):
                self.history.assistant_text(text, item_id)
                out.notes.append(
                    Note("assistant_text", {"item_id": item_id, "text": text, "cut": True})
                )
        self._unfinished.clear()
        return out

    def error(self, code: ErrorCode, message: str, retry_after: float | None = None) -> Outbox:
        """Tell the client something went wrong (the session decides what follows)."""
        return Outbox(
            client=self.render_error(code, message, retry_after),
            notes=[Note("error", {"code": code, "message": message})],
        )

    def _request_reply(self, out: Outbox) -> None:
        """Ask for a reply now, or once the one in progress is done: the Realtime API runs
        one response at a time and refuses a second (a question typed over an answer)."""
        self.reply_due = True
        self._reply_if_due(out)

    # ------------------------------------------------------------------ towards the client

    def backend_event(self, event: BackendEvent, now: float) -> Outbox:
        """One event from the backend."""
        match event.get("type"):
            case "response.output_audio.delta":
                return self._audio_delta(event, now)
            case "response.output_text.delta" | "response.output_audio_transcript.delta":
                text_id = _text_id(event)
                if text_id in self._cut_texts:
                    return Outbox()
                parts = self._unfinished.setdefault(text_id, (event["item_id"], []))[1]
                parts.append(event["delta"])
                return Outbox(client=self.render_text_delta(text_id, event["delta"]))
            case "response.output_text.done" | "response.output_audio_transcript.done":
                return self._text_done(event)
            case "input_audio_buffer.speech_started" if not self.profile.interrupt_response:
                # The service lets the reply play on over the user: so does the client.
                return Outbox(notes=[Note("speech_started", {})])
            case "input_audio_buffer.speech_started":
                out = Outbox(
                    client=self.render_speech_started(), notes=[Note("speech_started", {})]
                )
                self._truncate(now, out)
                return out
            case "conversation.item.input_audio_transcription.delta":
                return self._transcript_delta(event)
            case "conversation.item.input_audio_transcription.failed":
                return self._transcript_failed(event)
            case "conversation.item.input_audio_transcription.completed":
                text = event.get("transcript", "")
                self._partials.pop(event["item_id"], None)
                self.history.transcript(event["item_id"], text)
                return Outbox(
                    client=self.render_transcription(event["item_id"], text),
                    notes=[Note("user_transcript", {"item_id": event["item_id"], "text": text})],
                )
            case "response.created":
                self.responding = True
                return Outbox()
            case "input_audio_buffer.committed":
                self.history.user_audio(event["item_id"])
                out = Outbox()
                if self.reply_on_commit:
                    self.reply_on_commit = False
                    self._request_reply(out)
                return out
            case "response.done":
                return self._response_done(event)
            case "input_audio_buffer.timeout_triggered":
                data = {"item_id": event.get("item_id"), "audio_end_ms": event.get("audio_end_ms")}
                return Outbox(
                    client=self.render_timeout_triggered(),
                    notes=[Note("timeout_triggered", data)],
                )
            case "response.output_item.added" if (event.get("item") or {}).get(
                "type"
            ) == "mcp_call":
                return Outbox(client=self.render_tool(str(event["item"].get("name")), done=False))
            case "response.output_item.done" if (event.get("item") or {}).get("type") == "mcp_call":
                return self._mcp_call(event["item"])
            case "conversation.item.done" if (event.get("item") or {}).get(
                "type"
            ) == "mcp_list_tools":
                item = event["item"]
                names = [str(tool.get("name")) for tool in item.get("tools") or []]
                data = {"server_label": item.get("server_label"), "tools": names}
                return Outbox(notes=[Note("mcp_list_tools", data)])
            case "mcp_list_tools.failed":
                data = {"item_id": event.get("item_id"), "failed": True}
                return Outbox(notes=[Note("mcp_list_tools", data)])
            case "rate_limits.updated":
                limits = event.get("rate_limits") or []
                return Outbox(notes=[Note("rate_limits", {"rate_limits": limits})])
            case "error":
                return self._backend_error(event)
            case kind:
                logger.trace("< {} (not forwarded)", kind)
                return Outbox()

    def setup_event(self, event: BackendEvent, now: float) -> Outbox:
        """An event of a backend session being configured (by :meth:`restore`); the client
        hears ``connected`` the first time one is; a refusal raises :class:`BackendError`."""
        match event.get("type"):
            case "error":
                message = str((event.get("error") or {}).get("message", "refused"))
                raise BackendError("backend_error", f"the backend refused the session: {message}")
            case "session.updated":
                out = Outbox(client=[] if self.ready else self.render_connected(), configured=True)
                self.ready = True
                return out
            case _:
                return self.backend_event(event, now)

    def _transcript_delta(self, event: BackendEvent) -> Outbox:
        """A piece of what the user is saying: the client gets the transcript so far."""
        item_id = event["item_id"]
        if not (delta := event.get("delta")):
            return Outbox()
        text = self._partials[item_id] = self._partials.get(item_id, "") + delta
        return Outbox(client=self.render_transcription(item_id, text, partial=True))

    def _transcript_failed(self, event: BackendEvent) -> Outbox:
        item_id = event["item_id"]
        self._partials.pop(item_id, None)
        self.history.transcript_failed(item_id)
        reason = (event.get("error") or {}).get("message") or "no reason given"
        return self.error(
            "transcription_failed", f"what was said could not be transcribed: {reason}"
        )

    def _audio_delta(self, event: BackendEvent, now: float) -> Outbox:
        if event["item_id"] in self.truncated:
            return Outbox()
        audio = pybase64.b64decode(event["delta"])
        ms = len(audio) / self.bytes_per_ms
        self.played(event, now).ms_sent += ms
        out = Outbox(client=self.render_audio(audio), audio_out_ms=ms)
        if self.record_audio:
            out.recorded.append(("assistant", audio))
        return out

    def played(self, event: BackendEvent, now: float) -> Playback:
        """The playback the audio delta ``event`` belongs to; a new item starts playing
        once the client has played what it already has (queued behind it)."""
        playing = self.playback
        if playing is None or playing.item_id != event["item_id"]:
            start = now if playing is None else max(now, playing.ends_at())
            playing = self.playback = Playback(
                event["item_id"], event.get("content_index", 0), start
            )
        return playing

    def _mcp_call(self, item: dict[str, Any]) -> Outbox:
        """A tool call the service made on an MCP server: shown and recorded."""
        name = str(item.get("name"))
        data = {
            "item_id": item.get("id"),
            "server_label": item.get("server_label"),
            "name": name,
            "arguments": item.get("arguments") or "",
            "output": item.get("output"),
            "error": item.get("error"),
        }
        kept = {"type": "mcp_call", "id": item.get("id"), "server_label": item.get("server_label")}
        kept |= {key: data[key] for key in ("name", "arguments", "output", "error")}
        self.history.mcp_call(kept)
        return Outbox(client=self.render_tool(name, done=True), notes=[Note("mcp_call", data)])

    def _text_done(self, event: BackendEvent) -> Outbox:
        if _text_id(event) in self._cut_texts:
            self._cut_texts.discard(_text_id(event))
            return Outbox()  # told, and recorded, at the interrupt
        text = event.get("text") or event.get("transcript") or ""
        self._unfinished.pop(_text_id(event), None)
        out = Outbox(client=self.render_text_done(_text_id(event)))
        if text:
            self.history.assistant_text(text, event["item_id"])
            out.notes.append(Note("assistant_text", {"item_id": event["item_id"], "text": text}))
        return out

    def _response_done(self, event: BackendEvent) -> Outbox:
        self.responding = False
        response = event.get("response") or {}
        told, self._done_told, self._cut_texts = self._done_told, False, set()
        out = Outbox(
            client=[] if told else self.render_response_done(str(response.get("status", "")))
        )
        self.cut_short(out)  # cancelled, or cut by the output cap, before its text was done
        if usage := response.get("usage"):
            out.notes.append(Note("usage", usage))
        if response.get("status") == "completed":
            for item in response.get("output") or []:
                if item.get("type") == "function_call":
                    call = ToolCall(item["call_id"], item["name"], item.get("arguments") or "{}")
                    self.history.function_call(call.call_id, call.name, call.arguments)
                    self.pending_calls.add(call.call_id)
                    if self._operator_tool(call.name):  # the operator answers it
                        self.operator_calls[call.call_id] = call.name
                    else:
                        out.calls.append(call)
                    out.client.extend(self.render_tool(call.name, done=False))
                    out.notes.append(
                        Note(
                            "tool_call",
                            {
                                "name": call.name,
                                "call_id": call.call_id,
                                "arguments": call.arguments,
                            },
                        )
                    )
        self._reply_if_due(out)
        return out

    def _reply_if_due(self, out: Outbox) -> None:
        """Ask for the next reply once every tool output is in and no response runs."""
        if self.reply_due and not self.pending_calls and not self.responding:
            self.reply_due = False
            self.responding = True  # a response is on its way; do not ask twice
            if self.reply_instructions is not None:
                response = {"instructions": self.reply_instructions}
                self.reply_instructions = None
                out.backend.append({"type": "response.create", "response": response})
            else:
                out.backend.append({"type": "response.create"})

    def _truncate(self, now: float, out: Outbox) -> None:
        """Cut the playing item at what the client can have heard, never past it."""
        playing = self.playback
        if playing is None:
            return
        self.playback = None
        heard = self.heard_ms(playing, now)
        self.truncated.add(playing.item_id)
        if heard >= playing.ms_sent and not self.responding:
            return  # the client heard all of a finished reply: nothing to cut
        self.history.truncated(playing.item_id, int(heard), round(playing.ms_sent))
        out.backend.append(
            {
                "type": "conversation.item.truncate",
                "event_id": self._event_id(),
                "item_id": playing.item_id,
                "content_index": playing.content_index,
                "audio_end_ms": int(heard),
            }
        )
        out.notes.append(
            Note("truncated", {"item_id": playing.item_id, "audio_end_ms": int(heard)})
        )

    def heard_ms(self, playing: Playback, now: float) -> float:
        """How much of ``playing`` the client has played (a dialect may know better)."""
        return playing.heard_ms(now)

    def _backend_error(self, event: BackendEvent) -> Outbox:
        error = event.get("error") or {}
        self.reply_on_commit = False  # a refused commit must not be answered
        if str(error.get("event_id") or "").startswith(_INTERNAL):
            # A race of our own (cancel after the reply ended): nothing the client did.
            logger.debug("< error for internal event: {}", error.get("code"))
            return Outbox()
        message = str(error.get("message") or "the Realtime backend reported an error")
        return self.error("backend_error", message)

    def _event_id(self) -> str:
        self._serial += 1
        return f"{_INTERNAL}{self._serial}"

    # ------------------------------------------- rendering: a dialect overrides what it sends

    def render_connected(self) -> list[ClientFrame]:
        return []

    def render_speech_started(self) -> list[ClientFrame]:
        return []

    def render_interrupted(self) -> list[ClientFrame]:
        return []

    def render_timeout_triggered(self) -> list[ClientFrame]:
        return []

    def render_transcription(
        self, item_id: str, text: str, *, partial: bool = False
    ) -> list[ClientFrame]:
        return []

    def render_text_delta(self, text_id: str, delta: str) -> list[ClientFrame]:
        return []

    def render_text_done(self, text_id: str) -> list[ClientFrame]:
        return []

    def render_audio(self, audio: bytes) -> list[ClientFrame]:
        return []

    def render_response_done(self, status: str) -> list[ClientFrame]:
        return []

    def render_tool(self, name: str, *, done: bool) -> list[ClientFrame]:
        return []

    def render_shutting_down(self) -> list[ClientFrame]:
        return []

    def render_resumed(self, interrupted: bool) -> list[ClientFrame]:
        return []

    def render_error(
        self, code: ErrorCode, message: str, retry_after: float | None = None
    ) -> list[ClientFrame]:
        return []


def _text_id(event: BackendEvent) -> str:
    return f"{event['item_id']}-{event.get('content_index', 0)}"
