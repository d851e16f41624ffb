"""OpenTelemetry traces, exported over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

One trace per session: the ``session`` span (dialect, profile, close code), and inside it
``backend.connect`` (each connect and reconnect), a ``turn`` span per reply with its latency
stages as events (``speech_stopped``, ``committed``, ``transcribed``, ``response.created``,
``first_output``, ``done``) and ``tool`` spans (name, duration). No audio, text, arguments or
tokens are ever attributes. Spans are batched and exported off the event loop by the SDK's
worker thread; the lifespan flushes them on the way out.

The SDK reads its other standard variables itself (``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_EXPORTER_OTLP_HEADERS``, ...).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, Tracer

__all__ = ["SessionTrace", "Tracer", "tracer_provider"]

#: Backend events that mark a stage of a turn (the first output delta is ``first_output``).
_STAGES = {
    "input_audio_buffer.speech_stopped": "speech_stopped",
    "input_audio_buffer.committed": "committed",
    "conversation.item.input_audio_transcription.completed": "transcribed",
}
_OUTPUT = frozenset(
    {
        "response.output_audio.delta",
        "response.output_text.delta",
        "response.output_audio_transcript.delta",
    }
)


@asynccontextmanager
async def tracer_provider(endpoint: str | None, instance: str) -> AsyncIterator[Tracer | None]:
    """A tracer exporting to ``endpoint`` (None: no tracing); flushed and shut down on exit
    (in a thread: the export is a blocking HTTP request)."""
    if endpoint is None:
        yield None
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    attributes = {"service.instance.id": instance}
    if not os.environ.get("OTEL_SERVICE_NAME"):  # the standard variable wins
        attributes["service.name"] = "rt_server"
    resource = Resource.create(attributes)
    provider = TracerProvider(resource=resource)
    exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    try:
        yield provider.get_tracer("rt_server")
    finally:
        await asyncio.to_thread(provider.shutdown)


class SessionTrace:
    """The spans of one session; the session calls it from its callbacks (never blocks)."""

    def __init__(self, tracer: Tracer, attributes: dict[str, Any]) -> None:
        self._tracer = tracer
        self.span = tracer.start_span("session", attributes=attributes)
        self._context = trace.set_span_in_context(self.span)
        self._turn: Span | None = None
        self._output_seen = False

    def child(self, name: str, **attributes: Any) -> Span:
        return self._tracer.start_span(name, context=self._context, attributes=attributes)

    def backend_event(self, kind: str | None) -> None:
        """Note a turn's stages from the backend's events."""
        if kind in _OUTPUT:
            if self._turn is not None and not self._output_seen:
                self._output_seen = True
                self._turn.add_event("first_output")
            return
        if kind in _STAGES:
            self._turn_span().add_event(_STAGES[kind])
        elif kind == "response.created":
            self._turn_span().add_event("response.created")
        elif kind == "response.done" and self._turn is not None:
            self._turn.add_event("done")
            self._turn.end()
            self._turn = None

    def _turn_span(self) -> Span:
        if self._turn is None:
            self._turn = self.child("turn")
            self._output_seen = False
        return self._turn

    def end(self, close_code: int, reason: str) -> None:
        if self._turn is not None:
            self._turn.end()
            self._turn = None
        self.span.set_attribute("rt.close_code", close_code)
        self.span.set_attribute("rt.close_reason", reason)
        self.span.end()
