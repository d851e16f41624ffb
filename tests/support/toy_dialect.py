"""A toy client dialect, written as README's "Extending" says: one module, nothing else.

Its clients send ``{"kind":"ask","question":...}``; they are sent the answer as
``{"kind":"answer","text":...}`` pieces and ``{"kind":"done"}``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, with_config
from typing_extensions import TypedDict

from rt_server.protocol import STRICT, ClientProtocol
from rt_server.translate import ClientFrame, Outbox, Translator


@with_config(STRICT)
class Ask(TypedDict):
    """Client: a question for the assistant."""

    kind: Literal["ask"]
    question: Annotated[str, Field(min_length=1)]


class Answer(TypedDict):
    """Server: a piece of the answer."""

    kind: Literal["answer"]
    text: str


class Done(TypedDict):
    """Server: the answer is complete."""

    kind: Literal["done"]


class ToyTranslator(Translator):
    """Questions in, answers out; everything else is the shared core's."""

    name: ClassVar[str] = "toy"
    path: ClassVar[str | None] = "/toy"
    protocol: ClassVar[ClientProtocol[Outbox]] = ClientProtocol("toy", tag="kind")
    server_messages: ClassVar[Any] = Answer | Done

    @protocol.handles(Ask)
    def on_ask(self, message: Ask, now: float) -> Outbox:
        return self.user_text(message["question"], now)

    def render_text_delta(self, text_id: str, delta: str) -> list[ClientFrame]:
        return [Answer(kind="answer", text=delta)]

    def render_text_done(self, text_id: str) -> list[ClientFrame]:
        return [Done(kind="done")]
