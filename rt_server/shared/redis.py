"""Shared state on Redis (or Valkey): ``REDIS_URL``.

Only the engine's own primitives: keys with TTLs, sorted sets of leases trimmed and
counted inside one Lua script (so a cap holds when instances admit at the same moment),
``INCR``, and pub/sub. Every key starts with ``rt:``:

- ``rt:live``: a sorted set of live session ids scored by their lease's end (ms, Redis
  clock); ``rt:live:<holder>`` the same per client token digest; ``rt:session:<id>`` what
  the monitor lists, ``rt:owner:<id>`` the instance serving it (the one a resume moved it
  to; the instance it left releases nothing). This instance renews its sessions' leases every ``LEASE / 3``; the
  sessions of an instance that died drop out once their lease ends.
- ``rt:value:<name>``: the saved ``/logs`` call configuration.
- ``rt:rate:<per minute>:<caller digest>``: a token bucket (hash), expiring when full.
- ``rt:resume:<token>``: a conversation's resume state, ``RESUME_WINDOW_SECONDS`` after its
  session was last seen alive; ``rt:resumes:<token>`` how many times it was taken up.
- channels ``rt:monitor`` (the monitor feed of every instance), ``rt:logs`` and
  ``rt:logs_control`` (``/logs`` consoles following calls elsewhere: :mod:`rt_server.call_relay`).

A Redis error becomes :class:`SharedUnavailable` here, and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self, cast

import orjson
from loguru import logger
from redis.asyncio import Redis
from redis.exceptions import RedisError

from rt_server.shared.base import Caps, Channel, Full, Shared, SharedUnavailable, digest

LEASE_MS = 15_000
_CHANNELS: dict[str, Channel] = {
    "monitor": "monitor",
    "logs": "logs",
    "logs_control": "logs_control",
}
PUBLISH_QUEUE = 10_000  # messages waiting to be published before new ones are dropped
_MAX_BACKOFF = 5.0

# KEYS: rt:live, rt:owner:<id>[, rt:live:<holder>]; ARGV: id, caps, lease, instance.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[4])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
  redis.call('SET', KEYS[2], ARGV[5], 'PX', lease)
  return 0
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if tonumber(ARGV[2]) > 0 and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 1
end
if #KEYS > 2 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if tonumber(ARGV[3]) > 0 and redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[3]) then
    return 2
  end
  redis.call('ZADD', KEYS[3], now + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[3], lease)
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('SET', KEYS[2], ARGV[5], 'PX', lease)
return 0
"""

# A session resumed elsewhere belongs to that instance: the one it left releases nothing.
# KEYS: rt:live, rt:owner:<id>, rt:session:<id>[, rt:live:<holder>]; ARGV: id, instance.
_RELEASE = """
if redis.call('GET', KEYS[2]) ~= ARGV[2] then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3])
if #KEYS > 3 then
  redis.call('ZREM', KEYS[4], ARGV[1])
end
return 1
"""

# KEYS: rt:live, then per session its holder's set (or rt:live again), its info key and
# its owner key.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do
  local id = ARGV[i]
  redis.call('ZADD', KEYS[1], now + lease, id)
  local holder = KEYS[3 * i - 4]
  if holder ~= KEYS[1] then
    redis.call('ZADD', holder, now + lease, id)
    redis.call('PEXPIRE', holder, lease)
  end
  redis.call('PEXPIRE', KEYS[3 * i - 3], lease)
  redis.call('PEXPIRE', KEYS[3 * i - 2], lease)
end
return 0
"""

_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local per = tonumber(ARGV[1])
local burst = math.max(1, per)
local rate = per / 60
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1]) or burst
local at = tonumber(bucket[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens < 1 then wait = (1 - tokens) / rate else tokens = tokens - 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return tostring(wait)
"""


class RedisShared(Shared):
    """Shared state in the Redis at ``url``; the lifespan enters it."""

    def __init__(
        self, url: str, instance: str, caps: Caps, resume_seconds: float, lease_ms: int = LEASE_MS
    ) -> None:
        super().__init__(instance, caps, resume_seconds)
        self.lease_ms = lease_ms
        self._redis = Redis.from_url(url, socket_timeout=3.0, socket_connect_timeout=3.0)
        self._mine: dict[str, str | None] = {}  # live session id -> holder
        self._held: set[str] = set()  # resume tokens of live sessions
        self._outgoing: deque[tuple[Channel, str]] = deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped = 0  # feed messages lost while Redis was unreachable or slow
        self._admit = self._redis.register_script(_ADMIT)
        self._renew = self._redis.register_script(_RENEW)
        self._take = self._redis.register_script(_TAKE)
        self._release = self._redis.register_script(_RELEASE)

    async def __aenter__(self) -> Self:
        try:
            await self._redis.ping()
        except RedisError as exc:  # start anyway: admitting waits for Redis to be back
            logger.warning("redis: cannot reach it at start-up ({})", type(exc).__name__)
        self._tasks = [
            asyncio.create_task(self._renew_leases()),
            asyncio.create_task(self._subscribe()),
            asyncio.create_task(self._publish_queued()),
        ]
        logger.info("shared state on Redis; instance {}", self.instance)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(SharedUnavailable):
            for session_id, holder in list(self._mine.items()):
                await self.release(session_id, holder)
        await self._redis.aclose()

    # ------------------------------------------------------------ live sessions

    async def admit(self, session_id: str, holder: str | None) -> Full | None:
        keys = ["rt:live", f"rt:owner:{session_id}"]
        if holder is not None:
            keys.append(f"rt:live:{holder}")
        caps = self.caps
        args: list[str | int] = [
            session_id,
            caps.total,
            caps.per_token,
            self.lease_ms,
            self.instance,
        ]
        async with _mapped():
            full = await cast(Awaitable[int], self._admit(keys=keys, args=args))
        if full:
            return "total" if full == 1 else "token"
        self._mine[session_id] = holder
        return None

    async def describe(self, session_id: str, info: dict[str, object]) -> None:
        async with _mapped():
            await self._redis.set(f"rt:session:{session_id}", orjson.dumps(info), px=self.lease_ms)

    async def release(self, session_id: str, holder: str | None) -> None:
        self._mine.pop(session_id, None)
        keys = ["rt:live", f"rt:owner:{session_id}", f"rt:session:{session_id}"]
        if holder is not None:
            keys.append(f"rt:live:{holder}")
        async with _mapped():
            await cast(Awaitable[int], self._release(keys=keys, args=[session_id, self.instance]))

    async def live(self) -> list[dict[str, object]]:
        async with _mapped():
            ids = cast(list[bytes], await self._redis.zrange("rt:live", 0, -1))
            if not ids:
                return []
            found = await self._redis.mget([b"rt:session:" + i for i in ids])
        return [orjson.loads(info) for info in found if info is not None]

    async def _renew_leases(self) -> None:
        """Renew this instance's leases (and its live sessions' resume state)."""
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            mine = dict(self._mine)
            keys = ["rt:live"]
            for session_id, holder in mine.items():
                keys += [
                    f"rt:live:{holder}" if holder else "rt:live",
                    f"rt:session:{session_id}",
                    f"rt:owner:{session_id}",
                ]
            try:
                if mine:
                    await self._renew(keys=keys, args=[self.lease_ms, *mine.keys()])
                async with self._redis.pipeline(transaction=False) as pipe:
                    for token in self._held:
                        pipe.expire(f"rt:resume:{token}", int(self.resume_seconds) + 1)
                        pipe.expire(f"rt:resumes:{token}", int(self.resume_seconds) + 1)
                    await pipe.execute()
            except RedisError as exc:
                logger.warning("redis: leases not renewed ({})", type(exc).__name__)

    # ------------------------------------------------------------ feeds

    def publish(self, channel: Channel, message: str) -> None:
        if len(self._outgoing) >= PUBLISH_QUEUE:
            self.dropped += 1
            return
        self._outgoing.append((channel, message))
        self._wake.set()

    async def _publish_queued(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch = [self._outgoing.popleft() for _ in range(len(self._outgoing))]
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for channel, message in batch:
                        pipe.publish(f"rt:{channel}", message)
                    await pipe.execute()
            except RedisError as exc:
                self.dropped += len(batch)
                logger.warning("redis: {} feed messages lost ({})", len(batch), type(exc).__name__)

    async def _subscribe(self) -> None:
        """Hand what any instance published to this one's listeners; resubscribe after
        an outage, with backoff."""
        backoff = 0.2
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(*(f"rt:{channel}" for channel in _CHANNELS))
                    backoff = 0.2
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            channel = _CHANNELS[bytes(message["channel"]).decode()[3:]]
                            self._deliver(channel, bytes(message["data"]).decode())
            except RedisError as exc:
                logger.warning("redis: feed subscription lost ({})", type(exc).__name__)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)

    # ------------------------------------------------------------ values, rates, resume

    async def get(self, name: str) -> str | None:
        async with _mapped():
            value = await self._redis.get(f"rt:value:{name}")
        return None if value is None else cast(bytes, value).decode()

    async def put(self, name: str, value: str) -> None:
        async with _mapped():
            await self._redis.set(f"rt:value:{name}", value)

    async def take(self, key: str, per_minute: float) -> float:
        async with _mapped():
            wait = await cast(
                Awaitable[Any],
                self._take(keys=[f"rt:rate:{per_minute:g}:{digest(key)}"], args=[per_minute]),
            )
        return float(wait)

    async def save_resume(self, token: str, state: bytes) -> None:
        async with _mapped():
            await self._redis.set(f"rt:resume:{token}", state, ex=int(self.resume_seconds) + 1)

    async def load_resume(self, token: str) -> bytes | None:
        async with _mapped():
            state = await self._redis.get(f"rt:resume:{token}")
        return cast(bytes | None, state)

    async def resumed(self, token: str) -> int:
        key = f"rt:resumes:{token}"
        async with _mapped(), self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, int(self.resume_seconds) + 1)
            count, _ = await pipe.execute()
        return int(count)

    def hold_resume(self, token: str) -> None:
        self._held.add(token)

    def drop_resume(self, token: str) -> None:
        self._held.discard(token)


@asynccontextmanager
async def _mapped() -> AsyncIterator[None]:
    try:
        yield
    except RedisError as exc:
        raise SharedUnavailable(f"redis: {type(exc).__name__}") from None
