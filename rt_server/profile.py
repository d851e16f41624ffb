"""The assistant profile: what the server tells the model, out of the client's reach."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

TurnDetection: TypeAlias = Literal["server_vad", "semantic_vad", "none"]


@dataclass(frozen=True, slots=True)
class Profile:
    """Instructions, voice and turn taking for every session; clients cannot override it."""

    instructions: str = "You are a helpful, concise voice assistant."
    voice: str = "alloy"
    greeting: str = "You are now connected to rt_server."
    output_modality: Literal["audio", "text"] = "audio"
    transcription_model: str = "whisper-1"
    transcription_language: str | None = None
    turn_detection: TurnDetection = "server_vad"
    vad_threshold: float = 0.5
    vad_prefix_padding_ms: int = 300
    vad_silence_duration_ms: int = 500
    max_output_tokens: int | None = None

    def session(self) -> dict[str, Any]:
        """The GA ``session`` object of a ``session.update`` event."""
        transcription: dict[str, Any] = {"model": self.transcription_model}
        if self.transcription_language:
            transcription["language"] = self.transcription_language
        session: dict[str, Any] = {
            "type": "realtime",
            "instructions": self.instructions,
            "output_modalities": [self.output_modality],
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "transcription": transcription,
                    "turn_detection": self._turn_detection(),
                },
                "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": self.voice},
            },
        }
        if self.max_output_tokens is not None:
            session["max_output_tokens"] = self.max_output_tokens
        return session

    def _turn_detection(self) -> dict[str, Any] | None:
        if self.turn_detection == "none":
            return None
        if self.turn_detection == "semantic_vad":
            return {"type": "semantic_vad", "create_response": True, "interrupt_response": True}
        return {
            "type": "server_vad",
            "threshold": self.vad_threshold,
            "prefix_padding_ms": self.vad_prefix_padding_ms,
            "silence_duration_ms": self.vad_silence_duration_ms,
            "create_response": True,
            "interrupt_response": True,
        }
