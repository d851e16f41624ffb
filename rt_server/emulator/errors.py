"""The one exception of the emulator core, and the `error` event it becomes.

    ClientEventError   a client event the real service would refuse; the session goes on

Raised anywhere in the pure core, caught once in `Conversation.handle`, sent to the client as an
`error` event shaped like the real service's (`type: invalid_request_error`, `code`, `message`,
`param`, `event_id` of the offending client event).
"""

from __future__ import annotations

from typing import Any

Event = dict[str, Any]


class ClientEventError(Exception):
    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


def error_event(
    code: str,
    message: str,
    *,
    param: str | None = None,
    event_id: str | None = None,
    error_type: str = "invalid_request_error",
) -> Event:
    return {
        "type": "error",
        "error": {
            "type": error_type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": event_id,
        },
    }


_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a decimal",
    bool: "a boolean",
    dict: "an object",
    list: "an array",
    type(None): "null",
}


def type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def invalid_type(param: str, expected: str, value: object) -> ClientEventError:
    return ClientEventError(
        "invalid_type",
        f"Invalid type for '{param}': expected {expected}, but got {type_name(value)} instead.",
        param,
    )


def invalid_value(param: str, value: object, allowed: list[str] | None = None) -> ClientEventError:
    message = f"Invalid value: '{value}'."
    if allowed:
        message += " Supported values are: " + ", ".join(f"'{a}'" for a in allowed) + "."
    return ClientEventError("invalid_value", message, param)


def missing(param: str) -> ClientEventError:
    return ClientEventError(
        "missing_required_parameter", f"Missing required parameter: '{param}'.", param
    )


def unknown_parameter(param: str) -> ClientEventError:
    return ClientEventError("unknown_parameter", f"Unknown parameter: '{param}'.", param)
