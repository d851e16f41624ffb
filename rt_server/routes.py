"""The application's own routes: health, readiness, metrics, tools, the protocol schemas,
one WebSocket route per dialect, the ``/monitor`` feed and the ``/logs`` call console."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, WebSocket
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from rt_server import access
from rt_server.admission import serve_session
from rt_server.dialects import Dialect, schemas
from rt_server.http_errors import ApiError, admin_refused, deny
from rt_server.runtime import RuntimeDep, runtime_of


def mount_routes(app: FastAPI, dialects: tuple[Dialect, ...]) -> None:
    """Add the routes above to ``app``; ``dialects`` with a ``path`` get a WebSocket route."""

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: cheap, touches nothing."""
        return {"status": "ok"}

    @app.get("/ready", response_model=None)
    async def ready(runtime: RuntimeDep) -> dict[str, Any] | JSONResponse:
        """Readiness: whether a backend session can be had now (a probe, cached for
        ``READY_CACHE_SECONDS``; :mod:`rt_server.readiness`)."""
        if runtime.draining:
            return JSONResponse({"status": "shutting_down"}, status_code=503)
        error, age = await runtime.readiness.probe()
        checked = {"backend": runtime.services.backend.name, "checked_seconds_ago": round(age, 1)}
        if error is not None:
            body = {"status": "unavailable", "code": error.code, **checked}
            return JSONResponse(body, status_code=503)
        return {"status": "ready", **checked}

    @app.get("/metrics")
    async def metrics(runtime: RuntimeDep) -> Response:
        """Prometheus metrics."""
        return Response(runtime.services.metrics.expose(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/tools")
    async def list_tools(runtime: RuntimeDep) -> list[dict[str, Any]]:
        """The function tools offered to the model (they run on the server)."""
        return runtime.services.tools.schemas()

    @app.get("/protocol.json")
    async def protocol(runtime: RuntimeDep) -> dict[str, Any]:
        """JSON Schema of every client and server message of each dialect."""
        return schemas(runtime.dialects)

    @app.websocket("/monitor")
    async def monitor(websocket: WebSocket) -> None:
        """The live monitor feed of every session (docs/monitor.md); admin token."""
        runtime = runtime_of(websocket)
        if (refused := admin_refused(websocket, runtime.settings)) is not None:
            await deny(websocket, refused)
            return
        await websocket.accept()
        await runtime.monitor.serve(websocket)

    @app.websocket("/logs")
    async def logs(websocket: WebSocket) -> None:
        """The Twilio demo's call console: the newest call's (or ``?session=``'s) Realtime
        events out, ``session.update`` and tool outputs in (docs/monitor.md); admin token."""
        runtime = runtime_of(websocket)
        if (refused := admin_refused(websocket, runtime.settings)) is not None:
            await deny(websocket, refused)
            return
        pinned = websocket.query_params.get("session")
        if pinned is not None and not runtime.call_logs.exists(pinned):
            await deny(websocket, ApiError(404, "unknown_session", "no live session has this id"))
            return
        await websocket.accept(access.chosen_protocol(websocket.headers))
        await runtime.call_logs.serve(websocket, pinned)

    for dialect in dialects:
        if dialect.path is not None:
            app.add_api_websocket_route(dialect.path, _session_route(dialect), dialect.name)


def _session_route(dialect: Dialect) -> Callable[[WebSocket], Awaitable[None]]:
    async def session(websocket: WebSocket) -> None:
        await serve_session(websocket, dialect)

    session.__doc__ = f"A {dialect.name} session (README, 'Protocol')."
    return session
