"""Prometheus metrics, one registry per application (tests run several apps at once)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from rt_server.errors import ErrorCode


class Metrics:
    """What ``GET /metrics`` exposes; children for the hot path are bound up front."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sessions_active = Gauge(
            "rt_sessions_active", "Client sessions open now", registry=self.registry
        )
        self.sessions_total = Counter(
            "rt_sessions", "Client sessions opened", ["dialect"], registry=self.registry
        )
        messages = Counter(
            "rt_messages",
            "Messages relayed, by direction and type",
            ["direction", "type"],
            registry=self.registry,
        )
        volume = Counter(
            "rt_bytes",
            "Bytes relayed, by direction and type",
            ["direction", "type"],
            registry=self.registry,
        )
        self.in_text, self.in_audio = messages.labels("in", "text"), messages.labels("in", "audio")
        self.out_text = messages.labels("out", "text")
        self.out_audio = messages.labels("out", "audio")
        self.in_text_bytes = volume.labels("in", "text")
        self.in_audio_bytes = volume.labels("in", "audio")
        self.out_text_bytes = volume.labels("out", "text")
        self.out_audio_bytes = volume.labels("out", "audio")
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

    def error(self, code: ErrorCode) -> None:
        self._errors.labels(code).inc()

    def expose(self) -> bytes:
        return generate_latest(self.registry)
