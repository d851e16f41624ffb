"""The Redis shared state against a real redis-server: two "instances" (two RedisShared on
one Redis) share the caps, leases end with a dead instance, the feed, values, rates and
resume state. (The whole of it through real instances: test_scale_out.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from rt_server.shared import Caps, SharedUnavailable
from rt_server.shared.redis import RedisShared
from tests.support.services import Service, start_redis, stop


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Service]:
    service = start_redis(tmp_path)
    try:
        yield service
    finally:
        stop(service.process)


@pytest.fixture
async def two(redis: Service) -> AsyncIterator[tuple[RedisShared, RedisShared]]:
    url = f"redis://127.0.0.1:{redis.port}/0"
    caps = Caps(total=3, per_token=2)
    async with (
        RedisShared(url, "a", caps, 60.0, lease_ms=600) as a,
        RedisShared(url, "b", caps, 60.0, lease_ms=600) as b,
    ):
        yield a, b


async def test_the_caps_hold_across_instances_admitting_at_once(
    two: tuple[RedisShared, RedisShared],
) -> None:
    a, b = two
    results = await asyncio.gather(
        *(shared.admit(f"s{n}-{shared.instance}", "tok") for n in range(3) for shared in two)
    )
    assert sorted(r or "in" for r in results) == ["in", "in", "token", "token", "token", "token"]
    assert await a.admit("s9", None) is None  # no token: only the total counts
    assert await b.admit("s10", None) == "total"
    assert await b.admit("s9", None) is None  # an id already counted (a resume) is let in


async def test_a_dead_instances_sessions_expire_and_the_live_ones_are_renewed(
    two: tuple[RedisShared, RedisShared], redis: Service
) -> None:
    a, b = two
    assert await a.admit("alive", None) is None
    await a.describe("alive", {"session": "alive", "instance": "a"})
    # An instance that renews nothing (never entered: no lease task), as if killed.
    dead = RedisShared(f"redis://127.0.0.1:{redis.port}/0", "dead", Caps(), 60.0, lease_ms=600)
    assert await dead.admit("orphan", None) is None
    await dead.describe("orphan", {"session": "orphan", "instance": "dead"})
    async with asyncio.timeout(5):
        while len(await a.live()) > 1:
            await asyncio.sleep(0.05)  # a lease ends on Redis's clock: nothing to await on
    assert await a.live() == [{"session": "alive", "instance": "a"}]  # renewed past its lease
    await dead.__aexit__(None, None, None)  # its late release of "orphan" changes nothing
    await b.release("alive", None)  # not b's: nothing released
    assert len(await a.live()) == 1
    await a.release("alive", None)
    assert await a.live() == []


async def test_the_feed_values_rates_and_resume_state_are_shared(
    two: tuple[RedisShared, RedisShared],
) -> None:
    a, b = two
    heard: asyncio.Queue[str] = asyncio.Queue()
    b.listen("monitor", heard.put_nowait)
    a.publish("monitor", "hello")  # b may subscribe a moment after entering: publish again
    async with asyncio.timeout(5):
        while heard.empty():
            await asyncio.sleep(0.05)
            a.publish("monitor", "hello")
    assert await heard.get() == "hello"
    await a.put("call_config", '{"profile": {}}')
    assert await b.get("call_config") == '{"profile": {}}'
    assert [await a.take("caller", 2.0), await b.take("caller", 2.0)] == [0.0, 0.0]
    assert await a.take("caller", 2.0) > 0  # the third of two a minute, on either instance
    await a.save_resume("t" * 24, b"state")
    assert await b.load_resume("t" * 24) == b"state"
    assert [await a.resumed("t" * 24), await b.resumed("t" * 24)] == [1, 2]


async def test_an_unreachable_redis_is_one_exception(redis: Service) -> None:
    url = f"redis://127.0.0.1:{redis.port}/0"
    async with RedisShared(url, "a", Caps(), 60.0) as shared:
        stop(redis.process)
        with pytest.raises(SharedUnavailable):
            await shared.admit("s", None)
