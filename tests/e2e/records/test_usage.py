"""Usage end to end: the records and ``/metrics`` split the tokens by text, audio and cached,
per session and per profile, and ``/metrics`` has the latest rate limits (real rt_server,
real sockets, the emulator's usage and ``rate_limits.updated``)."""

from __future__ import annotations

import re
from dataclasses import replace

import httpx

from rt_server.emulator import RunningEmulator
from rt_server.profile import Profile
from tests.conftest import openai_settings
from tests.e2e.records.conftest import records_server, with_records
from tests.e2e.records.test_records import conversations, detail, say


def sample(metrics: str, metric: str, **labels: str) -> float:
    """One sample of ``/metrics``' text, by its labels (in any order)."""
    for line in metrics.splitlines():
        match = re.fullmatch(rf"{metric}\{{(.*)\}} (\S+)", line)
        if match and all(f'{k}="{v}"' in match.group(1).split(",") for k, v in labels.items()):
            return float(match.group(2))
    raise AssertionError(f"no {metric} {labels} in /metrics")


async def test_tokens_are_split_per_session_and_profile(
    database_url: str, emulator: RunningEmulator
) -> None:
    settings = with_records(openai_settings(emulator.http_url), database_url)
    settings = replace(settings, profiles={"desk": Profile(name="desk")})
    async with records_server(settings) as live:
        await say(live.ws_url + "?profile=desk", "hello there", "and once more")
        await say(live.ws_url, "the default profile")
        await live.settle()
        talks = {t["profile"]: await detail(live, t["id"]) for t in await conversations(live)}
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"{live.http_url}/metrics")).text
    usage = talks["desk"]["usage"]
    responses = usage["responses"]
    assert len(responses) == 2
    for field, (side, key) in {
        "input_text_tokens": ("input_token_details", "text_tokens"),
        "input_audio_tokens": ("input_token_details", "audio_tokens"),
        "input_cached_tokens": ("input_token_details", "cached_tokens"),
        "output_text_tokens": ("output_token_details", "text_tokens"),
        "output_audio_tokens": ("output_token_details", "audio_tokens"),
    }.items():
        assert usage[field] == sum(r[side][key] for r in responses), field
    assert usage["input_text_tokens"] + usage["input_audio_tokens"] == usage["input_tokens"]
    assert usage["output_text_tokens"] + usage["output_audio_tokens"] == usage["output_tokens"]
    assert usage["output_audio_tokens"] > 0
    assert usage["input_cached_tokens"] > 0  # the second reply read the first's prompt again
    for profile, talk in talks.items():
        for direction, kind in [("input", "text"), ("input", "cached"), ("output", "audio")]:
            counted = sample(
                metrics, "rt_tokens_total", direction=direction, kind=kind, profile=profile
            )
            assert counted == talk["usage"][f"{direction}_{kind}_tokens"], (profile, kind)
    every = [r for t in talks.values() for r in t["usage"]["responses"]]
    remaining = sample(metrics, "rt_rate_limit_remaining", name="tokens")
    assert remaining in {40000 - r["total_tokens"] for r in every}
    assert sample(metrics, "rt_rate_limit_limit", name="tokens") == 40000
