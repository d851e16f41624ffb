"""Many instances serve as one (docs/scale-out.md): Redis, a throwaway PostgreSQL, three
``rt-server`` processes on loopback and nginx in front with deploy/nginx.conf.

Sessions spread over the instances; a monitor on one sees the sessions of all; the global
cap holds across them; a ``/logs`` configuration saved through one applies to a call on
another, and a console on one follows and operates a call on another; ``kill -9`` of the instance serving a conversation -> the Python client resumes
through nginx on another and the model still knows what was said; the records hold every
completed turn exactly once; a drain (SIGTERM) hands the client a resume it uses on
another. The tests run in this order on one set of processes."""

from __future__ import annotations

import asyncio
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import asyncpg  # type: ignore[import-untyped]
import orjson
import pytest
from redis.asyncio import Redis

from rt_server.client import ConnectFailed, RtClient
from tests.e2e.compat.test_call_console import synced
from tests.support.harness import client, next_frame, send_json, until
from tests.support.media_streams import SILENCE, tone_mulaw, twilio_call
from tests.support.postgres import remove_cluster, start_cluster
from tests.support.services import Service, start_nginx, start_redis, start_rt_server, stop

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

CAP = 4  # MAX_SESSIONS_TOTAL
CONTOSO = "You are Contoso's phone line."


@dataclass
class Cluster:
    redis: Service
    database: str  # postgresql:// URL
    instances: list[Service]
    nginx: Service

    @property
    def lb(self) -> str:
        return f"ws://127.0.0.1:{self.nginx.port}/realtime"

    def ws(self, index: int, path: str) -> str:
        return f"ws://127.0.0.1:{self.instances[index].port}{path}"

    @asynccontextmanager
    async def redis_client(self) -> AsyncIterator[Redis]:
        redis = Redis(host="127.0.0.1", port=self.redis.port)
        try:
            yield redis
        finally:
            await redis.aclose()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix="rt-scale-"))
    pg = start_cluster()
    started: list[Service] = []
    try:
        database = asyncio.run(pg.create_database(f"t{uuid.uuid4().hex[:12]}"))
        redis = start_redis(root)
        started.append(redis)
        env = {
            "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
            "DATABASE_URL": database,
            "MAX_SESSIONS_TOTAL": str(CAP),
            "ADMIN_LOCAL": "true",
            "OUTPUT_MODALITY": "text",
            "DISCUSSIONS_DIR": "off",
            "SHUTDOWN_GRACE_SECONDS": "2",
            "LOG_LEVEL": "INFO",
        }
        instances = []
        for number in (1, 2, 3):
            instance = start_rt_server(env | {"INSTANCE_ID": f"rt{number}"}, root)
            started.append(instance)
            instances.append(instance)
        nginx = start_nginx([i.port for i in instances], root)
        started.append(nginx)
        yield Cluster(redis, database, instances, nginx)
    finally:
        for service in reversed(started):
            stop(service.process)
        remove_cluster(pg)


async def no_sessions_left(cluster: Cluster) -> None:
    """Wait until every ended session has been counted out of the shared registry."""
    async with cluster.redis_client() as redis, asyncio.timeout(10):
        while await redis.zcard("rt:live"):
            await asyncio.sleep(0.05)  # released by another process: nothing to await on


async def test_sessions_spread_and_a_monitor_on_one_instance_sees_all_of_them(
    cluster: Cluster,
) -> None:
    async with client(cluster.ws(0, "/monitor")) as monitor, AsyncExitStack() as stack:
        hello = await next_frame(monitor)
        assert isinstance(hello, dict) and hello["type"] == "monitor"
        for _ in range(3):
            await stack.enter_async_context(RtClient.connect(cluster.lb, resume=False))
        started: list[dict[str, Any]] = []
        while len(started) < 3:
            frame, _ = await until(monitor, lambda f: _kind(f) == "session_started")
            assert isinstance(frame, dict)
            started.append(frame)
        async with client(cluster.ws(1, "/monitor")) as later:  # another instance's monitor
            listed = await next_frame(later)
    assert {f["data"]["instance"] for f in started} == {"rt1", "rt2", "rt3"}  # spread
    assert isinstance(listed, dict)
    assert {s["instance"] for s in listed["sessions"]} == {"rt1", "rt2", "rt3"}
    assert {s["session"] for s in listed["sessions"]} == {f["session"] for f in started}


async def test_the_global_cap_holds_across_instances(cluster: Cluster) -> None:
    await no_sessions_left(cluster)
    async with AsyncExitStack() as stack:
        for _ in range(CAP):
            await stack.enter_async_context(RtClient.connect(cluster.lb, resume=False))
        with pytest.raises(ConnectFailed) as refused:
            async with RtClient.connect(cluster.lb, resume=False):
                pass
    assert refused.value.code == "too_many_sessions"
    await no_sessions_left(cluster)
    async with RtClient.connect(cluster.lb, resume=False) as rt:  # room again
        assert rt.resume_token is None or rt.resume_token


async def test_a_call_configuration_saved_through_one_instance_applies_on_another(
    cluster: Cluster,
) -> None:
    async with client(cluster.ws(0, "/logs")) as console:
        await send_json(console, {"type": "session.update", "session": {"instructions": CONTOSO}})
        await synced(console)
    async with (
        client(cluster.ws(1, "/logs"), max_queue=None) as follower,
        twilio_call(cluster.ws(1, "/call")) as call,
    ):
        await call.say(tone_mulaw(300) + SILENCE * 10)
        updated, _ = await until(follower, lambda f: _kind(f) == "session.updated")
        await call.hang_up()  # as Twilio ends a call: a stop event
    assert isinstance(updated, dict)
    assert updated["session"]["instructions"] == CONTOSO


async def test_a_console_on_one_instance_follows_and_operates_a_call_on_another(
    cluster: Cluster,
) -> None:
    async with (
        client(cluster.ws(0, "/logs"), max_queue=None) as console,
        twilio_call(cluster.ws(1, "/call")) as call,
    ):
        async with asyncio.timeout(10):
            while True:  # until this instance has heard of the call (no_call before)
                await send_json(console, {"type": "response.create"})
                frame = await next_frame(console)
                if not (
                    isinstance(frame, dict) and frame.get("error", {}).get("code") == "no_call"
                ):
                    break
        # The reply rt1's console asked for runs on rt2; its events reach rt1's console.
        done, seen = await until(console, lambda f: _kind(f) == "response.done")
        await call.hang_up()
    assert isinstance(done, dict) and done["response"]["status"] == "completed"
    kinds = [_kind(f) for f in [frame, *seen]]
    assert "response.created" in kinds
    assert "response.text.delta" in kinds  # OUTPUT_MODALITY=text: the reply's text


async def test_a_drain_hands_the_client_a_resume_it_uses_on_another_instance(
    cluster: Cluster,
) -> None:
    await no_sessions_left(cluster)
    async with RtClient.connect(cluster.lb) as rt:
        await rt.reply("my name is Bob")
        _, serving = await _serving(cluster)
        draining = cluster.instances[serving].process
        draining.send_signal(signal.SIGTERM)
        told = await rt.receive()
        resumed = await rt.receive()  # closed with 1001 after it: resumed elsewhere
        recap = await rt.reply("recap")
        _, now_serving = await _serving(cluster)
    assert told == {"type": "control", "action": "shutting_down", "resume": rt.resume_token}
    assert resumed == {"type": "control", "action": "resumed", "interrupted": False}
    assert now_serving != serving
    assert "my name is Bob" in recap.text
    assert await asyncio.to_thread(draining.wait, 20) in (0, -signal.SIGTERM)


async def test_killing_the_instance_of_a_conversation_loses_nothing_said(
    cluster: Cluster,
) -> None:
    await no_sessions_left(cluster)
    async with RtClient.connect(cluster.lb) as rt:
        await rt.reply("my name is Ada")
        session, serving = await _serving(cluster)
        # Both turns reach PostgreSQL within the writer's second (FLUSH_SECONDS), well
        # before the kill: a turn completed a second before kill -9 is in the records.
        async with asyncio.timeout(3):
            while [role for role, _ in await _turns(cluster, session)] != ["user", "assistant"]:
                await asyncio.sleep(0.05)  # written by another process: nothing to await on
        cluster.instances[serving].process.send_signal(signal.SIGKILL)
        cluster.instances[serving].process.wait()
        resumed = await rt.receive()  # the client noticed, resumed through nginx
        assert resumed == {"type": "control", "action": "resumed", "interrupted": False}
        recap = await rt.reply("recap")
        _, now_serving = await _serving(cluster)
        assert rt.resumes == 1
    assert now_serving != serving
    assert "my name is Ada" in recap.text  # the new instance's model has the context
    for instance in cluster.instances:  # a drain writes what is queued
        stop(instance.process)
    turns = await _turns(cluster, session)
    assert [text for role, text in turns if role == "user"] == ["my name is Ada", "recap"]
    assert [role for role, _ in turns].count("assistant") == 2  # every turn, once
    conn = await asyncpg.connect(cluster.database)
    try:
        conversations = await conn.fetchval(
            "SELECT count(*) FROM conversations WHERE id = $1", session
        )
    finally:
        await conn.close()
    assert conversations == 1  # one conversation, not two


def _kind(frame: Any) -> object:
    return frame.get("type") if isinstance(frame, dict) else None


async def _serving(cluster: Cluster) -> tuple[str, int]:
    """The one live session's id and the index of the instance serving it."""
    async with cluster.redis_client() as redis:
        [session] = cast(list[bytes], await redis.zrange("rt:live", 0, -1))
        info = orjson.loads(await redis.get(b"rt:session:" + session) or b"{}")
    return info["session"], int(info["instance"].removeprefix("rt")) - 1


async def _turns(cluster: Cluster, session: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(cluster.database)
    try:
        rows = await conn.fetch(
            "SELECT role, text FROM events WHERE conversation_id = $1 AND role IS NOT NULL "
            "ORDER BY seq",
            session,
        )
    finally:
        await conn.close()
    return [(row["role"], row["text"]) for row in rows]
