"""Start-up configuration of the emulator: what it replies, how fast, and which faults it injects.

Everything here is frozen and built once (from CLI flags, a script file or test code). Faults can be
replaced at run time through the admin API, but each value is still an immutable `Faults`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

Pace = Literal["fast", "realtime"]


@dataclass(frozen=True)
class ToolCall:
    """A function call the emulated model makes: `arguments` is sent as a JSON string."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rule:
    """One scripted reply: the first rule whose `match` (a case-insensitive regex) finds the
    user's last message decides the response."""

    match: str
    reply: str | None = None
    tool_call: ToolCall | None = None
    instructions_echo: bool = False

    def __post_init__(self) -> None:
        chosen = (self.reply is not None) + (self.tool_call is not None) + self.instructions_echo
        if chosen != 1:
            raise ValueError(
                f"rule {self.match!r}: give exactly one of reply, tool_call, instructions_echo"
            )
        re.compile(self.match)  # fail at start-up, not at the first message

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(self.match, re.IGNORECASE)


@dataclass(frozen=True)
class Faults:
    """Failures to inject. They apply to connections opened after they are set."""

    handshake_status: int | None = None
    retry_after: int | None = None
    close_after_events: int | None = None
    close_code: int = 1011
    close_mid_response: bool = False
    latency_ms: float = 0.0
    max_session_seconds: float | None = None
    stall_responses: bool = False
    fail_transcription: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything the emulator needs, read once at start-up."""

    api_key: str | None = None
    rules: tuple[Rule, ...] = ()
    pace: Pace = "fast"
    faults: Faults = Faults()
    echo_audio: bool = False
    words_per_second: float = 3.0
    audio_chunk_ms: int = 100
    #: Audio per delta, cycled, as the service's vary (e.g. ``(20, 60, 10, 120)``);
    #: empty: every delta is ``audio_chunk_ms``.
    audio_chunks_ms: tuple[int, ...] = ()


def faults_from_dict(data: object) -> Faults:
    """Build `Faults` from a JSON object (the admin API's body); raise ValueError when malformed."""
    if not isinstance(data, dict):
        raise ValueError("faults must be a JSON object")
    known = {f.name: f for f in dataclasses.fields(Faults)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"unknown fault fields: {', '.join(unknown)}")
    checked: dict[str, Any] = {}
    for name, value in data.items():
        checked[name] = _check_fault_value(name, value)
    return Faults(**checked)


_FAULT_KINDS: dict[str, tuple[type, ...]] = {
    "handshake_status": (int, type(None)),
    "retry_after": (int, type(None)),
    "close_after_events": (int, type(None)),
    "close_code": (int,),
    "close_mid_response": (bool,),
    "latency_ms": (int, float),
    "max_session_seconds": (int, float, type(None)),
    "stall_responses": (bool,),
    "fail_transcription": (bool,),
}


def _check_fault_value(name: str, value: object) -> object:
    kinds = _FAULT_KINDS[name]
    is_bool = isinstance(value, bool)
    if not isinstance(value, kinds) or (is_bool and bool not in kinds):
        raise ValueError(f"fault {name}: unexpected value {value!r}")
    if name in ("latency_ms", "max_session_seconds") and value is not None:
        return float(value)  # type: ignore[arg-type]
    return value


def rules_from_json(data: object) -> tuple[Rule, ...]:
    """Parse a script: a JSON list of rule objects (see README.md). Raise ValueError when bad."""
    if not isinstance(data, list):
        raise ValueError("a script is a JSON list of rules")
    return tuple(_rule_from_json(entry, index) for index, entry in enumerate(data))


def _rule_from_json(entry: object, index: int) -> Rule:
    if not isinstance(entry, dict) or not isinstance(entry.get("match"), str):
        raise ValueError(f"rule {index}: needs a string 'match'")
    unknown = set(entry) - {"match", "reply", "tool_call", "instructions_echo"}
    if unknown:
        raise ValueError(f"rule {index}: unknown keys {sorted(unknown)}")
    tool_call = None
    if "tool_call" in entry:
        call = entry["tool_call"]
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise ValueError(f"rule {index}: tool_call needs a string 'name'")
        arguments = call.get("arguments", {})
        if not isinstance(arguments, dict):
            raise ValueError(f"rule {index}: tool_call arguments must be an object")
        tool_call = ToolCall(name=call["name"], arguments=arguments)
    reply = entry.get("reply")
    if reply is not None and not isinstance(reply, str):
        raise ValueError(f"rule {index}: reply must be a string")
    try:
        return Rule(
            match=entry["match"],
            reply=reply,
            tool_call=tool_call,
            instructions_echo=entry.get("instructions_echo") is True,
        )
    except (ValueError, re.error) as exc:
        raise ValueError(f"rule {index}: {exc}") from exc


def load_rules(path: Path) -> tuple[Rule, ...]:
    """Read a `--script FILE`."""
    return rules_from_json(orjson.loads(path.read_bytes()))
