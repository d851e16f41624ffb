"""The session configuration in its GA shape: defaults, `session.update` merging and validation.

The configuration is kept as the JSON-shaped dict the client sees in `session.created` /
`session.updated`, so echoing it costs nothing. `Effective` is the typed view the rest of the core
reads, rebuilt only when the configuration changes. The beta dialect is converted to this shape at
the edge (`dialect.py`), so there is one validator.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, cast

from rt_server.emulator.audio import AudioFormat, VadParams
from rt_server.emulator.errors import (
    ClientEventError,
    invalid_type,
    invalid_value,
    missing,
    unknown_parameter,
)

VOICES = ["alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"]
FORMATS: list[str] = ["audio/pcm", "audio/pcmu", "audio/pcma"]
DEFAULT_INSTRUCTIONS = "You are a helpful, friendly voice assistant. Keep answers short."
#: Semantic VAD: the silence that ends a turn, by eagerness (an eager model answers sooner).
EAGERNESS_SILENCE_MS = {"high": 200, "medium": 500, "auto": 500, "low": 1200}


def default_session(session_id: str, model: str, expires_at: int) -> dict[str, Any]:
    """What `session.created` carries: PCM 24 kHz both ways, server VAD, no transcription."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": DEFAULT_INSTRUCTIONS,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": expires_at,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": default_turn_detection("server_vad"),
            },
            "output": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "voice": "alloy",
                "speed": 1.0,
            },
        },
        "include": None,
    }


def default_turn_detection(kind: str) -> dict[str, Any]:
    if kind == "semantic_vad":
        return {
            "type": "semantic_vad",
            "eagerness": "auto",
            "create_response": True,
            "interrupt_response": True,
        }
    return {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    }


@dataclass(frozen=True)
class Effective:
    """The typed view of a session configuration that the core acts on."""

    input_format: AudioFormat
    output_format: AudioFormat
    vad: VadParams | None
    create_response: bool
    interrupt_response: bool
    transcription: bool
    voice: str
    audio_out: bool
    instructions: str
    tool_names: frozenset[str]
    idle_timeout_ms: int | None = None
    tool_choice: str | dict[str, Any] = "auto"
    mcp_servers: tuple[dict[str, Any], ...] = ()

    @staticmethod
    def of(session: dict[str, Any]) -> Effective:
        audio_in = session["audio"]["input"]
        audio_out = session["audio"]["output"]
        turn = audio_in["turn_detection"]
        voice = audio_out["voice"]
        return Effective(
            input_format=cast(AudioFormat, audio_in["format"]["type"]),
            output_format=cast(AudioFormat, audio_out["format"]["type"]),
            vad=_vad_params(turn),
            create_response=turn is not None and turn.get("create_response", True) is not False,
            interrupt_response=turn is not None
            and turn.get("interrupt_response", True) is not False,
            transcription=audio_in["transcription"] is not None,
            voice=voice if isinstance(voice, str) else str(voice.get("id")),
            audio_out="audio" in session["output_modalities"],
            instructions=session.get("instructions") or "",
            tool_names=tool_names(session.get("tools") or []),
            idle_timeout_ms=(turn or {}).get("idle_timeout_ms"),
            tool_choice=session.get("tool_choice") or "auto",
            mcp_servers=tuple(
                t
                for t in session.get("tools") or []
                if isinstance(t, dict) and t.get("type") == "mcp"
            ),
        )


def tool_names(tools: list[Any]) -> frozenset[str]:
    return frozenset(
        t["name"] for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)
    )


def _vad_params(turn: dict[str, Any] | None) -> VadParams | None:
    if turn is None:
        return None
    if turn["type"] == "semantic_vad":  # server VAD whose eagerness sets the silence
        return VadParams(silence_duration_ms=EAGERNESS_SILENCE_MS[turn.get("eagerness", "auto")])
    defaults = VadParams()
    return VadParams(
        threshold=float(turn.get("threshold", defaults.threshold)),
        prefix_padding_ms=int(turn.get("prefix_padding_ms", defaults.prefix_padding_ms)),
        silence_duration_ms=int(turn.get("silence_duration_ms", defaults.silence_duration_ms)),
    )


def merged_session(current: dict[str, Any], update: object) -> dict[str, Any]:
    """The configuration after `session.update`; raise ClientEventError and change nothing when
    the update is invalid."""
    if not isinstance(update, dict):
        raise invalid_type("session", "an object", update)
    if "type" not in update:
        raise missing("session.type")
    if update["type"] != "realtime":
        raise invalid_value("session.type", update["type"], ["realtime"])
    merged = copy.deepcopy(current)
    _merge(merged, update, "session")
    validate_session(merged)
    return merged


# Fields a client may set; values are checked by validate_session. Read-only ones are ignored.
_SETTABLE = {
    "type", "model", "output_modalities", "instructions", "tools", "tool_choice",
    "max_output_tokens", "tracing", "truncation", "prompt", "audio", "include", "reasoning",
    "parallel_tool_calls",
}  # fmt: skip
_READ_ONLY = {"id", "object", "expires_at"}
_AUDIO_KEYS = {"input": {"format", "transcription", "noise_reduction", "turn_detection"}}
_AUDIO_KEYS["output"] = {"format", "voice", "speed"}


def _merge(target: dict[str, Any], update: dict[str, Any], param: str) -> None:
    for key, value in update.items():
        path = f"{param}.{key}"
        if param == "session" and key in _READ_ONLY:
            continue
        if not _is_known(param, key):
            raise unknown_parameter(path)
        old = target.get(key)
        if (
            key == "turn_detection"
            and isinstance(value, dict)
            and isinstance(old, dict)
            and value.get("type", old["type"]) != old["type"]
        ):  # another kind of turn detection starts from its own defaults
            old = target[key] = default_turn_detection(str(value.get("type")))
        if isinstance(value, dict) and isinstance(old, dict) and key not in ("format", "prompt"):
            _merge(old, value, path)
        elif key == "turn_detection" and isinstance(value, dict):
            target[key] = {**default_turn_detection(str(value.get("type"))), **value}
        else:
            target[key] = copy.deepcopy(value)


def _is_known(param: str, key: str) -> bool:
    if param == "session":
        return key in _SETTABLE
    if param == "session.audio":
        return key in _AUDIO_KEYS
    for side, keys in _AUDIO_KEYS.items():
        if param == f"session.audio.{side}":
            return key in keys
    return True  # inside free-form values (tools, turn_detection, ...): checked by value


def validate_session(s: dict[str, Any]) -> None:
    check_modalities(s.get("output_modalities"), "session.output_modalities")
    if not isinstance(s.get("instructions"), str):
        raise invalid_type("session.instructions", "a string", s.get("instructions"))
    if not isinstance(s.get("model"), str):
        raise invalid_type("session.model", "a string", s.get("model"))
    check_tools(s.get("tools"), "session.tools")
    check_tool_choice(s.get("tool_choice"), "session.tool_choice")
    _check_max_tokens(s.get("max_output_tokens"), "session.max_output_tokens")
    audio = s.get("audio")
    if not isinstance(audio, dict):
        raise invalid_type("session.audio", "an object", audio)
    for side in ("input", "output"):
        if not isinstance(audio.get(side), dict):
            raise invalid_type(f"session.audio.{side}", "an object", audio.get(side))
        check_format(audio[side].get("format"), f"session.audio.{side}.format")
    _check_input(audio["input"])
    _check_output(audio["output"])


def check_modalities(value: object, param: str) -> None:
    if not isinstance(value, list) or not value:
        raise invalid_type(param, "a non-empty array", value)
    for entry in value:
        if entry not in ("text", "audio"):
            raise invalid_value(param, entry, ["text", "audio"])


def check_tools(value: object, param: str) -> None:
    if not isinstance(value, list):
        raise invalid_type(param, "an array", value)
    for index, tool in enumerate(value):
        where = f"{param}[{index}]"
        if not isinstance(tool, dict):
            raise invalid_type(where, "an object", tool)
        if tool.get("type", "function") not in ("function", "mcp"):
            raise invalid_value(f"{where}.type", tool.get("type"), ["function", "mcp"])
        if tool.get("type", "function") == "function" and not isinstance(tool.get("name"), str):
            raise missing(f"{where}.name")
        if tool.get("type") == "mcp":
            _check_mcp(tool, where)


def _check_mcp(tool: dict[str, Any], where: str) -> None:
    for key in ("server_label", "server_url"):
        if not isinstance(tool.get(key), str):
            raise missing(f"{where}.{key}")
    allowed = tool.get("allowed_tools")
    if allowed is not None and not (
        isinstance(allowed, list) and all(isinstance(name, str) for name in allowed)
    ):
        raise invalid_type(f"{where}.allowed_tools", "an array of strings", allowed)
    headers = tool.get("headers")
    if headers is not None and not (
        isinstance(headers, dict) and all(isinstance(v, str) for v in headers.values())
    ):
        raise invalid_type(f"{where}.headers", "an object of strings", headers)
    if tool.get("require_approval", "always") not in ("always", "never"):
        raise invalid_value(
            f"{where}.require_approval", tool.get("require_approval"), ["always", "never"]
        )


def check_tool_choice(value: object, param: str) -> None:
    if value in ("auto", "none", "required"):
        return
    if isinstance(value, dict) and value.get("type") == "function":
        if not isinstance(value.get("name"), str):
            raise missing(f"{param}.name")
        return
    if isinstance(value, dict) and value.get("type") == "mcp":
        if not isinstance(value.get("server_label"), str):
            raise missing(f"{param}.server_label")
        return
    raise invalid_value(param, value, ["auto", "none", "required", "a function or mcp choice"])


def _check_max_tokens(value: object, param: str) -> None:
    if value == "inf":
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 4096:
        raise ClientEventError(
            "invalid_value", f"Invalid '{param}': expected 'inf' or an integer in [1, 4096].", param
        )


def check_format(value: object, param: str) -> None:
    if not isinstance(value, dict):
        raise invalid_type(param, "an object", value)
    kind = value.get("type")
    if kind not in FORMATS:
        raise invalid_value(f"{param}.type", kind, FORMATS)
    if kind == "audio/pcm" and value.get("rate", 24000) != 24000:
        raise invalid_value(f"{param}.rate", value.get("rate"), ["24000"])


def _check_input(audio_in: dict[str, Any]) -> None:
    param = "session.audio.input"
    transcription = audio_in.get("transcription")
    if transcription is not None and not isinstance(transcription, dict):
        raise invalid_type(f"{param}.transcription", "an object or null", transcription)
    for key in ("model", "language", "prompt"):
        value = (transcription or {}).get(key)
        if value is not None and not isinstance(value, str):
            raise invalid_type(f"{param}.transcription.{key}", "a string", value)
    noise = audio_in.get("noise_reduction")
    if noise is not None and (not isinstance(noise, dict) or noise.get("type") not in (
        "near_field", "far_field", None,
    )):  # fmt: skip
        raise invalid_value(f"{param}.noise_reduction.type", noise, ["near_field", "far_field"])
    check_turn_detection(audio_in.get("turn_detection"), f"{param}.turn_detection")


def check_turn_detection(turn: object, param: str) -> None:
    if turn is None:
        return
    if not isinstance(turn, dict):
        raise invalid_type(param, "an object or null", turn)
    if turn.get("type") not in ("server_vad", "semantic_vad"):
        raise invalid_value(f"{param}.type", turn.get("type"), ["server_vad", "semantic_vad"])
    threshold = turn.get("threshold", 0.5)
    if not _is_number(threshold):
        raise invalid_type(f"{param}.threshold", "a decimal", threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ClientEventError(
            "decimal_above_max_value" if threshold > 1 else "decimal_below_min_value",
            f"Invalid '{param}.threshold': decimal must be between 0.0 and 1.0, got {threshold}.",
            f"{param}.threshold",
        )
    for key in ("prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms"):
        value = turn.get(key, 0)
        if value is None and key == "idle_timeout_ms":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise invalid_type(f"{param}.{key}", "a non-negative integer", value)
    for key in ("create_response", "interrupt_response"):
        if not isinstance(turn.get(key, True), bool):
            raise invalid_type(f"{param}.{key}", "a boolean", turn.get(key))
    eagerness = turn.get("eagerness", "auto")
    if eagerness not in ("low", "medium", "high", "auto"):
        raise invalid_value(f"{param}.eagerness", eagerness, ["low", "medium", "high", "auto"])


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_output(audio_out: dict[str, Any]) -> None:
    check_voice(audio_out.get("voice"), "session.audio.output.voice")
    speed = audio_out.get("speed", 1.0)
    if not _is_number(speed) or not 0.25 <= speed <= 1.5:
        raise ClientEventError(
            "invalid_value",
            "Invalid 'session.audio.output.speed': expected a number between 0.25 and 1.5.",
            "session.audio.output.speed",
        )


def check_voice(voice: object, param: str) -> None:
    if isinstance(voice, dict) and isinstance(voice.get("id"), str):
        return
    if not isinstance(voice, str):
        raise invalid_type(param, "a string", voice)
    if voice not in VOICES:
        raise invalid_value(param, voice, VOICES)
