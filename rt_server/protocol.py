"""How a dialect declares the messages its clients send: :class:`ClientProtocol`.

A client message type is declared in one place: its TypedDict and its handler, registered
with :meth:`ClientProtocol.handles` in the dialect's translator class. The parser,
validation and the JSON Schema (``GET /protocol.json``) pick it up; unknown types get a
clear error. Every client message is validated once, by :meth:`ClientProtocol.parse`;
nothing downstream checks again. The dialects themselves live in :mod:`rt_server.dialects`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Annotated, Any, Generic, TypeAlias, TypeVar, Union, get_args, get_type_hints

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from rt_server.errors import ClientError

#: Client messages: strict types, unknown keys ignored (forward compatibility).
STRICT = ConfigDict(strict=True, extra="ignore")

M = TypeVar("M", bound=Mapping[str, Any])
R = TypeVar("R")  # what a handler returns (the translator's Outbox)
H = TypeVar("H", bound=Callable[..., Any])
Handler: TypeAlias = Callable[[Any, Any, float], R]


class ClientProtocol(Generic[R]):
    """The client messages of one dialect: a TypedDict and a handler per ``tag`` value."""

    def __init__(self, name: str, tag: str = "type") -> None:
        self.name = name
        self.tag = tag  # the key that tells messages apart (Twilio's is "event")
        self._types: dict[str, type[Any]] = {}
        self._handlers: dict[str, Handler[R]] = {}

    def handles(self, message: type[Mapping[str, Any]]) -> Callable[[H], H]:
        """Declare ``message`` (its ``tag`` Literal is the key), handled by the decorated
        method, called as ``handler(translator, message, now)``."""

        def register(handler: H) -> H:
            [kind] = get_args(get_type_hints(message)[self.tag])
            self._types[kind] = message
            self._handlers[kind] = handler
            self.__dict__.pop("_adapter", None)  # rebuild the parser with the new type
            return handler

        return register

    def parse(self, raw: str | bytes) -> tuple[Mapping[str, Any], Handler[R]]:
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
