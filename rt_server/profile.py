"""The assistant profile: what the server tells the model, out of the client's reach.

A profile comes from the environment (the default profile) and optionally a profile file
(TOML or JSON) that declares named profiles; see :mod:`rt_server.profiles`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

#: The GA session fields ``GATEWAY_LOCKED`` may name (or a dotted path below one).
LOCKABLE = frozenset(
    {
        "type",
        "model",
        "instructions",
        "output_modalities",
        "audio",
        "tools",
        "tool_choice",
        "max_output_tokens",
        "tracing",
        "truncation",
        "prompt",
        "include",
    }
)
_SHORT_LOCKS = {"voice": "audio.output.voice", "turn_detection": "audio.input.turn_detection"}


def lock_path(name: str) -> str:
    """A ``GATEWAY_LOCKED`` entry as a dotted path (``voice`` is ``audio.output.voice``)."""
    return _SHORT_LOCKS.get(name, name)


def unknown_locks(names: tuple[str, ...]) -> str | None:
    """What is wrong with these ``GATEWAY_LOCKED`` names, or None."""
    unknown = sorted({name for name in names if lock_path(name).split(".")[0] not in LOCKABLE})
    if not unknown:
        return None
    known = ", ".join(sorted(LOCKABLE))
    return f"unknown session fields {unknown}; known: {known} (or a dotted path below one)"


TurnDetection: TypeAlias = Literal["server_vad", "semantic_vad", "none"]
Eagerness: TypeAlias = Literal["low", "medium", "high", "auto"]
NoiseReduction: TypeAlias = Literal["near_field", "far_field", "none"]


@dataclass(frozen=True, slots=True)
class Profile:
    """Instructions, voice, greeting and turn taking; clients cannot override it."""

    name: str = "default"
    instructions: str = "You are a helpful, concise voice assistant."
    voice: str = "alloy"
    greeting: str = "You are now connected to rt_server."
    output_modality: Literal["audio", "text"] = "audio"
    max_output_tokens: int | None = None
    speed: float | None = None
    transcription_model: str = "whisper-1"
    transcription_language: str | None = None
    turn_detection: TurnDetection = "server_vad"
    vad_threshold: float = 0.5
    vad_prefix_padding_ms: int = 300
    vad_silence_duration_ms: int = 500
    vad_eagerness: Eagerness = "auto"
    noise_reduction: NoiseReduction = "none"
    welcome_instructions: str | None = None
    show_tool_calls: bool = False
    #: Session fields a gateway client may not change (``GATEWAY_LOCKED``): top-level
    #: names or dotted paths (``audio.output.voice``).
    gateway_locked: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (wrong := unknown_locks(self.gateway_locked)) is not None:
            raise ValueError(f"gateway_locked: {wrong}")

    def session(self, audio_format: dict[str, Any]) -> dict[str, Any]:
        """The GA ``session`` object of a ``session.update``, for audio in ``audio_format``."""
        audio_in: dict[str, Any] = {
            "format": audio_format,
            "transcription": self._transcription(),
            "turn_detection": self._turn_detection(),
        }
        if self.noise_reduction != "none":
            audio_in["noise_reduction"] = {"type": self.noise_reduction}
        audio_out: dict[str, Any] = {"format": audio_format, "voice": self.voice}
        if self.speed is not None:
            audio_out["speed"] = self.speed
        session: dict[str, Any] = {
            "type": "realtime",
            "instructions": self.instructions,
            "output_modalities": [self.output_modality],
            "audio": {"input": audio_in, "output": audio_out},
        }
        if self.max_output_tokens is not None:
            session["max_output_tokens"] = self.max_output_tokens
        return session

    def _transcription(self) -> dict[str, Any]:
        transcription: dict[str, Any] = {"model": self.transcription_model}
        if self.transcription_language:
            transcription["language"] = self.transcription_language
        return transcription

    def _turn_detection(self) -> dict[str, Any] | None:
        if self.turn_detection == "none":
            return None
        common = {"create_response": True, "interrupt_response": True}
        if self.turn_detection == "semantic_vad":
            return {"type": "semantic_vad", "eagerness": self.vad_eagerness, **common}
        return {
            "type": "server_vad",
            "threshold": self.vad_threshold,
            "prefix_padding_ms": self.vad_prefix_padding_ms,
            "silence_duration_ms": self.vad_silence_duration_ms,
            **common,
        }
