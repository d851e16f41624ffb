"""Settings: chosen from the environment, validated at start-up, naming what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from rt_server.config import Settings
from rt_server.errors import ConfigError


def test_no_credentials_means_the_embedded_emulator() -> None:
    assert Settings.from_env({}).backend == "emulator"


def test_backend_is_inferred_from_credentials() -> None:
    assert Settings.from_env({"OPENAI_API_KEY": "sk-x"}).backend == "openai"
    azure = Settings.from_env(
        {"AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com", "AZURE_OPENAI_DEPLOYMENT": "d"}
    )
    assert azure.backend == "azure"
    assert azure.azure_api_key is None  # DefaultAzureCredential


def test_explicit_backend_wins_and_is_case_insensitive() -> None:
    settings = Settings.from_env({"BACKEND": "Emulator", "OPENAI_API_KEY": "sk-x"})
    assert settings.backend == "emulator"


def test_defaults() -> None:
    settings = Settings.from_env({"OPENAI_API_KEY": "sk-x"})
    assert settings.openai_model == "gpt-realtime"
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.azure_api_version is None
    assert settings.backend_socket == "picows"
    assert Settings.from_env({"BACKEND_SOCKET": "SDK"}).backend_socket == "sdk"
    assert settings.sched_slice_us == 100
    assert Settings.from_env({"SCHED_SLICE_US": "0"}).sched_slice_us == 0  # the kernel's own


def test_secrets_stay_out_of_repr() -> None:
    settings = Settings.from_env({"OPENAI_API_KEY": "sk-secret-123"})
    assert "sk-secret-123" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"BACKEND": "gemini"}, "BACKEND"),
        ({"BACKEND": "openai"}, "OPENAI_API_KEY"),
        ({"BACKEND": "azure"}, "AZURE_OPENAI_ENDPOINT"),
        ({"BACKEND": "azure", "AZURE_OPENAI_ENDPOINT": "https://a.b"}, "AZURE_OPENAI_DEPLOYMENT"),
        ({"AZURE_OPENAI_ENDPOINT": "not a url"}, "AZURE_OPENAI_ENDPOINT"),
        ({"OPENAI_BASE_URL": "ftp://x"}, "OPENAI_BASE_URL"),
        ({"PORT": "http"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"VOICE": "robot"}, "VOICE"),
        ({"LOG_JSON": "maybe"}, "LOG_JSON"),
        ({"BACKEND_SOCKET": "httpx"}, "BACKEND_SOCKET"),
        ({"AUDIO_COALESCE_MS": "-1"}, "AUDIO_COALESCE_MS"),
        ({"SCHED_SLICE_US": "50"}, "SCHED_SLICE_US must be 0 or between 100 and 100000"),
        ({"SCHED_SLICE_US": "200000"}, "SCHED_SLICE_US"),
        ({"MAX_SESSIONS": "0"}, "MAX_SESSIONS"),
        ({"IDLE_TIMEOUT_SECONDS": "nan"}, "IDLE_TIMEOUT_SECONDS"),
        ({"GATEWAY_LOCKED": "instructions,colour"}, "GATEWAY_LOCKED names unknown .*colour"),
    ],
)
def test_bad_variables_stop_start_up_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)


def test_http_endpoint_is_kept_for_ws_connections() -> None:
    settings = Settings.from_env(
        {"AZURE_OPENAI_ENDPOINT": "http://127.0.0.1:9000/", "AZURE_OPENAI_DEPLOYMENT": "d"}
    )
    assert settings.azure_endpoint == "http://127.0.0.1:9000"


def test_gateway_locked_from_the_environment_and_a_profile_file(tmp_path: Path) -> None:
    settings = Settings.from_env({"GATEWAY_LOCKED": "instructions, voice,audio.input"})
    assert settings.profile.gateway_locked == ("instructions", "voice", "audio.input")
    good = tmp_path / "good.toml"
    good.write_text('[profiles.desk]\ngateway_locked = ["tools"]\n', encoding="utf-8")
    desk = Settings.from_env({"PROFILE_FILE": str(good)}).profiles["desk"]
    assert desk.gateway_locked == ("tools",)
    bad = tmp_path / "bad.toml"
    bad.write_text('[profiles.desk]\ngateway_locked = ["colour"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="colour"):
        Settings.from_env({"PROFILE_FILE": str(bad)})
