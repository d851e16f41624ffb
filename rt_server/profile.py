"""The assistant profile: what the server tells the model, out of the client's reach.

A profile comes from the environment (the default profile) and optionally a profile file
(TOML or JSON) that declares named profiles; see :mod:`rt_server.profiles`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from typing_extensions import TypedDict

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


def without_secrets(session: dict[str, Any]) -> dict[str, Any]:
    """``session`` as a client may see it: MCP servers' ``headers`` (credentials the
    server read from its environment) left out."""
    tools = session.get("tools")
    if not isinstance(tools, list) or not any(
        isinstance(tool, dict) and "headers" in tool for tool in tools
    ):
        return session
    shown = [
        {k: v for k, v in tool.items() if k != "headers"} if isinstance(tool, dict) else tool
        for tool in tools
    ]
    return {**session, "tools": shown}


TurnDetection: TypeAlias = Literal["server_vad", "semantic_vad", "none"]
Eagerness: TypeAlias = Literal["low", "medium", "high", "auto"]
NoiseReduction: TypeAlias = Literal["near_field", "far_field", "none"]
Truncation: TypeAlias = Literal["auto", "disabled"]


class CustomVoice(TypedDict):
    """A custom voice of the organisation (``voice = {id = "voice_..."}``)."""

    id: str


class Tracing(TypedDict, total=False):
    """Traces of the session in the service's dashboard, grouped and named."""

    workflow_name: str
    group_id: str
    metadata: dict[str, str]


@dataclass(frozen=True, slots=True)
class McpServer:
    """A remote MCP server whose tools the model may call (the service calls them).

    ``headers`` maps a header name to the *environment variable* that holds its value
    (credentials never live in the profile file); the values, read once at start-up,
    are in ``header_values``.
    """

    server_label: str
    server_url: str
    allowed_tools: tuple[str, ...] | None = None
    require_approval: Literal["never", "always"] = "never"
    headers: dict[str, str] = field(default_factory=dict)
    header_values: dict[str, str] = field(default_factory=dict, repr=False)

    def tool(self) -> dict[str, Any]:
        """The GA ``{"type": "mcp", ...}`` tool of this server."""
        tool: dict[str, Any] = {
            "type": "mcp",
            "server_label": self.server_label,
            "server_url": self.server_url,
            "require_approval": self.require_approval,
        }
        if self.allowed_tools is not None:
            tool["allowed_tools"] = list(self.allowed_tools)
        if self.header_values:
            tool["headers"] = dict(self.header_values)
        return tool


@dataclass(frozen=True, slots=True)
class Profile:
    """Instructions, voice, greeting and turn taking; clients cannot override it."""

    name: str = "default"
    instructions: str = "You are a helpful, concise voice assistant."
    voice: str | CustomVoice = "alloy"
    greeting: str = "You are now connected to rt_server."
    output_modality: Literal["audio", "text"] = "audio"
    max_output_tokens: int | None = None
    speed: float | None = None
    transcription_model: str = "whisper-1"
    transcription_language: str | None = None
    transcription_prompt: str | None = None
    turn_detection: TurnDetection = "server_vad"
    vad_threshold: float = 0.5
    vad_prefix_padding_ms: int = 300
    vad_silence_duration_ms: int = 500
    vad_eagerness: Eagerness = "auto"
    noise_reduction: NoiseReduction = "none"
    #: Server VAD only: after this much silence the service prompts the user itself.
    idle_timeout_ms: int | None = None
    create_response: bool = True
    interrupt_response: bool = True
    #: ``auto``, ``none``, ``required``, or the name of the one function tool to call.
    tool_choice: str = "auto"
    truncation: Truncation | None = None
    tracing: Literal["auto"] | Tracing | None = None
    mcp_servers: tuple[McpServer, ...] = ()
    welcome_instructions: str | None = None
    show_tool_calls: bool = False
    #: Session fields a gateway client may not change (``GATEWAY_LOCKED``): top-level
    #: names or dotted paths (``audio.output.voice``).
    gateway_locked: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (wrong := unknown_locks(self.gateway_locked)) is not None:
            raise ValueError(f"gateway_locked: {wrong}")
        if self.idle_timeout_ms is not None and self.turn_detection != "server_vad":
            raise ValueError("idle_timeout_ms needs turn_detection = 'server_vad'")
        if self.idle_timeout_ms is not None and self.idle_timeout_ms < 1:
            raise ValueError("idle_timeout_ms must be a positive number of milliseconds")
        labels = [server.server_label for server in self.mcp_servers]
        if len(set(labels)) != len(labels):
            raise ValueError(f"mcp_servers: server labels must differ, got {labels}")

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
        if self.truncation is not None:
            session["truncation"] = self.truncation
        if self.tracing is not None:
            session["tracing"] = self.tracing
        if self.mcp_servers:
            session["tools"] = [server.tool() for server in self.mcp_servers]
        if self.tool_choice != "auto":
            session["tool_choice"] = self.tool_choice_value()
        return session

    def tool_choice_value(self) -> str | dict[str, str]:
        """``tool_choice`` as the GA session takes it (a function name as an object)."""
        if self.tool_choice in ("auto", "none", "required"):
            return self.tool_choice
        return {"type": "function", "name": self.tool_choice}

    def _transcription(self) -> dict[str, Any]:
        transcription: dict[str, Any] = {"model": self.transcription_model}
        if self.transcription_language:
            transcription["language"] = self.transcription_language
        if self.transcription_prompt:
            transcription["prompt"] = self.transcription_prompt
        return transcription

    def _turn_detection(self) -> dict[str, Any] | None:
        if self.turn_detection == "none":
            return None
        common = {
            "create_response": self.create_response,
            "interrupt_response": self.interrupt_response,
        }
        if self.turn_detection == "semantic_vad":
            return {"type": "semantic_vad", "eagerness": self.vad_eagerness, **common}
        turn = {
            "type": "server_vad",
            "threshold": self.vad_threshold,
            "prefix_padding_ms": self.vad_prefix_padding_ms,
            "silence_duration_ms": self.vad_silence_duration_ms,
            **common,
        }
        if self.idle_timeout_ms is not None:
            turn["idle_timeout_ms"] = self.idle_timeout_ms
        return turn
