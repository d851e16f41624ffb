"""The client message parser: every malformed message gets a specific code."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rt_server.dialects.realtime import RealtimeTranslator
from rt_server.errors import ClientError

SCHEMA = RealtimeTranslator.schema()


def parse_client_message(raw: str | bytes) -> Mapping[str, Any]:
    """Validate one ``/realtime`` client text frame, as the translator does."""
    return RealtimeTranslator.protocol.parse(raw)[0]


def test_user_message_parses() -> None:
    assert parse_client_message('{"type":"user_message","text":"hi"}') == {
        "type": "user_message",
        "text": "hi",
    }


def test_user_message_keeps_optional_id_and_ignores_unknown_keys() -> None:
    message = parse_client_message(b'{"type":"user_message","text":"hi","id":"7","x":1}')
    assert message == {"type": "user_message", "text": "hi", "id": "7"}


def test_control_actions_parse() -> None:
    assert parse_client_message('{"type":"control","action":"commit"}')["type"] == "control"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "invalid_json"),
        ("", "invalid_json"),
        ("[1, 2]", "not_an_object"),
        ('"text"', "not_an_object"),
        ("{}", "missing_type"),
        ('{"type": null}', "missing_type"),
        ('{"type": 5}', "unknown_type"),
        ('{"type": "nope"}', "unknown_type"),
        ('{"type": "user_message", "text": 5}', "invalid_field"),
        ('{"type": "user_message", "text": ""}', "invalid_field"),
        ('{"type": "control", "action": "explode"}', "invalid_field"),
        ("[" * 100_000, "nesting_too_deep"),
        ('{"a":' * 100_000, "nesting_too_deep"),
    ],
)
def test_malformed_messages_get_specific_codes(raw: str, code: str) -> None:
    with pytest.raises(ClientError) as caught:
        parse_client_message(raw)
    assert caught.value.code == code
    assert caught.value.message


@given(st.one_of(st.text(), st.binary()))
def test_no_input_escapes_as_anything_but_client_error(raw: str | bytes) -> None:
    with contextlib.suppress(ClientError):
        parse_client_message(raw)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
        lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    )
)
def test_arbitrary_json_values_are_parsed_or_refused_cleanly(value: object) -> None:
    import orjson

    try:
        parse_client_message(orjson.dumps({"type": "user_message", "text": value}))
    except ClientError as exc:
        assert exc.code == "invalid_field"


def test_schemas_name_every_message() -> None:
    client = str(SCHEMA["client"])
    for name in ("user_message", "audio", "control"):
        assert name in client
    server = str(SCHEMA["server"])
    for name in ("text_delta", "transcription", "error", "connected"):
        assert name in server
