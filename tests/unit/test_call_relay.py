"""Consoles operating calls of other instances (:mod:`rt_server.call_relay`) over an
in-memory bus that delivers as Redis pub/sub does: every instance hears every message, in
publish order, when the test pumps it. Pure, no event loop."""

from __future__ import annotations

from collections import deque

import orjson

from rt_server.call_logs import CallLogs, Console
from rt_server.dialects.logs import Reply
from rt_server.monitor import Feed
from rt_server.shared import Caps, LocalShared
from rt_server.shared.base import Channel


class Bus:
    def __init__(self) -> None:
        self.queue: deque[tuple[Channel, str]] = deque()
        self.instances: list[Instance] = []

    def pump(self) -> None:
        while self.queue:
            channel, message = self.queue.popleft()
            for instance in self.instances:
                instance.deliver(channel, message)


class Instance(LocalShared):
    """One instance's shared state, its feeds on ``bus`` (the rest stays local)."""

    local = False

    def __init__(self, bus: Bus, name: str) -> None:
        super().__init__(name, Caps(), 0.0)
        self.bus = bus
        bus.instances.append(self)

    def publish(self, channel: Channel, message: str) -> None:
        self.bus.queue.append((channel, message))

    def deliver(self, channel: Channel, message: str) -> None:
        self._deliver(channel, message)


def test_an_operation_for_a_call_that_ended_before_its_instance_said_so_is_answered() -> None:
    bus = Bus()
    here, there, third = (CallLogs(shared=Instance(bus, name)) for name in ("rt1", "rt2", "rt3"))
    console = Console(Feed(16))
    here.consoles.add(console)
    started = {
        "type": "session_started",
        "session": "s1",
        "dialect": "twilio",
        "data": {"instance": "rt2"},
    }
    there.shared.publish("monitor", orjson.dumps(started).decode())
    bus.pump()
    assert console.remote == "s1"  # following the call rt2 serves
    # s1 has ended on rt2 (no longer among its sessions); its session_ended is still on the
    # way when the console asks for a reply: rt2 answers, rt3 (never served s1) stays quiet.
    assert here.relay is not None and "s1" not in there.sessions | third.sessions
    here._apply(console, Reply())
    bus.pump()
    answers = [orjson.loads(m) for m in console.feed.queue]
    assert [a["error"]["code"] for a in answers] == ["no_call"]
    # Once rt1 hears the call has ended, its console follows nothing: told at once.
    ended = {"type": "session_ended", "session": "s1", "dialect": "twilio", "data": {}}
    there.shared.publish("monitor", orjson.dumps(ended).decode())
    bus.pump()
    assert console.remote is None
    here._apply(console, Reply())
    assert [orjson.loads(m)["error"]["code"] for m in console.feed.queue] == ["no_call"] * 2
