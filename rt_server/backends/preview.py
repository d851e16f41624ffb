"""The Azure preview dialect: beta event names and flat session fields, mapped to GA.

The preview path (``/openai/realtime?api-version=...``) speaks the beta protocol. These
pure functions keep the difference in one place: received events are renamed to their
GA names, with their session, response, item and content part in the GA shape (so a GA
client of the gateway can use a preview deployment); sent events are rewritten into the
beta shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeAlias

# The events' own alias (not imported: config.py checks profiles with this module, and
# backends.base imports config through the translator).
BackendEvent: TypeAlias = dict[str, Any]

_GA_NAMES = {
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "conversation.item.created": "conversation.item.added",
}

_BETA_FORMATS = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}
_GA_FORMATS = {beta: ga for ga, beta in _BETA_FORMATS.items()}
_GA_PARTS = {"text": "output_text", "audio": "output_audio"}
_BETA_PARTS = {ga: beta for beta, ga in _GA_PARTS.items()}
_KEPT = ("id", "object", "model", "expires_at", "instructions", "tools", "tool_choice", "tracing")
# Flat beta session fields and where they live in GA's audio.input / audio.output.
_AUDIO_IN = {
    "input_audio_transcription": "transcription",
    "input_audio_noise_reduction": "noise_reduction",
    "turn_detection": "turn_detection",
}
_AUDIO_OUT = {"voice": "voice", "speed": "speed"}


def from_beta(event: BackendEvent) -> BackendEvent:
    """A beta server event under its GA name and in the GA shape (in place; unknown names
    pass)."""
    ga_name = _GA_NAMES.get(event.get("type", ""))
    if ga_name is not None:
        event["type"] = ga_name
    if "item" in event:
        event["item"] = _ga_item(event["item"])
    elif "part" in event:
        event["part"] = _ga_part(event["part"])  # content parts: the assistant's
    elif "session" in event:
        event["session"] = ga_session(event["session"])
    elif "response" in event:
        event["response"] = _ga_response(event["response"])
    return event


def ga_session(beta: dict[str, Any]) -> dict[str, Any]:
    """The nested GA ``session`` equivalent to a flat beta one."""
    session: dict[str, Any] = {"type": "realtime"}
    session.update((key, beta[key]) for key in _KEPT if key in beta)
    if "modalities" in beta:
        session["output_modalities"] = ["audio"] if "audio" in beta["modalities"] else ["text"]
    if "max_response_output_tokens" in beta:
        session["max_output_tokens"] = beta["max_response_output_tokens"]
    audio_in = {ga: beta[key] for key, ga in _AUDIO_IN.items() if key in beta}
    audio_out = {ga: beta[key] for key, ga in _AUDIO_OUT.items() if key in beta}
    if "input_audio_format" in beta:
        audio_in["format"] = _ga_format(beta["input_audio_format"])
    if "output_audio_format" in beta:
        audio_out["format"] = _ga_format(beta["output_audio_format"])
    if audio_in or audio_out:
        session["audio"] = {"input": audio_in, "output": audio_out}
    return session


def _ga_format(beta: Any) -> dict[str, Any]:
    kind = _GA_FORMATS.get(str(beta), str(beta))
    return {"type": kind, "rate": 24000} if kind == "audio/pcm" else {"type": kind}


def _ga_response(beta: dict[str, Any]) -> dict[str, Any]:
    response = {key: value for key, value in beta.items() if key not in ("modalities", "voice")}
    response.pop("output_audio_format", None)
    if "modalities" in beta:
        response["output_modalities"] = ["audio"] if "audio" in beta["modalities"] else ["text"]
    output: dict[str, Any] = {}
    if "voice" in beta:
        output["voice"] = beta["voice"]
    if "output_audio_format" in beta:
        output["format"] = _ga_format(beta["output_audio_format"])
    if output:
        response["audio"] = {"output": output}
    if "output" in beta:
        response["output"] = [_ga_item(item) for item in beta["output"] or []]
    return response


def _ga_item(item: dict[str, Any]) -> dict[str, Any]:
    if item.get("role") != "assistant" or not item.get("content"):
        return item
    return {**item, "content": [_ga_part(part) for part in item["content"]]}


def _ga_part(part: dict[str, Any]) -> dict[str, Any]:
    kind = _GA_PARTS.get(part.get("type", ""))
    return part if kind is None else {**part, "type": kind}


def to_beta(event: BackendEvent, temperature: float | None = None) -> BackendEvent:
    """Rewrite a GA client event into the beta shape (``temperature``: the beta session's
    sampling temperature, which GA does not have)."""
    match event["type"]:
        case "session.update":
            session = beta_session(event["session"])
            if temperature is not None:
                session["temperature"] = temperature
            return {**event, "session": session}
        case "conversation.item.create":
            return {**event, "item": _beta_item(event["item"])}
        case "response.create" if "response" in event:
            return {**event, "response": _beta_response(event["response"])}
        case _:
            return event


def beta_session(session: dict[str, Any], *, only_beta: bool = False) -> dict[str, Any]:
    """The flat beta ``session`` equivalent to a nested GA one. What beta has no form for
    (MCP tools, the object ``tool_choice``, a custom voice, ``idle_timeout_ms``) is passed
    on for the service to judge, or with ``only_beta`` left out (:func:`lost_fields`)."""
    audio = session.get("audio", {})
    audio_in, audio_out = audio.get("input", {}), audio.get("output", {})
    beta: dict[str, Any] = {
        key: session[key] for key in ("instructions", "tracing", "tools") if key in session
    }
    if only_beta and "tools" in session:  # beta has function tools only
        beta["tools"] = [tool for tool in session["tools"] if tool.get("type") == "function"]
    if "tool_choice" in session and not (only_beta and not isinstance(session["tool_choice"], str)):
        beta["tool_choice"] = session["tool_choice"]
    if "output_modalities" in session:
        beta["modalities"] = _modalities(session["output_modalities"])
    if "max_output_tokens" in session:
        beta["max_response_output_tokens"] = session["max_output_tokens"]
    if "format" in audio_in:
        beta["input_audio_format"] = _BETA_FORMATS[audio_in["format"]["type"]]
    if "format" in audio_out:
        beta["output_audio_format"] = _BETA_FORMATS[audio_out["format"]["type"]]
    if "voice" in audio_out and not (only_beta and not isinstance(audio_out["voice"], str)):
        beta["voice"] = audio_out["voice"]
    for beta_key, ga_key in (*_AUDIO_IN.items(), *_AUDIO_OUT.items()):
        side = audio_in if beta_key in _AUDIO_IN else audio_out
        if ga_key in side and beta_key not in beta and beta_key != "voice":
            beta[beta_key] = side[ga_key]
    turn = audio_in.get("turn_detection")
    if only_beta and isinstance(turn, dict):  # beta's turn detection has no idle timeout
        beta["turn_detection"] = {k: v for k, v in turn.items() if k != "idle_timeout_ms"}
    return beta


def lost_fields(session: dict[str, Any]) -> list[str]:
    """The dotted paths of a GA session that the preview path cannot take: what does not
    come back when the session goes to the beta shape and back."""
    sent = dict(_leaves(session))
    back = dict(_leaves(ga_session(beta_session(session, only_beta=True))))
    return [path for path, value in sent.items() if back.get(path, _MISSING) != value]


_MISSING = object()


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            yield from _leaves(inner, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list) and value and path == "tools":
        for index, tool in enumerate(value):
            yield f"tools[{index}]", tool
    else:
        yield path, value


def _modalities(output: list[str]) -> list[str]:
    # Beta audio output always came with its transcript as text.
    return ["audio", "text"] if "audio" in output else ["text"]


def _beta_response(ga: dict[str, Any]) -> dict[str, Any]:
    """A GA ``response.create``'s ``response`` in the beta shape (voice and format flat)."""
    response = {key: value for key, value in ga.items() if key != "audio"}
    if "output_modalities" in response:
        response["modalities"] = _modalities(response.pop("output_modalities"))
    if "max_output_tokens" in response:
        response["max_response_output_tokens"] = response.pop("max_output_tokens")
    output = (ga.get("audio") or {}).get("output") or {}
    if "voice" in output:
        response["voice"] = output["voice"]
    if "format" in output:
        response["output_audio_format"] = _BETA_FORMATS[output["format"]["type"]]
    if "input" in response:
        response["input"] = [_beta_item(item) for item in response["input"]]
    return response


def _beta_item(item: dict[str, Any]) -> dict[str, Any]:
    if item.get("role") != "assistant":
        return item
    return {**item, "content": [_beta_part(part) for part in item.get("content", [])]}


def _beta_part(part: dict[str, Any]) -> dict[str, Any]:
    kind = _BETA_PARTS.get(part.get("type", ""))
    return part if kind is None else {**part, "type": kind}
