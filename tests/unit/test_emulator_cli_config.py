"""Start-up configuration: script files, fault parsing and the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from rt_server.emulator import Faults, Rule, ToolCall, faults_from_dict, load_rules
from rt_server.emulator.__main__ import config_from_args, parse_args


def test_script_file_rules(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(
        '[{"match": "weather", "tool_call": {"name": "get_weather", "arguments": {"city": "Oslo"}}},'
        ' {"match": "^hi", "reply": "Hello."},'
        ' {"match": "who are you", "instructions_echo": true}]'
    )
    assert load_rules(script) == (
        Rule(match="weather", tool_call=ToolCall("get_weather", {"city": "Oslo"})),
        Rule(match="^hi", reply="Hello."),
        Rule(match="who are you", instructions_echo=True),
    )


@pytest.mark.parametrize(
    "bad",
    ['{"match": "x"}', '[{"reply": "x"}]', '[{"match": "(", "reply": "x"}]', '[{"match": "x"}]'],
)
def test_bad_scripts_fail_at_start_up(tmp_path: Path, bad: str) -> None:
    script = tmp_path / "bad.json"
    script.write_text(bad)
    with pytest.raises(ValueError):
        load_rules(script)


def test_faults_from_dict_checks_names_and_types() -> None:
    assert faults_from_dict({"latency_ms": 5, "retry_after": 3}) == Faults(
        latency_ms=5.0, retry_after=3
    )
    bad: object
    for bad in ({"nope": 1}, {"stall_responses": 1}, {"handshake_status": "500"}, []):
        with pytest.raises(ValueError):
            faults_from_dict(bad)


def test_command_line(tmp_path: Path) -> None:
    script = tmp_path / "s.json"
    script.write_text('[{"match": ".", "reply": "Fixed."}]')
    args = parse_args(
        ["--port", "0", "--api-key", "k", "--script", str(script), "--pace", "realtime",
         "--echo-audio", "--handshake-status", "429", "--retry-after", "2", "--stall-responses"]
    )  # fmt: skip
    config = config_from_args(args)
    assert (config.api_key, config.pace, config.echo_audio) == ("k", "realtime", True)
    assert config.rules == (Rule(match=".", reply="Fixed."),)
    assert config.faults == Faults(handshake_status=429, retry_after=2, stall_responses=True)
