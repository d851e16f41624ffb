"""The ``/realtime`` dialect: the simplified protocol for light clients.

Text frames carry one JSON object each; binary frames carry raw PCM16 little-endian mono
24 kHz audio, both ways. The message shapes are compatible with the Azure OpenAI
middle-tier sample ("generic frontend"), plus ``error`` and a few extensions.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, NotRequired, TypeAlias

from pydantic import Field, with_config
from typing_extensions import TypedDict

from rt_server.errors import ClientError, ErrorCode
from rt_server.protocol import STRICT, ClientProtocol
from rt_server.translate import ClientFrame, Outbox, Translator

# --------------------------------------------------------------------------- client -> server


@with_config(STRICT)
class UserMessage(TypedDict):
    """Client: a typed user turn, an image (a ``data:`` URL) or both; the assistant
    answers it."""

    type: Literal["user_message"]
    text: NotRequired[Annotated[str, Field(min_length=1)]]
    image: NotRequired[Annotated[str, Field(min_length=1)]]
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


# --------------------------------------------------------------------------- server -> client

ServerAction: TypeAlias = Literal[
    "connected",
    "resumed",
    "speech_started",
    "text_done",
    "interrupted",
    "shutting_down",
    "tool_call",
    "tool_done",
    "timeout_triggered",
]


class ServerControl(TypedDict):
    """Server: a session event; ``connected`` carries the greeting and ``resume`` (the
    token to reconnect with, ``?resume=``; ``shutting_down`` carries it too), ``resumed``
    says the conversation was taken up again (``interrupted``: the reply to the last turn
    was lost with the connection), ``text_done`` carries an id; ``interrupted`` answers an
    ``interrupt``, after the cut parts' ``text_done``."""

    type: Literal["control"]
    action: ServerAction
    greeting: NotRequired[str]
    resume: NotRequired[str]
    interrupted: NotRequired[bool]
    id: NotRequired[str]
    name: NotRequired[str]


class Transcription(TypedDict):
    """Server: what the user said, once the input audio item is transcribed; before that,
    with ``partial``, the transcript so far (each replaces the last)."""

    type: Literal["transcription"]
    id: str
    text: str
    partial: NotRequired[Literal[True]]


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

# --------------------------------------------------------------------------- the translator


class RealtimeTranslator(Translator):
    """The shared core, speaking the simplified protocol."""

    name: ClassVar[str] = "realtime"
    path: ClassVar[str | None] = "/realtime"
    protocol: ClassVar[ClientProtocol[Outbox]] = ClientProtocol("realtime")
    server_messages: ClassVar[Any] = ServerMessage

    @protocol.handles(UserMessage)
    def on_user_message(self, message: UserMessage, now: float) -> Outbox:
        text, image = message.get("text", ""), message.get("image")
        if not text and image is None:
            raise ClientError("missing_field", "missing field 'text' (or 'image')")
        return self.user_text(text, now, image)

    @protocol.handles(AudioMessage)
    def on_audio(self, message: AudioMessage, now: float) -> Outbox:
        return self.client_audio_b64(message["audio"], now)

    @protocol.handles(ClientControl)
    def on_control(self, message: ClientControl, now: float) -> Outbox:
        return self.interrupt(now) if message["action"] == "interrupt" else self.commit()

    def render_connected(self) -> list[ClientFrame]:
        connected = ServerControl(
            type="control", action="connected", greeting=self.profile.greeting
        )
        if self.resume_token is not None:
            connected["resume"] = self.resume_token
        return [connected]

    def render_resumed(self, interrupted: bool) -> list[ClientFrame]:
        return [ServerControl(type="control", action="resumed", interrupted=interrupted)]

    def render_speech_started(self) -> list[ClientFrame]:
        return [ServerControl(type="control", action="speech_started")]

    def render_timeout_triggered(self) -> list[ClientFrame]:
        return [ServerControl(type="control", action="timeout_triggered")]

    def render_interrupted(self) -> list[ClientFrame]:
        return [ServerControl(type="control", action="interrupted")]

    def render_transcription(
        self, item_id: str, text: str, *, partial: bool = False
    ) -> list[ClientFrame]:
        message = Transcription(type="transcription", id=item_id, text=text)
        if partial:
            message["partial"] = True
        return [message]

    def render_text_delta(self, text_id: str, delta: str) -> list[ClientFrame]:
        return [TextDelta(type="text_delta", id=text_id, delta=delta)]

    def render_text_done(self, text_id: str) -> list[ClientFrame]:
        return [ServerControl(type="control", action="text_done", id=text_id)]

    def render_audio(self, audio: bytes) -> list[ClientFrame]:
        return [audio]

    def render_tool(self, name: str, *, done: bool) -> list[ClientFrame]:
        if not self.profile.show_tool_calls:
            return []
        action: Literal["tool_call", "tool_done"] = "tool_done" if done else "tool_call"
        return [ServerControl(type="control", action=action, name=name)]

    def render_shutting_down(self) -> list[ClientFrame]:
        shutting_down = ServerControl(type="control", action="shutting_down")
        if self.resume_token is not None:
            shutting_down["resume"] = self.resume_token
        return [shutting_down]

    def render_error(
        self, code: ErrorCode, message: str, retry_after: float | None = None
    ) -> list[ClientFrame]:
        return [error_frame(code, message, retry_after)]


def error_frame(code: ErrorCode, message: str, retry_after: float | None) -> ErrorMessage:
    """The ``error`` message (``/ws/conversation`` sends the same shape)."""
    error = ErrorMessage(type="error", code=code, message=message)
    if retry_after is not None:
        error["retry_after"] = retry_after
    return error
