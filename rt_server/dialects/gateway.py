"""The Realtime gateway dialect: any GA Realtime API client (``/v1/realtime``, ``/ws``).

The client speaks the GA Realtime protocol itself, so this translator passes events
through and only acts where the server has a say:

- the backend session starts with the profile's instructions, voice, audio settings and
  server tools; the client sees it as ``session.created`` (the backend's own
  ``session.created``, with the configured session in it);
- a ``session.update`` or ``response.create`` that touches a locked field
  (``GATEWAY_LOCKED``) is refused with an ``error`` event (``invalid_request_error``,
  ``param`` naming the field) and nothing is forwarded; a client's ``tools`` are sent
  together with the server's;
- server tools (``RT_TOOLS``) run on the server; their items and events are filtered
  out of what the client sees (and out of ``session.*`` and ``response.done``) unless
  ``SHOW_TOOL_CALLS=true``; the client's own tools reach the client as usual;
- transcripts, typed turns, tool calls and usage become notes (records, the monitor).

Everything else crosses unchanged. An event that needs no change is forwarded as the
text it arrived as (:class:`~rt_server.translate.RawEvent`), both ways, when the backend
speaks GA; a preview backend's events are renamed by the backend first, so they are
encoded again. A lost backend is not replaced: the client holds the conversation's item
ids, so it is told (``error``, then close 1013) and reconnects.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NamedTuple, NotRequired, TypeAlias

import orjson
from loguru import logger
from pydantic import with_config
from typing_extensions import TypedDict

from rt_server.errors import ClientError, ErrorCode
from rt_server.profile import lock_path, without_secrets
from rt_server.protocol import STRICT, ClientProtocol
from rt_server.translate import (
    _INTERNAL,
    AUDIO_FORMATS,
    BackendEvent,
    ClientFrame,
    Note,
    Outbox,
    RawEvent,
    ToolCall,
    Translator,
    raw_event,
)

#: Events that carry an item (a server tool's is hidden from the client).
_MCP_CALL_FIELDS = ("server_label", "name", "arguments", "output", "error")
_ITEM_EVENTS = frozenset(
    {
        "conversation.item.added",
        "conversation.item.created",
        "conversation.item.done",
        "conversation.item.retrieved",
        "response.output_item.added",
        "response.output_item.done",
    }
)


#: The client events the gateway looks into (the others pass as they are), and the object
#: each carries.
_INSPECTED = {
    "session.update": "session",
    "response.create": "response",
    "conversation.item.create": "item",
    "input_audio_buffer.append": None,
}


class Refusal(NamedTuple):
    """Why the server refuses a client's change: an error code, a message, the field."""

    code: ErrorCode
    message: str
    param: str


# --------------------------------------------------------------------------- client -> server


@with_config(STRICT)
class SessionUpdate(TypedDict):
    """Client: change the session (fields locked by the server are refused)."""

    type: Literal["session.update"]
    session: dict[str, Any]
    event_id: NotRequired[str]


@with_config(STRICT)
class ResponseCreate(TypedDict):
    """Client: ask for a response (its overrides of locked fields are refused)."""

    type: Literal["response.create"]
    response: NotRequired[dict[str, Any]]
    event_id: NotRequired[str]


@with_config(STRICT)
class ItemCreate(TypedDict):
    """Client: add an item (a typed user message is recorded as a turn)."""

    type: Literal["conversation.item.create"]
    item: dict[str, Any]
    previous_item_id: NotRequired[str | None]
    event_id: NotRequired[str]


@with_config(STRICT)
class AudioAppend(TypedDict):
    """Client: base64 audio in the session's input format (counted against the rate)."""

    type: Literal["input_audio_buffer.append"]
    audio: str
    event_id: NotRequired[str]


# --------------------------------------------------------------------------- server -> client

ErrorType: TypeAlias = Literal["invalid_request_error", "server_error"]


class ErrorDetail(TypedDict):
    """What went wrong: ``param`` names the field, ``event_id`` the client event refused."""

    type: ErrorType
    code: ErrorCode
    message: str
    param: str | None
    event_id: str | None
    retry_after: NotRequired[float]


class GatewayError(TypedDict):
    """Server: the Realtime API's ``error`` event, for what the server itself refuses (every
    other event is the Realtime API's own, passed through)."""

    type: Literal["error"]
    event_id: str
    error: ErrorDetail


class RealtimeEvent(TypedDict):
    """Server: any other event of the GA Realtime API, as the backend sent it."""

    type: str
    event_id: str


GatewayServerMessage: TypeAlias = GatewayError | RealtimeEvent


# --------------------------------------------------------------------------- the translator


@dataclass(slots=True)
class GatewayTranslator(Translator):
    """The GA Realtime protocol, passed through with the server's policy."""

    name: ClassVar[str] = "gateway"
    path: ClassVar[str | None] = None  # /v1/realtime and /ws, mounted by rt_server.gateway
    protocol: ClassVar[ClientProtocol[Outbox]] = ClientProtocol("gateway")
    server_messages: ClassVar[Any] = GatewayServerMessage
    restores: ClassVar[bool] = False

    #: A session the client asked for up front (bound in its client secret).
    initial: dict[str, Any] | None = None
    _incoming: RawEvent | None = None  # the client event being handled
    _created: BackendEvent | None = None  # the backend's session.created, held
    _server_tools: frozenset[str] = field(init=False, default=frozenset())  # their names
    _hidden_tools: frozenset[str] = field(init=False, default=frozenset())  # shown: none
    _hidden_items: set[str] = field(init=False, default_factory=set)
    _hidden_calls: set[str] = field(init=False, default_factory=set)
    _errors: itertools.count[int] = field(init=False, default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        Translator.__post_init__(self)
        self._server_tools = frozenset(str(tool.get("name")) for tool in self.tools)
        if not self.profile.show_tool_calls:
            self._hidden_tools = self._server_tools

    # ---------------------------------------------------------------- the backend session

    def restore(self) -> list[BackendEvent]:
        """The profile's session, then what the client's secret asked for (as if sent)."""
        events = [self.session_update()]
        if self.initial:
            events.append(self._with_server_tools({"type": "session.update"}, self.initial))
        return events

    def welcome(self) -> list[BackendEvent]:
        return []  # the client drives the conversation

    def setup_event(self, event: BackendEvent, now: float) -> Outbox:
        """``session.created`` is held until the profile's session is applied, and reaches
        the client with that session in it."""
        match event["type"]:
            case "session.created":
                self._created = event
                return Outbox()
            case "session.updated":
                session = event.get("session") or {}
                self._track_format(session)
                created = {
                    **(self._created or event),
                    "type": "session.created",
                    "session": self.visible_session(session),
                }
                self.ready = True
                return Outbox(client=[created], configured=True)
            case _:
                return Translator.setup_event(self, event, now)

    # ---------------------------------------------------------------- from the client

    def client_text(self, raw: str | bytes, now: float) -> Outbox:
        """One client event: inspected where the server has a say, else passed on as is."""
        self._incoming = None  # a malformed event is no event: its errors name none
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return self._refuse("invalid_json", f"not valid JSON: {exc}", None)
        if not isinstance(event, dict):
            return self._refuse("not_an_object", "an event must be a JSON object", None)
        kind = event.get("type")
        if not isinstance(kind, str):
            return self._refuse("missing_type", "the event has no string 'type'", "type")
        incoming = self._incoming = raw_event(event, raw.encode() if isinstance(raw, str) else raw)
        if kind == "input_audio_buffer.append" and isinstance(event.get("audio"), str):
            return self.on_append(event, now)  # the hot path: already as valid as it can be
        if kind not in _INSPECTED:
            return Outbox(backend=[incoming])
        try:
            message, handle = self.protocol.parse(raw)
        except ClientError as exc:
            if exc.code == "not_an_object" and (field := _INSPECTED[kind]) is not None:
                return self._refuse("invalid_field", f"{field!r} must be an object", field)
            return self._refuse(exc.code, exc.message, _param(exc.message))
        return handle(self, message, now)

    def client_audio(self, pcm: bytes, now: float) -> Outbox:
        self._incoming = None
        return self._refuse(
            "invalid_audio",
            "binary frames are not part of the Realtime protocol: send input_audio_buffer.append",
            None,
        )

    @protocol.handles(AudioAppend)
    def on_append(self, message: Mapping[str, Any], now: float) -> Outbox:
        audio = message["audio"]
        out = Outbox(
            backend=[self._forwarded()], audio_in_ms=_decoded_size(audio) / self.bytes_per_ms
        )
        if self.record_audio:
            out.recorded.append(("user", audio))
        return out

    @protocol.handles(SessionUpdate)
    def on_session_update(self, message: SessionUpdate, now: float) -> Outbox:
        session = message["session"]
        if (refused := self.check_session(session)) is not None:
            return self._refuse(*refused)
        if "tools" in session and self.tools:
            return Outbox(backend=[self._with_server_tools(dict(self._forwarded()), session)])
        return Outbox(backend=[self._forwarded()])

    @protocol.handles(ResponseCreate)
    def on_response_create(self, message: ResponseCreate, now: float) -> Outbox:
        response = message.get("response") or {}
        refused = self._locked(response, "response") or self._tool_clash(response, "response")
        if refused is not None:
            return self._refuse(*refused)
        return Outbox(backend=[self._forwarded()])

    @protocol.handles(ItemCreate)
    def on_item_create(self, message: ItemCreate, now: float) -> Outbox:
        item = message["item"]
        out = Outbox(backend=[self._forwarded()])
        if item.get("type") == "message" and item.get("role") == "user":
            text = " ".join(
                str(part.get("text", ""))
                for part in item.get("content") or []
                if isinstance(part, dict) and part.get("type") == "input_text"
            )
            if text:
                out.notes.append(Note("user_text", {"text": text}))
        elif item.get("type") == "function_call_output":
            data = {"call_id": item.get("call_id"), "output": item.get("output"), "client": True}
            out.notes.append(Note("tool_result", data))
        return out

    def check_session(self, session: Mapping[str, Any]) -> Refusal | None:
        """Why the server does not allow this session change, or None."""
        return self._locked(session, "session") or self._tool_clash(session, "session")

    def _forwarded(self) -> RawEvent:
        incoming = self._incoming
        assert incoming is not None  # set by client_text before any handler runs
        return incoming

    def _locked(self, fields: Mapping[str, Any], where: str) -> Refusal | None:
        """The refusal of a change to a locked field, or None."""
        for name in self.profile.gateway_locked:
            path, value = lock_path(name), fields
            for part in path.split("."):
                if not isinstance(value, Mapping) or part not in value:
                    break
                value = value[part]
            else:
                field = f"{where}.{path}"
                return Refusal("locked_field", f"{field} is set by the server", field)
        return None

    def _tool_clash(self, fields: Mapping[str, Any], where: str) -> Refusal | None:
        """The refusal of a client tool named like a server tool, or None."""
        tools = fields.get("tools")
        if not isinstance(tools, list):
            return None
        for index, tool in enumerate(tools):
            if isinstance(tool, Mapping) and tool.get("name") in self._server_tools:
                message = f"the tool name {tool['name']!r} is taken by a server tool"
                return Refusal("invalid_field", message, f"{where}.tools[{index}].name")
        return None

    def _with_server_tools(self, event: BackendEvent, session: Mapping[str, Any]) -> BackendEvent:
        if "tools" not in session or not self.tools:
            return {**event, "session": dict(session)}
        return {**event, "session": {**session, "tools": [*session["tools"], *self.tools]}}

    # ---------------------------------------------------------------- from the backend

    def backend_event(self, event: BackendEvent, now: float) -> Outbox:
        kind: str = event["type"]
        if kind == "response.output_audio.delta":
            ms = _decoded_size(event["delta"]) / self.bytes_per_ms
            out = Outbox(client=[_frame(event)], audio_out_ms=ms)
            if self.record_audio:
                out.recorded.append(("assistant", event["delta"]))
            return out
        if self._hidden_tools and self._hides(kind, event):
            return Outbox()
        match kind:
            case "response.created":
                self.responding = True
            case "response.done":
                return self._response_done(event)
            case "response.output_text.done" | "response.output_audio_transcript.done":
                text = event.get("text") or event.get("transcript") or ""
                if text:
                    note = Note("assistant_text", {"item_id": event.get("item_id"), "text": text})
                    return Outbox(client=[_frame(event)], notes=[note])
            case "conversation.item.input_audio_transcription.completed":
                data = {"item_id": event.get("item_id"), "text": event.get("transcript", "")}
                return Outbox(client=[_frame(event)], notes=[Note("user_transcript", data)])
            case "input_audio_buffer.speech_started":
                return Outbox(client=[_frame(event)], notes=[Note("speech_started", {})])
            case "response.output_item.done" if (event.get("item") or {}).get("type") == "mcp_call":
                item = event["item"]
                data = {"item_id": item.get("id")}
                data.update((key, item.get(key)) for key in _MCP_CALL_FIELDS)
                return Outbox(client=[_frame(event)], notes=[Note("mcp_call", data)])
            case "rate_limits.updated":
                note = Note("rate_limits", {"rate_limits": event.get("rate_limits") or []})
                return Outbox(client=[_frame(event)], notes=[note])
            case "session.updated" | "session.created":
                session = event.get("session") or {}
                self._track_format(session)
                return Outbox(client=[{**event, "session": self.visible_session(session)}])
            case "error":
                return self._backend_error(event)
        return Outbox(client=[_frame(event)])

    def _hides(self, kind: str, event: BackendEvent) -> bool:
        """Whether ``event`` belongs to a server tool's call (remembered from its item)."""
        if kind in _ITEM_EVENTS:
            item = event.get("item") or {}
            if item.get("id") in self._hidden_items:
                return True
            if item.get("name") in self._hidden_tools or item.get("call_id") in self._hidden_calls:
                self._hidden_items.add(str(item.get("id")))
                self._hidden_calls.add(str(item.get("call_id")))
                return True
            return False
        return event.get("item_id") in self._hidden_items

    def _response_done(self, event: BackendEvent) -> Outbox:
        self.responding = False
        response = event.get("response") or {}
        out = Outbox()
        if usage := response.get("usage"):
            out.notes.append(Note("usage", usage))
        visible = []
        for item in response.get("output") or []:
            if item.get("type") != "function_call":
                visible.append(item)
                continue
            call = ToolCall(item["call_id"], item["name"], item.get("arguments") or "{}")
            ours = call.name in self._server_tools
            data = {"name": call.name, "call_id": call.call_id, "arguments": call.arguments}
            out.notes.append(Note("tool_call", data if ours else {**data, "client": True}))
            if ours and response.get("status") == "completed":
                self.pending_calls.add(call.call_id)
                out.calls.append(call)
            if call.name not in self._hidden_tools:
                visible.append(item)
        if len(visible) == len(response.get("output") or []):
            out.client.append(_frame(event))
        else:
            out.client.append({**event, "response": {**response, "output": visible}})
        self._reply_if_due(out)
        return out

    def _reply_if_due(self, out: Outbox) -> None:
        before = len(out.backend)
        Translator._reply_if_due(self, out)
        for request in out.backend[before:]:
            request["event_id"] = self._event_id()  # its errors are ours, not the client's

    def _backend_error(self, event: BackendEvent) -> Outbox:
        error = event.get("error") or {}
        if str(error.get("event_id") or "").startswith(_INTERNAL):
            return Translator._backend_error(self, event)  # a race of our own: not forwarded
        message = str(error.get("message") or "the Realtime backend reported an error")
        note = Note("error", {"code": "backend_error", "message": message})
        return Outbox(client=[_frame(event)], notes=[note])

    def visible_session(self, session: Mapping[str, Any]) -> dict[str, Any]:
        tools = session.get("tools")
        if not self._hidden_tools or not isinstance(tools, list):
            return without_secrets(dict(session))
        shown = [t for t in tools if t.get("name") not in self._hidden_tools]
        return without_secrets({**session, "tools": shown})

    def _track_format(self, session: Mapping[str, Any]) -> None:
        """Follow the input audio format the client chose (audio is counted in it)."""
        audio_format = ((session.get("audio") or {}).get("input") or {}).get("format")
        if isinstance(audio_format, dict) and audio_format.get("type") in AUDIO_FORMATS:
            if self.record_audio and audio_format["type"] != self.audio_format["type"]:
                # The recording's files are in the format the session started with.
                logger.warning("the client changed the audio format: its recording stops")
                self.record_audio = False
            self.audio_format = audio_format
            rate, width = AUDIO_FORMATS[audio_format["type"]]
            self.bytes_per_ms = rate * width // 1000

    # ---------------------------------------------------------------- rendering

    @classmethod
    def refusal(cls, code: str, message: str) -> dict[str, Any]:
        error = {"type": "invalid_request_error", "code": code, "message": message, "param": None}
        return {"type": "error", "event_id": "event_rt0", "error": {**error, "event_id": None}}

    def render_shutting_down(self) -> list[ClientFrame]:
        message = "the server is shutting down; the session closes once this response ends"
        return [self._error_frame("shutting_down", message, None, None)]

    def _refuse(self, code: ErrorCode, message: str, param: str | None) -> Outbox:
        """An ``error`` event for the client event being handled; nothing is forwarded."""
        incoming = self._incoming
        client_event = incoming.get("event_id") if incoming is not None else None
        frame = self._error_frame(code, message, param, client_event)
        return Outbox(client=[frame], notes=[Note("error", {"code": code, "message": message})])

    def render_error(
        self, code: ErrorCode, message: str, retry_after: float | None = None
    ) -> list[ClientFrame]:
        return [self._error_frame(code, message, None, None, retry_after)]

    def _error_frame(
        self,
        code: ErrorCode,
        message: str,
        param: str | None,
        client_event: Any,
        retry_after: float | None = None,
    ) -> GatewayError:
        kind: ErrorType = (
            "server_error"
            if code.startswith("backend_") or code == "internal_error"
            else "invalid_request_error"
        )
        detail = ErrorDetail(
            type=kind,
            code=code,
            message=message,
            param=param,
            event_id=client_event if isinstance(client_event, str) else None,
        )
        if retry_after is not None:
            detail["retry_after"] = retry_after
        return GatewayError(type="error", event_id=f"event_rt{next(self._errors)}", error=detail)


def _frame(event: BackendEvent) -> ClientFrame:
    """A backend event for the client as it is: its own text when it kept it."""
    return event.raw.decode() if type(event) is RawEvent else event


def _param(message: str) -> str | None:
    """The field a validation message names (``field 'x': ...``, ``missing field 'x'``)."""
    _, quote, rest = message.partition("'")
    return rest.partition("'")[0] if quote else None


def _decoded_size(payload: str) -> int:
    """Bytes in a base64 string, without decoding it."""
    return len(payload) * 3 // 4 - payload.count("=", -2)
