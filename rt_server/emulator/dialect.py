"""The two dialects of the Realtime protocol, kept in this one module.

The core speaks GA (`/v1/realtime`, `/openai/v1/realtime`). The Azure preview path
(`/openai/realtime?api-version=...&deployment=...`) and OpenAI's `OpenAI-Beta: realtime=v1`
header speak the beta dialect: other event names (`response.text.delta`, `response.audio.delta`,
`conversation.item.created`), flat session fields (`modalities`, `input_audio_format: "pcm16"`,
`turn_detection`, `voice`) and assistant content types `text` / `audio` instead of
`output_text` / `output_audio`. `to_beta` rewrites server events on their way out and
`from_beta` rewrites client events on their way in; nothing else knows about dialects.
"""

from __future__ import annotations

from typing import Any, Literal

from rt_server.emulator.errors import ClientEventError, Event, invalid_type, invalid_value
from rt_server.emulator.session_config import check_voice

Dialect = Literal["ga", "beta"]

GA_TO_BETA_EVENTS = {
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "conversation.item.added": "conversation.item.created",
}
GA_ONLY_EVENTS = frozenset({"conversation.item.done"})

BETA_FORMATS = {"pcm16": "audio/pcm", "g711_ulaw": "audio/pcmu", "g711_alaw": "audio/pcma"}
GA_FORMATS = {v: k for k, v in BETA_FORMATS.items()}

_CONTENT_TO_BETA = {"output_text": "text", "output_audio": "audio"}
_CONTENT_FROM_BETA = {"text": "output_text", "audio": "output_audio"}

# Where each flat beta session field lives in the GA session.
_BETA_SESSION_PATHS: dict[str, tuple[str, ...]] = {
    "modalities": ("output_modalities",),
    "instructions": ("instructions",),
    "model": ("model",),
    "voice": ("audio", "output", "voice"),
    "speed": ("audio", "output", "speed"),
    "input_audio_format": ("audio", "input", "format"),
    "output_audio_format": ("audio", "output", "format"),
    "input_audio_transcription": ("audio", "input", "transcription"),
    "input_audio_noise_reduction": ("audio", "input", "noise_reduction"),
    "turn_detection": ("audio", "input", "turn_detection"),
    "tools": ("tools",),
    "tool_choice": ("tool_choice",),
    "max_response_output_tokens": ("max_output_tokens",),
    "tracing": ("tracing",),
}
_BETA_IGNORED = {"temperature", "id", "object", "expires_at", "client_secret"}

# GA error params rewritten to the field the beta client actually sent.
_BETA_PARAMS = [
    ("session." + ".".join(ga), "session." + beta) for beta, ga in _BETA_SESSION_PATHS.items()
]


# --- server -> client --------------------------------------------------------------------------


def to_beta(event: Event) -> Event | None:
    """A GA server event in the beta dialect, or None when beta has no such event."""
    kind = event["type"]
    renamed = GA_TO_BETA_EVENTS.get(kind)
    if renamed is not None:
        event["type"] = renamed
        if "item" in event:
            event["item"] = item_to_beta(event["item"])
        return event
    if kind in GA_ONLY_EVENTS:
        return None
    if "session" in event:
        event["session"] = session_to_beta(event["session"])
    elif "response" in event:
        event["response"] = _response_to_beta(event["response"])
    elif "item" in event:
        event["item"] = item_to_beta(event["item"])
    elif kind == "error":
        event["error"]["param"] = _beta_param(event["error"]["param"])
    return event


def session_to_beta(s: dict[str, Any]) -> dict[str, Any]:
    audio_in, audio_out = s["audio"]["input"], s["audio"]["output"]
    return {
        "id": s["id"],
        "object": "realtime.session",
        "model": s["model"],
        "expires_at": s.get("expires_at"),
        "modalities": ["text", "audio"] if "audio" in s["output_modalities"] else ["text"],
        "instructions": s["instructions"],
        "voice": audio_out["voice"],
        "input_audio_format": GA_FORMATS[audio_in["format"]["type"]],
        "output_audio_format": GA_FORMATS[audio_out["format"]["type"]],
        "input_audio_transcription": audio_in["transcription"],
        "input_audio_noise_reduction": audio_in["noise_reduction"],
        "turn_detection": audio_in["turn_detection"],
        "tools": s["tools"],
        "tool_choice": s["tool_choice"],
        "temperature": 0.8,
        "max_response_output_tokens": s["max_output_tokens"],
        "speed": audio_out.get("speed", 1.0),
        "tracing": s.get("tracing"),
    }


def item_to_beta(item: dict[str, Any]) -> dict[str, Any]:
    content = item.get("content")
    if not content or item.get("role") != "assistant":
        return item
    parts = [{**p, "type": _CONTENT_TO_BETA.get(p.get("type"), p.get("type"))} for p in content]
    return {**item, "content": parts}


def _response_to_beta(r: dict[str, Any]) -> dict[str, Any]:
    out = r.get("audio", {}).get("output", {})
    beta = {k: v for k, v in r.items() if k not in ("audio", "output_modalities", "output")}
    beta["output"] = [item_to_beta(i) for i in r.get("output", [])]
    beta["modalities"] = (
        ["text", "audio"] if "audio" in r.get("output_modalities", []) else ["text"]
    )
    beta["voice"] = out.get("voice")
    beta["output_audio_format"] = GA_FORMATS.get(out.get("format", {}).get("type"), "pcm16")
    beta["max_output_tokens"] = r.get("max_output_tokens", "inf")
    return beta


def _beta_param(param: str | None) -> str | None:
    for ga, beta in _BETA_PARAMS:
        if param is not None and (param == ga or param.startswith(ga + ".")):
            return beta + param[len(ga) :]
    return param


# --- client -> server --------------------------------------------------------------------------


def from_beta(event: dict[str, Any]) -> dict[str, Any]:
    """A beta client event in the GA shape the core understands (raise ClientEventError)."""
    kind = event.get("type")
    if kind == "session.update" and "session" in event:
        return {**event, "session": session_update_from_beta(event["session"])}
    if kind == "conversation.item.create" and isinstance(event.get("item"), dict):
        return {**event, "item": item_from_beta(event["item"])}
    if kind == "response.create" and isinstance(event.get("response"), dict):
        return {**event, "response": _response_params_from_beta(event["response"])}
    return event


def session_update_from_beta(update: object) -> dict[str, Any]:
    if not isinstance(update, dict):
        raise invalid_type("session", "an object", update)
    ga: dict[str, Any] = {"type": "realtime"}
    for key, value in update.items():
        if key in _BETA_IGNORED:
            continue
        path = _BETA_SESSION_PATHS.get(key)
        if path is None:
            raise ClientEventError(
                "unknown_parameter", f"Unknown parameter: 'session.{key}'.", f"session.{key}"
            )
        node = ga
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _beta_value(key, value)
    return ga


def _beta_value(key: str, value: object) -> object:
    if key in ("input_audio_format", "output_audio_format"):
        if value not in BETA_FORMATS:
            raise invalid_value(f"session.{key}", value, list(BETA_FORMATS))
        fmt = BETA_FORMATS[str(value)]
        return {"type": fmt, "rate": 24000} if fmt == "audio/pcm" else {"type": fmt}
    if key == "modalities":
        if not isinstance(value, list) or any(m not in ("text", "audio") for m in value):
            raise invalid_value("session.modalities", value, ["text", "audio"])
        return ["audio"] if "audio" in value else ["text"]
    if key == "voice":
        check_voice(value, "session.voice")
    return value


def item_from_beta(item: dict[str, Any]) -> dict[str, Any]:
    content = item.get("content")
    if item.get("role") != "assistant" or not isinstance(content, list):
        return item
    parts = [
        (
            {**p, "type": _CONTENT_FROM_BETA.get(str(p.get("type")), p.get("type"))}
            if isinstance(p, dict)
            else p
        )
        for p in content
    ]
    return {**item, "content": parts}


def _response_params_from_beta(params: dict[str, Any]) -> dict[str, Any]:
    ga = {k: v for k, v in params.items() if k not in ("modalities", "voice", "temperature")}
    ga.pop("output_audio_format", None)
    ga.pop("max_response_output_tokens", None)
    if "modalities" in params:
        ga["output_modalities"] = _beta_value("modalities", params["modalities"])
    output: dict[str, Any] = {}
    if "voice" in params:
        output["voice"] = params["voice"]
    if "output_audio_format" in params:
        output["format"] = _beta_value("output_audio_format", params["output_audio_format"])
    if output:
        ga["audio"] = {"output": output}
    if "max_response_output_tokens" in params:
        ga["max_output_tokens"] = params["max_response_output_tokens"]
    if isinstance(params.get("input"), list):
        ga["input"] = [item_from_beta(i) if isinstance(i, dict) else i for i in params["input"]]
    return ga
