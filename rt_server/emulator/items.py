"""Conversation items: validating what a client creates, and snapshots for events.

Items are kept as the GA wire dicts. Events carry snapshots (fresh dicts), never the live item,
because events are serialised later than they are built.
"""

from __future__ import annotations

from typing import Any

from rt_server.emulator.errors import ClientEventError, invalid_type, invalid_value, missing

Item = dict[str, Any]

_CONTENT_TYPES = {
    "user": ("input_text", "input_audio", "input_image"),
    "assistant": ("output_text", "output_audio"),
    "system": ("input_text",),
}
_ITEM_TYPES = ["message", "function_call", "function_call_output", "mcp_call"]


def snapshot(item: Item) -> Item:
    copy = dict(item)
    if "content" in copy:
        copy["content"] = [dict(part) for part in copy["content"]]
    return copy


def normalize_item(item: object, param: str, new_id: str) -> Item:
    """A client's item, checked and completed with id, object and status."""
    if not isinstance(item, dict):
        raise invalid_type(param, "an object", item)
    kind = item.get("type", "message")
    if kind not in _ITEM_TYPES:
        raise invalid_value(f"{param}.type", kind, _ITEM_TYPES)
    item_id = item.get("id") or new_id
    if not isinstance(item_id, str):
        raise invalid_type(f"{param}.id", "a string", item_id)
    base: Item = {"id": item_id, "type": kind, "object": "realtime.item", "status": "completed"}
    if kind == "message":
        return {**base, **_message(item, param)}
    if kind == "function_call":
        fields = {
            "name": _string(item, "name", param),
            "arguments": _string(item, "arguments", param),
        }
        call_id = item.get("call_id") or f"call_{item_id}"
        return {**base, "call_id": call_id, **fields}
    if kind == "mcp_call":  # a call made earlier (a restored conversation)
        fields = {key: _string(item, key, param) for key in ("server_label", "name", "arguments")}
        for key in ("output", "error"):
            if item.get(key) is not None and not isinstance(item.get(key), str):
                raise invalid_type(f"{param}.{key}", "a string", item.get(key))
        return {**base, **fields, "output": item.get("output"), "error": item.get("error")}
    return {
        **base,
        "call_id": _string(item, "call_id", param),
        "output": _string(item, "output", param),
    }


def _string(item: dict[str, Any], key: str, param: str) -> str:
    if key not in item:
        raise missing(f"{param}.{key}")
    value = item[key]
    if not isinstance(value, str):
        raise invalid_type(f"{param}.{key}", "a string", value)
    return value


def _message(item: dict[str, Any], param: str) -> Item:
    role = item.get("role")
    if role is None:
        raise missing(f"{param}.role")
    if role not in _CONTENT_TYPES:
        raise invalid_value(f"{param}.role", role, list(_CONTENT_TYPES))
    content = item.get("content")
    if content is None:
        raise missing(f"{param}.content")
    if not isinstance(content, list):
        raise invalid_type(f"{param}.content", "an array", content)
    return {
        "role": role,
        "content": [_part(p, role, f"{param}.content[{i}]") for i, p in enumerate(content)],
    }


def _part(part: object, role: str, param: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise invalid_type(param, "an object", part)
    kind = part.get("type")
    if role == "assistant" and kind == "text":
        kind = "output_text"  # older clients still send the beta name
    allowed = _CONTENT_TYPES[role]
    if kind not in allowed:
        raise invalid_value(f"{param}.type", kind, list(allowed))
    if kind in ("input_text", "output_text"):
        return {"type": kind, "text": _string(part, "text", param)}
    if kind == "output_audio":
        transcript = part.get("transcript")
        if transcript is not None and not isinstance(transcript, str):
            raise invalid_type(f"{param}.transcript", "a string", transcript)
        return {"type": kind, "transcript": transcript}
    if kind == "input_audio":
        for key in ("audio", "transcript"):
            if part.get(key) is not None and not isinstance(part.get(key), str):
                raise invalid_type(f"{param}.{key}", "a string", part.get(key))
        return {"type": kind, "transcript": part.get("transcript")}
    url = part.get("image_url")
    if not isinstance(url, str) or not url.startswith(("data:image/", "https://", "http://")):
        raise invalid_value(f"{param}.image_url", url, ["a data:image/... URL", "an https URL"])
    return {"type": kind, "image_url": url, "detail": part.get("detail", "auto")}


def check_conversation_param(value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise invalid_type("response.conversation", "a string", value)


def require_item_id(event: dict[str, Any]) -> str:
    if "item_id" not in event:
        raise missing("item_id")
    item_id = event["item_id"]
    if not isinstance(item_id, str):
        raise invalid_type("item_id", "a string", item_id)
    return item_id


def not_found(item_id: str) -> ClientEventError:
    return ClientEventError(
        "item_not_found", f"Item with item_id not found: '{item_id}'.", "item_id"
    )
