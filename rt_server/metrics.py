"""Prometheus metrics, one registry per application (tests run several apps at once).

Per-frame traffic is not counted through prometheus-client on the hot path (a locked
``inc()`` per frame and direction is measurable at hundreds of sessions): each session
counts in plain integers (:class:`Traffic`) and the registry sums the live and finished
sessions' counts when ``/metrics`` is read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from rt_server.errors import ErrorCode
from rt_server.usage import token_split


@dataclass(slots=True)
class Traffic:
    """One session's frames and bytes by direction and type."""

    in_text: int = 0
    in_audio: int = 0
    out_text: int = 0
    out_audio: int = 0
    in_text_bytes: int = 0
    in_audio_bytes: int = 0
    out_text_bytes: int = 0
    out_audio_bytes: int = 0

    def add(self, other: Traffic) -> None:
        for name in _FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


_FIELDS = tuple(f.name for f in fields(Traffic))


class _TrafficCollector(Collector):
    """``rt_messages_total`` and ``rt_bytes_total``, summed at scrape time."""

    def __init__(self) -> None:
        self.finished = Traffic()
        self.sessions: dict[int, Traffic] = {}

    def collect(self) -> Iterator[Metric]:
        total = Traffic()
        total.add(self.finished)
        for traffic in list(self.sessions.values()):
            total.add(traffic)
        messages = CounterMetricFamily(
            "rt_messages", "Messages relayed, by direction and type", labels=["direction", "type"]
        )
        volume = CounterMetricFamily(
            "rt_bytes", "Bytes relayed, by direction and type", labels=["direction", "type"]
        )
        for direction in ("in", "out"):
            for kind in ("text", "audio"):
                name = f"{direction}_{kind}"
                messages.add_metric([direction, kind], getattr(total, name))
                volume.add_metric([direction, kind], getattr(total, f"{name}_bytes"))
        yield messages
        yield volume


class Metrics:
    """What ``GET /metrics`` exposes."""

    def __init__(self, instance: str | None = None) -> None:
        self.registry = CollectorRegistry()
        if instance is not None:  # which of the instances behind a load balancer this is
            Gauge(
                "rt_instance", "This instance (INSTANCE_ID)", ["instance"], registry=self.registry
            ).labels(instance).set(1)
        self._traffic = _TrafficCollector()
        self.registry.register(self._traffic)
        self.sessions_active = Gauge(
            "rt_sessions_active", "Client sessions open now", registry=self.registry
        )
        self.sessions_total = Counter(
            "rt_sessions", "Client sessions opened", ["dialect"], registry=self.registry
        )
        self._errors = Counter(
            "rt_errors", "Errors sent to clients, by code", ["code"], registry=self.registry
        )
        self.backend_connect_seconds = Histogram(
            "rt_backend_connect_seconds",
            "Time to open and configure a backend session",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.reconnects = Counter(
            "rt_backend_reconnects", "Backend sessions reopened mid-session", registry=self.registry
        )
        self.tool_calls = Counter(
            "rt_tool_calls", "Tool calls run, by tool", ["tool"], registry=self.registry
        )
        self._tokens = Counter(
            "rt_tokens",
            "Model tokens, by direction (input, output), kind (text, audio, image, cached) "
            "and profile",
            ["direction", "kind", "profile"],
            registry=self.registry,
        )
        self._rate_limit = Gauge(
            "rt_rate_limit_remaining",
            "What the latest rate_limits.updated said remains, by limit (requests, tokens)",
            ["name"],
            registry=self.registry,
        )
        self._rate_limit_max = Gauge(
            "rt_rate_limit_limit",
            "The latest rate_limits.updated limits, by limit (requests, tokens)",
            ["name"],
            registry=self.registry,
        )

    def track(self, traffic: Traffic) -> None:
        """Count a live session's traffic in what ``/metrics`` reports."""
        self._traffic.sessions[id(traffic)] = traffic

    def retire(self, traffic: Traffic) -> None:
        """The session ended: keep its counts in the running totals."""
        if self._traffic.sessions.pop(id(traffic), None) is not None:
            self._traffic.finished.add(traffic)

    def error(self, code: ErrorCode) -> None:
        self._errors.labels(code).inc()

    def usage(self, profile: str, usage: Mapping[str, Any]) -> None:
        """Count a ``response.done``'s usage, split as :func:`token_split` splits it."""
        for (direction, kind), tokens in token_split(usage).items():
            self._tokens.labels(direction, kind, profile).inc(tokens)

    def rate_limits(self, limits: list[Mapping[str, Any]]) -> None:
        """The latest ``rate_limits.updated``: each limit's remaining and maximum."""
        for limit in limits:
            name = str(limit.get("name", ""))
            if isinstance(remaining := limit.get("remaining"), int | float):
                self._rate_limit.labels(name).set(remaining)
            if isinstance(maximum := limit.get("limit"), int | float):
                self._rate_limit_max.labels(name).set(maximum)

    def expose(self) -> bytes:
        return generate_latest(self.registry)
