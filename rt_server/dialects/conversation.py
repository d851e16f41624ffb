"""The ``/ws/conversation`` dialect, as used by the research-paper voice assistant design.

Client: ``{"type":"audio","audio":<base64 PCM16 24 kHz>}``, ``{"type":"text","text":...}``
(binary PCM16 frames work too), and ``{"type":"control","action":"interrupt"}`` as on
``/realtime``. Server: ``session_ready`` (``message``), ``audio_delta`` (base64),
``text_delta`` (``text``), ``transcription``, ``speech_started``, ``response_done``
(``status`` and ``message``, as the original sends it), ``interrupted``, ``error``. Only
the client-facing side differs from ``/realtime``; the session, backend, barge-in, tools
and limits are shared.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, ClassVar, Literal, NotRequired, TypeAlias

from pydantic import Field, with_config
from typing_extensions import TypedDict

from rt_server.dialects.realtime import ErrorMessage, error_frame
from rt_server.errors import ErrorCode
from rt_server.protocol import STRICT, ClientProtocol
from rt_server.translate import ClientFrame, Outbox, Translator


@with_config(STRICT)
class TextInput(TypedDict):
    """Client: a typed user turn."""

    type: Literal["text"]
    text: Annotated[str, Field(min_length=1)]


@with_config(STRICT)
class InterruptInput(TypedDict):
    """Client: stop the reply now (as on ``/realtime``); answered by ``response_done``
    (``cancelled``, when one was running), then ``interrupted``."""

    type: Literal["control"]
    action: Literal["interrupt"]


@with_config(STRICT)
class AudioInput(TypedDict):
    """Client: base64 PCM16 mono 24 kHz audio."""

    type: Literal["audio"]
    audio: str


class SessionReady(TypedDict):
    """Server: the assistant is ready (``message``: for people, e.g. "Connected to the
    Realtime API")."""

    type: Literal["session_ready"]
    message: str


class AudioDelta(TypedDict):
    """Server: base64 PCM16 24 kHz reply audio."""

    type: Literal["audio_delta"]
    audio: str


class ConversationTextDelta(TypedDict):
    """Server: a piece of the assistant's text (or of its spoken transcript)."""

    type: Literal["text_delta"]
    text: str


class ConversationTranscription(TypedDict):
    """Server: what the user said; with ``partial``, the transcript so far."""

    type: Literal["transcription"]
    text: str
    partial: NotRequired[Literal[True]]


class SpeechStarted(TypedDict):
    """Server: the user started speaking; stop playback now."""

    type: Literal["speech_started"]


class ResponseDone(TypedDict):
    """Server: the assistant finished (or was interrupted: ``status``); ``message`` for
    people, e.g. "AI response completed"."""

    type: Literal["response_done"]
    status: NotRequired[str]
    message: str


class Interrupted(TypedDict):
    """Server: the client's ``interrupt`` took effect (after the cut reply's ``response_done``)."""

    type: Literal["control"]
    action: Literal["interrupted"]


ConversationServerMessage: TypeAlias = (
    SessionReady
    | AudioDelta
    | ConversationTextDelta
    | ConversationTranscription
    | SpeechStarted
    | ResponseDone
    | Interrupted
    | ErrorMessage
)


class ConversationTranslator(Translator):
    """The shared translation core, rendered in the conversation dialect."""

    name: ClassVar[str] = "conversation"
    path: ClassVar[str | None] = "/ws/conversation"
    protocol: ClassVar[ClientProtocol[Outbox]] = ClientProtocol("conversation")
    server_messages: ClassVar[Any] = ConversationServerMessage

    @protocol.handles(TextInput)
    def on_text(self, message: TextInput, now: float) -> Outbox:
        return self.user_text(message["text"], now)

    @protocol.handles(AudioInput)
    def on_audio(self, message: AudioInput, now: float) -> Outbox:
        return self.client_audio_b64(message["audio"], now)

    @protocol.handles(InterruptInput)
    def on_interrupt(self, message: InterruptInput, now: float) -> Outbox:
        return self.interrupt(now)

    def render_connected(self) -> list[ClientFrame]:
        return [SessionReady(type="session_ready", message="Connected to the Realtime API")]

    def render_speech_started(self) -> list[ClientFrame]:
        return [SpeechStarted(type="speech_started")]

    def render_interrupted(self) -> list[ClientFrame]:
        return [Interrupted(type="control", action="interrupted")]

    def render_transcription(
        self, item_id: str, text: str, *, partial: bool = False
    ) -> list[ClientFrame]:
        message = ConversationTranscription(type="transcription", text=text)
        if partial:
            message["partial"] = True
        return [message]

    def render_text_delta(self, text_id: str, delta: str) -> list[ClientFrame]:
        return [ConversationTextDelta(type="text_delta", text=delta)]

    def render_audio(self, audio: bytes) -> list[ClientFrame]:
        return [AudioDelta(type="audio_delta", audio=base64.b64encode(audio).decode())]

    def render_response_done(self, status: str) -> list[ClientFrame]:
        message = f"AI response {status or 'ended'}"
        return [ResponseDone(type="response_done", status=status, message=message)]

    def render_error(
        self, code: ErrorCode, message: str, retry_after: float | None = None
    ) -> list[ClientFrame]:
        return [error_frame(code, message, retry_after)]  # the same shape as on /realtime
