"""The ``/logs`` dialect: the operator console of openai/openai-realtime-twilio-demo.

The demo's web app connects to ``/logs`` and expects the followed call's raw Realtime events,
by the beta names it was built on (``response.audio_transcript.delta``,
``conversation.item.created``, ...); it sends Realtime client events back:
``session.update`` (instructions, voice, tools) to configure the call, and, for a function
call of a tool it declared, ``conversation.item.create`` with a ``function_call_output``,
then ``response.create``.

This module is pure: :class:`LogsTranslator` validates what the console sends and turns it
into an :data:`Operation` (the I/O shell, :mod:`rt_server.call_logs`, applies it to the call
and saves the configuration); :func:`render_event` renders a backend event (GA names) the
way the console knows it, without audio payloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NotRequired, TypeAlias

from pydantic import ConfigDict, TypeAdapter, with_config
from typing_extensions import TypedDict

from rt_server.config import Voice
from rt_server.protocol import STRICT, ClientProtocol
from rt_server.translate import BackendEvent, CallConfig

#: ``session`` keys an operator may set; the rest (audio formats, turn detection, ...) is
#: the server's.
SETTABLE = ("instructions", "voice", "tools")

#: The beta names of GA events (the demo was built on the beta protocol).
BETA_NAMES = {
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "conversation.item.added": "conversation.item.created",
}
_BETA_PARTS = {"output_audio": "audio", "output_text": "text"}

# --------------------------------------------------------------------------- console -> server


@with_config(STRICT)
class FunctionTool(TypedDict):
    """A function the model may call; the operator answers its calls."""

    type: Literal["function"]
    name: str
    description: NotRequired[str]
    parameters: NotRequired[dict[str, Any]]


@with_config(ConfigDict(strict=True, extra="allow"))  # other keys are answered, not dropped
class OperatorSession(TypedDict):
    """The ``session`` of a console's ``session.update``."""

    instructions: NotRequired[str]
    voice: NotRequired[Voice]
    tools: NotRequired[list[FunctionTool]]


@with_config(STRICT)
class SessionUpdate(TypedDict):
    """Console: configure the followed call now and every call after it."""

    type: Literal["session.update"]
    session: OperatorSession
    event_id: NotRequired[str]


@with_config(STRICT)
class FunctionCallOutput(TypedDict):
    type: Literal["function_call_output"]
    call_id: str
    output: str


@with_config(STRICT)
class ItemCreate(TypedDict):
    """Console: the output of a function call of a tool the console declared."""

    type: Literal["conversation.item.create"]
    item: FunctionCallOutput
    event_id: NotRequired[str]
    previous_item_id: NotRequired[str]


@with_config(STRICT)
class ResponseCreate(TypedDict):
    """Console: ask the model to reply (after a function call's output)."""

    type: Literal["response.create"]
    event_id: NotRequired[str]


# --------------------------------------------------------------------------- server -> console


class ErrorDetail(TypedDict):
    type: Literal["invalid_request_error"]
    code: str
    message: str
    event_id: NotRequired[str]


class LogsError(TypedDict):
    """Server: what the console sent was refused (in the Realtime API's own shape)."""

    type: Literal["error"]
    error: ErrorDetail


# --------------------------------------------------------------------------- operations


@dataclass(frozen=True, slots=True)
class Configure:
    """Apply ``config`` to the followed call and save it for the next calls; ``refused``:
    session keys that are the server's."""

    config: CallConfig
    refused: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolOutput:
    call_id: str
    output: str


@dataclass(frozen=True, slots=True)
class Reply:
    pass


Operation: TypeAlias = Configure | ToolOutput | Reply


@dataclass(slots=True)
class LogsTranslator:
    """Parses what one console sends (:meth:`client_text`)."""

    name: ClassVar[str] = "logs"
    path: ClassVar[str] = "/logs"
    protocol: ClassVar[ClientProtocol[Operation]] = ClientProtocol("logs")
    server_messages: ClassVar[Any] = LogsError

    def client_text(self, raw: str | bytes) -> Operation:
        """One text frame; raises :class:`~rt_server.errors.ClientError` when malformed."""
        message, handle = self.protocol.parse(raw)
        operation: Operation = handle(self, message, 0.0)
        return operation

    @protocol.handles(SessionUpdate)
    def on_session_update(self, message: SessionUpdate, now: float) -> Operation:
        session = message["session"]
        refused = tuple(sorted(key for key in session if key not in SETTABLE))
        profile = {"instructions": session.get("instructions"), "voice": session.get("voice")}
        tools = session.get("tools")
        config = CallConfig(profile, [dict(tool) for tool in tools] if tools is not None else None)
        return Configure(config, refused)

    @protocol.handles(ItemCreate)
    def on_item_create(self, message: ItemCreate, now: float) -> Operation:
        item = message["item"]
        return ToolOutput(item["call_id"], item["output"])

    @protocol.handles(ResponseCreate)
    def on_response_create(self, message: ResponseCreate, now: float) -> Operation:
        return Reply()

    @classmethod
    def schema(cls) -> dict[str, Any]:
        return {
            "client": cls.protocol.schema(),
            "server": TypeAdapter[Any](cls.server_messages).json_schema(),
        }


def error_event(code: str, message: str) -> LogsError:
    return LogsError(
        type="error", error=ErrorDetail(type="invalid_request_error", code=code, message=message)
    )


def render_event(event: BackendEvent) -> BackendEvent:
    """``event`` as the console knows it: beta names and part types, no audio payload."""
    kind = event.get("type", "")
    beta = BETA_NAMES.get(kind)
    if beta is None and "part" not in event and "item" not in event:
        return event  # the same in both protocols: sent as it came
    shown = dict(event)
    if beta is not None:
        shown["type"] = beta
    if kind == "response.output_audio.delta":
        shown.pop("delta", None)  # audio is left out
    if isinstance(part := event.get("part"), dict) and part.get("type") in _BETA_PARTS:
        shown["part"] = {**part, "type": _BETA_PARTS[part["type"]]}
    if isinstance(item := event.get("item"), dict) and item.get("content"):
        content = [
            {**c, "type": _BETA_PARTS.get(str(c.get("type")), c.get("type"))}
            for c in item["content"]
            if isinstance(c, dict)
        ]
        shown["item"] = {**item, "content": content}
    return shown
