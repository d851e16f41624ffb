"""The Azure preview path end to end: every profile field the beta protocol has reaches the
emulator's preview mode in its beta form (real rt_server, real sockets, the real SDK)."""

from __future__ import annotations

from rt_server.emulator import RunningEmulator
from rt_server.profile import Profile
from tests.conftest import azure_settings
from tests.e2e.test_e2e import text_turn
from tests.support.harness import running_server

PROFILE = Profile(
    instructions="Be brief.",
    voice="marin",
    speed=1.25,
    noise_reduction="near_field",
    transcription_language="de",
    transcription_prompt="Names: Contoso.",
    vad_threshold=0.6,
    vad_silence_duration_ms=700,
    create_response=False,
    interrupt_response=False,
    tracing={"workflow_name": "desk"},
    max_output_tokens=300,
)


async def test_every_profile_field_reaches_the_preview_path(emulator: RunningEmulator) -> None:
    settings = azure_settings(
        emulator.http_url,
        azure_api_version="2025-04-01-preview",
        backend_socket="sdk",
        profile=PROFILE,
    )
    async with running_server(settings) as server:
        turn = await text_turn(server.ws_url, "preview parity", emulator)
    assert "preview parity" in turn.text
    [connection] = turn.connections
    session = connection["session"]
    assert connection["dialect"] == "beta"
    assert (session["instructions"], session["voice"], session["speed"]) == (
        "Be brief.",
        "marin",
        1.25,
    )
    assert session["input_audio_noise_reduction"] == {"type": "near_field"}
    assert session["input_audio_transcription"] == {
        "model": "whisper-1",
        "language": "de",
        "prompt": "Names: Contoso.",
    }
    turn_detection = session["turn_detection"]
    assert (turn_detection["threshold"], turn_detection["silence_duration_ms"]) == (0.6, 700)
    assert turn_detection["create_response"] is False
    assert turn_detection["interrupt_response"] is False
    assert session["tracing"] == {"workflow_name": "desk"}
    assert session["max_response_output_tokens"] == 300
