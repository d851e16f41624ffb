"""The simplified client protocol spoken on ``/realtime``, and how dialects declare theirs.

Text frames carry one JSON object each; binary frames carry raw PCM16 little-endian mono
24 kHz audio, both ways. The message shapes are compatible with the Azure OpenAI
middle-tier sample ("generic frontend"), plus ``error`` and a few extensions.

A client message type is declared in one place: its TypedDict and its handler, added to
a :class:`ClientProtocol` with :meth:`ClientProtocol.add`. The parser, validation and the
JSON Schema (``GET /protocol.json``) pick it up; unknown types still get a clear error.
Every client message is validated once, by :meth:`ClientProtocol.parse`; nothing
downstream checks again. Server messages are built by the translator's ``render_*``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Literal,
    NotRequired,
    TypeAlias,
    TypeVar,
    Union,
    get_args,
    get_type_hints,
)

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from pydantic_core import ErrorDetails
from typing_extensions import TypedDict

from rt_server.errors import ClientError, ErrorCode

if TYPE_CHECKING:
    from rt_server.translate import Outbox, Translator

STRICT = ConfigDict(strict=True, extra="ignore")

M = TypeVar("M", bound=Mapping[str, Any])
T = TypeVar("T", bound="Translator")
Handler: TypeAlias = Callable[[Any, Any, float], "Outbox"]


class ClientProtocol:
    """The client messages of one dialect: a TypedDict and a handler per ``type``."""

    def __init__(self, name: str, tag: str = "type") -> None:
        self.name = name
        self.tag = tag  # the key that tells messages apart (Twilio's is "event")
        self._types: dict[str, type[Any]] = {}
        self._handlers: dict[str, Handler] = {}

    def add(self, message: type[M], handler: Callable[[T, M, float], Outbox]) -> None:
        """Declare a message type (its ``tag`` Literal is the key) and who handles it."""
        [kind] = get_args(get_type_hints(message)[self.tag])
        self._types[kind] = message
        self._handlers[kind] = handler
        self.__dict__.pop("_adapter", None)  # rebuild the parser with the new type

    def parse(self, raw: str | bytes) -> tuple[Mapping[str, Any], Handler]:
        """Validate one text frame; raise :class:`ClientError` saying what is wrong."""
        try:
            message: Mapping[str, Any] = self._adapter.validate_json(raw)
        except ValidationError as exc:
            raise client_error(exc.errors(include_url=False)[0], self.tag) from None
        return message, self._handlers[message[self.tag]]

    def schema(self) -> dict[str, Any]:
        """JSON Schema of every message a client of this dialect may send."""
        return self._adapter.json_schema()

    @cached_property
    def _adapter(self) -> TypeAdapter[Any]:
        union = Union[tuple(self._types.values())]  # type: ignore[valid-type]  # noqa: UP007
        annotated: Any = Annotated[union, Field(discriminator=self.tag)]
        return TypeAdapter(annotated)


def client_error(error: ErrorDetails, tag: str = "type") -> ClientError:
    """The client-facing error for a pydantic validation failure (``tag``: the type key)."""
    kind = error["type"]
    field = ".".join(str(part) for part in error["loc"][1:])
    if kind == "json_invalid":
        if "recursion limit" in error["msg"]:
            return ClientError("nesting_too_deep", "JSON is nested too deeply")
        return ClientError("invalid_json", f"not valid JSON: {error['msg']}")
    if kind in ("dict_type", "model_type", "typed_dict_type"):
        return ClientError("not_an_object", "a message must be a JSON object")
    if kind == "union_tag_not_found":
        return ClientError("missing_type", f"the message has no string {tag!r}")
    if kind == "union_tag_invalid":
        value = error["input"].get(tag) if isinstance(error["input"], dict) else None
        if value is None:
            return ClientError("missing_type", f"the message {tag!r} is null")
        return ClientError("unknown_type", f"unknown message {tag} {value!r}")
    if kind == "missing":
        return ClientError("missing_field", f"missing field {field!r}")
    return ClientError("invalid_field", f"field {field!r}: {error['msg']}")


# --------------------------------------------------------------------------- client -> server


@with_config(STRICT)
class UserMessage(TypedDict):
    """Client: a typed user turn; the assistant answers it."""

    type: Literal["user_message"]
    text: Annotated[str, Field(min_length=1)]
    id: NotRequired[str]


@with_config(STRICT)
class AudioMessage(TypedDict):
    """Client: base64 PCM16 audio, for clients that cannot send binary frames."""

    type: Literal["audio"]
    audio: str


@with_config(STRICT)
class ClientControl(TypedDict):
    """Client: ``interrupt`` stops the reply; ``commit`` ends a push-to-talk turn."""

    type: Literal["control"]
    action: Literal["interrupt", "commit"]


REALTIME = ClientProtocol("realtime")
REALTIME.add(UserMessage, lambda t, message, now: t.user_text(message["text"]))
REALTIME.add(AudioMessage, lambda t, message, now: t.client_audio_b64(message["audio"], now))
REALTIME.add(
    ClientControl,
    lambda t, message, now: t.interrupt(now) if message["action"] == "interrupt" else t.commit(),
)

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


ServerMessage: TypeAlias = ServerControl | Transcription | TextDelta | ErrorMessage


def parse_client_message(raw: str | bytes) -> Mapping[str, Any]:
    """Validate one ``/realtime`` client text frame (see :meth:`ClientProtocol.parse`)."""
    return REALTIME.parse(raw)[0]


def server_schema() -> dict[str, Any]:
    """JSON Schema of every message the ``/realtime`` server sends."""
    return TypeAdapter[ServerMessage](ServerMessage).json_schema()


def client_schema() -> dict[str, Any]:
    """JSON Schema of every message a ``/realtime`` client may send."""
    return REALTIME.schema()
