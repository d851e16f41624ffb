"""Every profile field reaches the Azure preview path in its beta form, or start-up names it
(pure: the profile's GA session, mapped to the beta shape, field by field)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from rt_server.backends.preview import beta_session, lost_fields
from rt_server.config import Settings
from rt_server.errors import ConfigError
from rt_server.profile import McpServer, Profile

PCM = {"type": "audio/pcm", "rate": 24000}

#: Profile fields that are not session fields (what the server itself does with them).
NOT_SESSION = {"name", "greeting", "welcome_instructions", "show_tool_calls", "gateway_locked"}

#: A non-default value of each session field, and where the beta session carries it.
MAPPED: dict[str, tuple[Any, str, Any]] = {
    "instructions": ("Be brief.", "instructions", "Be brief."),
    "voice": ("marin", "voice", "marin"),
    "output_modality": ("text", "modalities", ["text"]),
    "max_output_tokens": (200, "max_response_output_tokens", 200),
    "speed": (1.25, "speed", 1.25),
    "transcription_model": ("gpt-4o-transcribe", "input_audio_transcription.model", None),
    "transcription_language": ("de", "input_audio_transcription.language", "de"),
    "turn_detection": ("semantic_vad", "turn_detection.type", "semantic_vad"),
    "vad_threshold": (0.7, "turn_detection.threshold", 0.7),
    "vad_prefix_padding_ms": (120, "turn_detection.prefix_padding_ms", 120),
    "vad_silence_duration_ms": (800, "turn_detection.silence_duration_ms", 800),
    "noise_reduction": ("far_field", "input_audio_noise_reduction", {"type": "far_field"}),
    "transcription_prompt": ("Names: Contoso.", "input_audio_transcription.prompt", None),
    "create_response": (False, "turn_detection.create_response", None),
    "interrupt_response": (False, "turn_detection.interrupt_response", None),
    "tool_choice": ("required", "tool_choice", None),
    "tracing": ({"workflow_name": "desk"}, "tracing", None),
}
#: Session fields the beta protocol has no form for: start-up refuses them on that path.
LOST: dict[str, tuple[Any, str]] = {
    "truncation": ("disabled", "truncation"),
    "idle_timeout_ms": (6000, "audio.input.turn_detection.idle_timeout_ms"),
    "mcp_servers": ((McpServer("docs", "http://127.0.0.1:1/mcp"),), "tools[0]"),
}
#: Fields whose value needs another one to show (eagerness is semantic VAD's).
TOGETHER: dict[str, dict[str, Any]] = {"vad_eagerness": {"turn_detection": "semantic_vad"}}
MAPPED["vad_eagerness"] = ("high", "turn_detection.eagerness", "high")


def _at(beta: dict[str, Any], path: str) -> Any:
    node: Any = beta
    for key in path.split("."):
        node = node[key]
    return node


def _beta(**fields: Any) -> dict[str, Any]:
    return beta_session(Profile(**fields).session(PCM))


def test_every_profile_field_is_mapped_or_not_a_session_field() -> None:
    names = {field.name for field in dataclasses.fields(Profile)}
    assert names == NOT_SESSION | set(MAPPED) | set(LOST), "a new field needs a beta mapping"


@pytest.mark.parametrize("name", sorted(MAPPED))
def test_each_field_reaches_the_beta_session(name: str) -> None:
    value, path, expected = MAPPED[name]
    fields = {**TOGETHER.get(name, {}), name: value}
    beta = _beta(**fields)
    assert _at(beta, path) == (value if expected is None else expected)
    assert lost_fields(Profile(**fields).session(PCM)) == []


@pytest.mark.parametrize("name", sorted(LOST))
def test_each_field_beta_has_no_form_for_is_named(name: str) -> None:
    value, path = LOST[name]
    assert lost_fields(Profile(**{name: value}).session(PCM)) == [path]


def test_a_custom_voice_and_a_named_function_choice_are_named() -> None:
    profile = Profile(voice={"id": "voice_custom"}, tool_choice="clock")
    assert lost_fields(profile.session(PCM)) == [
        "audio.output.voice.id",
        "tool_choice.type",
        "tool_choice.name",
    ]


def test_the_defaults_map_to_the_beta_shape() -> None:
    beta = _beta()
    assert beta["input_audio_format"] == beta["output_audio_format"] == "pcm16"
    assert beta["modalities"] == ["audio", "text"]
    assert "speed" not in beta and "input_audio_noise_reduction" not in beta
    assert beta["turn_detection"]["create_response"] is True


def test_push_to_talk_is_no_turn_detection() -> None:
    assert _beta(turn_detection="none")["turn_detection"] is None


def test_what_beta_cannot_say_is_named() -> None:
    session = Profile().session(PCM)
    session["truncation"] = "disabled"
    session["audio"]["output"]["voice"] = {"id": "voice_custom"}
    session["audio"]["input"]["turn_detection"]["idle_timeout_ms"] = 6000
    session["tools"] = [{"type": "mcp", "server_label": "docs", "server_url": "http://x"}]
    session["tool_choice"] = {"type": "function", "name": "clock"}
    assert sorted(lost_fields(session)) == [
        "audio.input.turn_detection.idle_timeout_ms",
        "audio.output.voice.id",
        "tool_choice.name",
        "tool_choice.type",
        "tools[0]",
        "truncation",
    ]
    beta = beta_session(session, only_beta=True)
    assert "idle_timeout_ms" not in beta["turn_detection"] and beta["tools"] == []
    assert "voice" not in beta and "tool_choice" not in beta and "truncation" not in beta
    # A gateway client's session: what beta has no form for is the service's to refuse.
    passed = beta_session(session)
    assert passed["tools"] == session["tools"] and passed["voice"] == {"id": "voice_custom"}
    assert passed["tool_choice"] == {"type": "function", "name": "clock"}
    assert passed["turn_detection"]["idle_timeout_ms"] == 6000


def _env(tmp_path: Path, profile_file: str) -> dict[str, str]:
    path = tmp_path / "profiles.toml"
    path.write_text(profile_file)
    return {
        "BACKEND": "azure",
        "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com",
        "AZURE_OPENAI_DEPLOYMENT": "dep",
        "AZURE_OPENAI_API_KEY": "k",
        "AZURE_OPENAI_API_VERSION": "2025-04-01-preview",
        "PROFILE_FILE": str(path),
    }


def test_start_up_on_the_preview_path_names_what_it_cannot_take(tmp_path: Path) -> None:
    env = _env(tmp_path, '[profiles.desk]\ntruncation = "disabled"\n')
    with pytest.raises(ConfigError, match=r"profile 'desk' sets truncation, .*preview path"):
        Settings.from_env(env)
    ga = {k: v for k, v in env.items() if k != "AZURE_OPENAI_API_VERSION"}
    assert Settings.from_env(ga).profiles["desk"].truncation == "disabled"


def test_start_up_on_the_preview_path_takes_every_beta_field(tmp_path: Path) -> None:
    env = _env(tmp_path, "[default]\nspeed = 1.2\nnoise_reduction = 'near_field'\n")
    assert Settings.from_env(env).profile.speed == 1.2
