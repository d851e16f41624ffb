"""The Azure preview dialect: beta event names and flat session fields, mapped to GA.

The preview path (``/openai/realtime?api-version=...``) speaks the beta protocol. These
pure functions keep the difference in one place: received events are renamed to their
GA names; sent events are rewritten into the beta shape.
"""

from __future__ import annotations

from typing import Any

from rt_server.backends.base import BackendEvent

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


def from_beta(event: BackendEvent) -> BackendEvent:
    """Rename a beta server event to its GA name (in place; unknown names pass)."""
    ga_name = _GA_NAMES.get(event.get("type", ""))
    if ga_name is not None:
        event["type"] = ga_name
    return event


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
            response = dict(event["response"])
            if "output_modalities" in response:
                response["modalities"] = _modalities(response.pop("output_modalities"))
            return {**event, "response": response}
        case _:
            return event


def beta_session(session: dict[str, Any]) -> dict[str, Any]:
    """The flat beta ``session`` equivalent to a nested GA one."""
    audio = session.get("audio", {})
    audio_in, audio_out = audio.get("input", {}), audio.get("output", {})
    beta: dict[str, Any] = {
        key: session[key] for key in ("instructions", "tools", "tool_choice") if key in session
    }
    if "output_modalities" in session:
        beta["modalities"] = _modalities(session["output_modalities"])
    if "max_output_tokens" in session:
        beta["max_response_output_tokens"] = session["max_output_tokens"]
    if "format" in audio_in:
        beta["input_audio_format"] = _BETA_FORMATS[audio_in["format"]["type"]]
    if "format" in audio_out:
        beta["output_audio_format"] = _BETA_FORMATS[audio_out["format"]["type"]]
    if "voice" in audio_out:
        beta["voice"] = audio_out["voice"]
    if "transcription" in audio_in:
        beta["input_audio_transcription"] = audio_in["transcription"]
    if "turn_detection" in audio_in:
        beta["turn_detection"] = audio_in["turn_detection"]
    return beta


def _modalities(output: list[str]) -> list[str]:
    # Beta audio output always came with its transcript as text.
    return ["audio", "text"] if "audio" in output else ["text"]


def _beta_item(item: dict[str, Any]) -> dict[str, Any]:
    if item.get("role") != "assistant":
        return item
    content = [
        {**part, "type": "text"} if part.get("type") == "output_text" else part
        for part in item.get("content", [])
    ]
    return {**item, "content": content}
