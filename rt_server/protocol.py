"""The simplified client protocol spoken on ``/realtime``.

Text frames carry one JSON object each; binary frames carry raw PCM16 little-endian mono
24 kHz audio, both ways. The message shapes are compatible with the Azure OpenAI
middle-tier sample ("generic frontend"), plus ``error`` and a few extensions.

Every client message is validated once, here, by :func:`parse_client_message`; nothing
downstream checks again. Server messages are built by :mod:`rt_server.translate`.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, NotRequired, TypeAlias

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from pydantic_core import ErrorDetails
from typing_extensions import TypedDict

from rt_server.errors import ClientError, ErrorCode

_STRICT = ConfigDict(strict=True, extra="ignore")

# --------------------------------------------------------------------------- client -> server


@with_config(_STRICT)
class UserMessage(TypedDict):
    """Client: a typed user turn; the assistant answers it."""

    type: Literal["user_message"]
    text: Annotated[str, Field(min_length=1)]
    id: NotRequired[str]


@with_config(_STRICT)
class AudioMessage(TypedDict):
    """Client: base64 PCM16 audio, for clients that cannot send binary frames."""

    type: Literal["audio"]
    audio: str


ClientAction: TypeAlias = Literal["interrupt", "commit"]


@with_config(_STRICT)
class ClientControl(TypedDict):
    """Client: ``interrupt`` stops the reply; ``commit`` ends a push-to-talk turn."""

    type: Literal["control"]
    action: ClientAction


# --------------------------------------------------------------------------- server -> client

ServerAction: TypeAlias = Literal[
    "connected",
    "speech_started",
    "text_done",
    "shutting_down",
    "tool_call",
    "tool_done",
]


class ServerControl(TypedDict):
    """Server: a session event; ``connected`` carries the greeting, ``text_done`` an id."""

    type: Literal["control"]
    action: ServerAction
    greeting: NotRequired[str]
    id: NotRequired[str]
    name: NotRequired[str]


class Transcription(TypedDict):
    """Server: what the user said, once the input audio item is transcribed."""

    type: Literal["transcription"]
    id: str
    text: str


class TextDelta(TypedDict):
    """Server: a piece of assistant text; ``id`` is ``<item_id>-<content_index>``."""

    type: Literal["text_delta"]
    id: str
    delta: str


class ErrorMessage(TypedDict):
    """Server: something went wrong; the session goes on unless a close follows."""

    type: Literal["error"]
    code: ErrorCode
    message: str
    retry_after: NotRequired[float]


ClientMessage: TypeAlias = UserMessage | AudioMessage | ClientControl
ServerMessage: TypeAlias = ServerControl | Transcription | TextDelta | ErrorMessage

# ----------------------------------------------------------------------------------- parsing

_client_adapter: Final = TypeAdapter[ClientMessage](
    Annotated[ClientMessage, Field(discriminator="type")]
)
_server_adapter: Final = TypeAdapter[ServerMessage](ServerMessage)


def parse_client_message(raw: str | bytes) -> ClientMessage:
    """Validate one client text frame; raise :class:`ClientError` saying what is wrong."""
    try:
        return _client_adapter.validate_json(raw)
    except ValidationError as exc:
        raise _client_error(exc.errors(include_url=False)[0]) from None


def _client_error(error: ErrorDetails) -> ClientError:
    kind = error["type"]
    field = ".".join(str(part) for part in error["loc"][1:])
    if kind == "json_invalid":
        if "recursion limit" in error["msg"]:
            return ClientError("nesting_too_deep", "JSON is nested too deeply")
        return ClientError("invalid_json", f"not valid JSON: {error['msg']}")
    if kind in ("dict_type", "model_type", "typed_dict_type"):
        return ClientError("not_an_object", "a message must be a JSON object")
    if kind == "union_tag_not_found":
        return ClientError("missing_type", "the message has no string 'type'")
    if kind == "union_tag_invalid":
        tag = error["input"].get("type") if isinstance(error["input"], dict) else None
        if tag is None:
            return ClientError("missing_type", "the message 'type' is null")
        return ClientError("unknown_type", f"unknown message type {tag!r}")
    if kind == "missing":
        return ClientError("missing_field", f"missing field {field!r}")
    return ClientError("invalid_field", f"field {field!r}: {error['msg']}")


def client_schema() -> dict[str, object]:
    """JSON Schema of every message a client may send."""
    return _client_adapter.json_schema()


def server_schema() -> dict[str, object]:
    """JSON Schema of every message the server sends."""
    return _server_adapter.json_schema()
