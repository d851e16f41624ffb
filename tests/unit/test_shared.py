"""The in-process shared state and the resume state, without sockets (Redis's are in
tests/e2e/test_scale_out.py)."""

from __future__ import annotations

import asyncio

from rt_server.dialects.realtime import RealtimeTranslator
from rt_server.profile import Profile
from rt_server.resume import operator_fields, parse, snapshot
from rt_server.shared import Caps, LocalShared
from rt_server.translate import CallConfig


def test_the_caps_count_sessions_and_a_resumed_id_is_never_refused() -> None:
    async def run() -> list[object]:
        shared = LocalShared("one", Caps(total=2, per_token=1), 120.0)
        results: list[object] = [
            await shared.admit("a", "token-1"),
            await shared.admit("b", "token-1"),  # the token's one session is taken
            await shared.admit("b", "token-2"),
            await shared.admit("c", None),  # the total is reached
            await shared.admit("a", "token-1"),  # a resume of a live id overlaps
        ]
        await shared.release("a", "token-1")  # the first connection of "a" ends
        results.append(await shared.admit("c", None))  # "a" still counts
        await shared.release("a", "token-1")
        results.append(await shared.admit("c", None))
        return results

    assert asyncio.run(run()) == [None, "token", None, "total", None, "total", None]


def test_the_resume_state_carries_the_restored_items_and_the_operator_changes() -> None:
    translator = RealtimeTranslator(Profile(name="default", instructions="Be brief."))
    base = operator_fields(translator)
    translator.history.user_text("my name is Ada")
    translator.history.assistant_text("Hello Ada")
    translator.adopt(CallConfig({"instructions": "Speak like a pirate."}))
    state = parse(snapshot(translator, "conv1", None, base))
    assert state is not None
    assert (state.conversation, state.dialect, state.profile) == ("conv1", "realtime", "default")
    assert state.operator == {"instructions": "Speak like a pirate."}
    assert state.items == translator.restore()[1:]
    assert not state.interrupted

    resumed = RealtimeTranslator(Profile(name="default", instructions="Be brief."))
    state.adopt_into(resumed)
    assert resumed.restore() == translator.restore()  # the same conversation, rebuilt
    resumed.history.user_text("recap")
    again = parse(snapshot(resumed, "conv1", None, base))
    assert again is not None and again.interrupted  # the last turn awaits its reply
    assert len(again.items) == 3
