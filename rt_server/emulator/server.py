"""The emulator's edges: a Starlette app (Realtime websockets, client secrets, admin API) and
`run_emulator`, which serves it on a uvicorn server bound to a pre-bound socket.

Each websocket connection runs four small coroutines until the first ends: the reader feeds client
frames to the pure `Conversation`, the pump sends planned response events (paced or not), the
writer serialises everything (latency, close-after-N and dialect conversion live there), and an
optional timer enforces the session cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from loguru import logger
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from rt_server.emulator.config import EmulatorConfig, Faults, faults_from_dict
from rt_server.emulator.conversation import Conversation, McpRequest
from rt_server.emulator.dialect import Dialect, to_beta
from rt_server.emulator.errors import ClientEventError, Event, error_event
from rt_server.emulator.session_config import default_session, merged_session
from rt_server.emulator.state import ClientSecret, ConnectionInfo, EmulatorState
from rt_server.serving import Served, serve

#: Events queued for the writer above which the response pump waits for it (to the low
#: mark): a response's events are made as they can be sent.
_QUEUE_HIGH, _QUEUE_LOW = 32, 8

_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_CODES = {
    401: ("invalid_api_key", "invalid_request_error"),
    403: ("forbidden", "invalid_request_error"),
    429: ("rate_limit_exceeded", "requests"),
    500: ("server_error", "server_error"),
    503: ("service_unavailable", "server_error"),
}


def _error_body(
    status: int, message: str, code: str | None = None, param: str | None = None
) -> Any:
    default_code, kind = _CODES.get(status, ("invalid_request_error", "invalid_request_error"))
    return {
        "error": {"message": message, "type": kind, "code": code or default_code, "param": param}
    }


# --- the handshake ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HandshakeRoute:
    dialect: Dialect
    model: str


def _route(websocket: WebSocket) -> HandshakeRoute | ClientEventError:
    """Which dialect and model a handshake asks for (the path, query and OpenAI-Beta header)."""
    path, query = websocket.url.path.rstrip("/"), websocket.query_params
    if path == "/openai/realtime":
        deployment = query.get("deployment")
        version = query.get("api-version")
        if not version:
            return ClientEventError(
                "missing_required_parameter", "Missing 'api-version'.", "api-version"
            )
        if not deployment:
            return ClientEventError(
                "missing_required_parameter", "Missing 'deployment'.", "deployment"
            )
        return HandshakeRoute("beta" if version.endswith("-preview") else "ga", deployment)
    model = query.get("model")
    if not model:
        return ClientEventError(
            "missing_required_parameter", "Missing required parameter: 'model'.", "model"
        )
    beta = path == "/v1/realtime" and "realtime=v1" in websocket.headers.get("openai-beta", "")
    return HandshakeRoute("beta" if beta else "ga", model)


def _credential(headers: Any, subprotocols: list[str]) -> str | None:
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return str(authorization[7:].strip())
    if headers.get("api-key"):
        return str(headers["api-key"])
    for protocol in subprotocols:  # browsers cannot set headers
        if protocol.startswith("openai-insecure-api-key."):
            return protocol.split(".", 1)[1]
    return None


def _record_credential(state: EmulatorState, headers: Any, credential: str | None) -> None:
    """Keep what arrived, for tests: the bare token or key (an Azure AD token arrives as
    `Authorization: Bearer <token>`), and which header carried it."""
    if credential is not None:
        state.last_authorization = credential
        state.last_auth_header = "authorization" if "authorization" in headers else "api-key"


def _authorized(config: EmulatorConfig, state: EmulatorState, credential: str | None) -> bool:
    if config.api_key is None:
        return True
    if credential == config.api_key:
        return True
    secret = state.client_secrets.get(credential or "")
    return secret is not None and secret.expires_at > time.time()


def _denial(status: int, faults: Faults, message: str | None = None) -> JSONResponse:
    headers = {}
    if status == 429 and faults.retry_after is not None:
        headers["Retry-After"] = str(faults.retry_after)
    text = message or f"{status} {_REASONS.get(status, 'Error')} (emulated)"
    return JSONResponse(_error_body(status, text), status_code=status, headers=headers)


# --- one connection --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Close:
    code: int
    reason: str


class Connection:
    def __init__(
        self,
        websocket: WebSocket,
        config: EmulatorConfig,
        faults: Faults,
        info: ConnectionInfo,
        conversation: Conversation,
    ) -> None:
        self._ws = websocket
        self._config = config
        self._faults = faults
        self._info = info
        self._conv = conversation
        self._queue: asyncio.Queue[tuple[float, Event] | _Close] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()  # the writer has caught up with the pump
        self._mcp: asyncio.Queue[McpRequest] = asyncio.Queue()
        self._event_ids = f"event_{secrets.token_hex(4).upper()}"
        self._sent = 0
        self._log = logger.bind(connection=info.id)
        info.items = conversation.items
        info.drop = lambda code, reason: self._queue.put_nowait(_Close(code, reason))

    async def run(self) -> None:
        info = self._info
        self._log.info(
            "open {} {} dialect={} model={}", info.id, info.path, info.dialect, info.model
        )
        self._emit_all(self._conv.start())
        jobs = [self._reader(), self._pump(), self._writer(), self._mcp_runner()]
        if self._faults.max_session_seconds is not None:
            jobs.append(self._expire(self._faults.max_session_seconds))
        try:
            await first_completed(*jobs)
        finally:
            self._log.info("closed {} in={} out={}", info.id, info.events_in, info.events_out)

    def _emit_all(self, events: list[Event]) -> None:
        now = asyncio.get_running_loop().time() if self._faults.latency_ms else 0.0
        for event in events:
            self._queue.put_nowait((now, event))
        self._info.session = self._conv.session
        self._info.temperature = self._conv.temperature
        for request in self._conv.take_mcp_requests():
            self._mcp.put_nowait(request)

    async def _mcp_runner(self) -> None:
        """List and call MCP servers' tools as the conversation asks, concurrently; every
        task is owned here and cancelled with the connection."""
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                request = await self._mcp.get()
                task = asyncio.create_task(self._mcp_request(request))
                running.add(task)
                task.add_done_callback(running.discard)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _mcp_request(self, request: McpRequest) -> None:
        # Imported on first use: the mcp package costs seconds of start-up CPU (and a larger
        # heap to collect) that a session without MCP servers should not pay.
        from rt_server.emulator import mcp

        if request.kind == "list":
            tools, error = await mcp.list_tools(request.server)
            self._emit_all(self._conv.mcp_listed(request.item_id, tools, error))
        else:
            output, error = await mcp.call_tool(request.server, request.name, request.arguments)
            self._conv.mcp_called(request.item_id, output, error)
        self._wake.set()

    async def _reader(self) -> None:
        while True:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            self._info.events_in += 1
            text = message.get("text")
            if text is None:
                self._emit_all([_binary_error()])
                continue
            self._emit_all(self._conv.receive(text))
            if self._conv.has_steps:
                self._wake.set()

    async def _pump(self) -> None:
        """Send planned response events: on time (`realtime`) or as fast as possible."""
        loop = asyncio.get_running_loop()
        realtime = self._config.pace == "realtime"
        current, started, stalled = "", 0.0, ""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while (step := self._conv.peek_step()) is not None and step.response_id != stalled:
                if step.response_id != current:
                    current, started = step.response_id, loop.time()
                delay = started + step.at_ms / 1000 - loop.time()
                if realtime and delay > 0.001:
                    await asyncio.sleep(delay)
                    continue  # the response may have been cancelled meanwhile: look again
                self._conv.next_step()
                self._emit_all([step.ready()])
                if self._faults.stall_responses and step.event["type"] == "response.created":
                    stalled = current
                if self._faults.close_mid_response and step.mark == "midpoint":
                    self._queue.put_nowait(_Close(self._faults.close_code, "emulated failure"))
                    return
                await asyncio.sleep(0)  # let the reader see a barge-in or a cancel
                if self._queue.qsize() > _QUEUE_HIGH:
                    # A fast reply is made no faster than it is written: what waits in
                    # the queue stays a few events, not the whole reply's audio.
                    self._drained.clear()
                    await self._drained.wait()

    async def _writer(self) -> None:
        loop = asyncio.get_running_loop()
        latency = self._faults.latency_ms / 1000
        limit = self._faults.close_after_events
        beta = self._info.dialect == "beta"
        while True:
            entry = await self._queue.get()
            if self._queue.qsize() <= _QUEUE_LOW:
                self._drained.set()
            if isinstance(entry, _Close):
                await self._close(entry)
                return
            queued_at, event = entry
            if latency and (delay := queued_at + latency - loop.time()) > 0:
                await asyncio.sleep(delay)
            if beta and (event := to_beta(event)) is None:  # type: ignore[assignment]
                continue
            await self._send(event)
            if limit is not None and self._sent >= limit:
                await self._close(_Close(self._faults.close_code, "emulated failure"))
                return

    async def _send(self, event: Event) -> None:
        self._sent += 1
        self._info.events_out += 1
        event["event_id"] = f"{self._event_ids}{self._sent:06d}"
        kind = event["type"]
        if not kind.endswith(".delta"):
            self._log.debug("< {}", kind)
        await self._ws.send({"type": "websocket.send", "text": orjson.dumps(event).decode()})

    async def _close(self, close: _Close) -> None:
        self._log.info("closing {} with {} ({})", self._info.id, close.code, close.reason)
        with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
            await self._ws.close(close.code, close.reason)

    async def _expire(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        shown = int(seconds) if float(seconds).is_integer() else seconds
        message = f"Your session hit the maximum duration of {shown} seconds."
        self._emit_all([error_event("session_expired", message)])
        self._queue.put_nowait(_Close(1000, "session expired"))
        await asyncio.Event().wait()  # the writer ends the connection


def _binary_error() -> Event:
    return error_event(
        "invalid_json",
        "Binary frames are not supported: send each event as JSON in a text frame.",
    )


async def first_completed(*jobs: Coroutine[Any, Any, None]) -> None:
    """Run `jobs` until the first ends; cancel and await the rest (every task is owned here)."""
    tasks = [asyncio.create_task(job) for job in jobs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if (exc := task.exception()) is not None and not isinstance(exc, WebSocketDisconnect):
                raise exc
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# --- the app -------------------------------------------------------------------------------------


def create_emulator_app(config: EmulatorConfig, state: EmulatorState | None = None) -> Starlette:
    """The ASGI app. `state` is shared with `run_emulator`'s caller when given."""
    state = state or EmulatorState(faults=config.faults)

    async def realtime(websocket: WebSocket) -> None:
        await _serve_realtime(websocket, config, state)

    async def client_secrets(request: Request) -> Response:
        return await _client_secrets(request, config, state)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def get_state(request: Request) -> Response:
        return JSONResponse(state.to_dict())

    async def put_faults(request: Request) -> Response:
        return await _set_faults(request, state.set_faults, state)

    async def post_faults_once(request: Request) -> Response:
        return await _set_faults(request, state.set_faults_once, state)

    async def get_items(request: Request) -> Response:
        try:
            return JSONResponse(state.items(request.path_params["id"]))
        except KeyError:
            return JSONResponse({"error": "no such connection"}, status_code=404)

    async def post_close(request: Request) -> Response:
        try:
            state.drop(request.path_params["id"], int(request.query_params.get("code", 1011)))
        except KeyError:
            return JSONResponse({"error": "no such connection"}, status_code=404)
        except ValueError:
            return JSONResponse({"error": "code must be an integer"}, status_code=400)
        return JSONResponse({"closing": request.path_params["id"]})

    routes = [
        WebSocketRoute("/v1/realtime", realtime),
        WebSocketRoute("/openai/v1/realtime", realtime),
        WebSocketRoute("/openai/realtime", realtime),
        Route("/v1/realtime/client_secrets", client_secrets, methods=["POST"]),
        Route("/openai/v1/realtime/client_secrets", client_secrets, methods=["POST"]),
        Route("/health", health),
        Route("/_emulator/state", get_state),
        Route("/_emulator/faults", put_faults, methods=["PUT"]),
        Route("/_emulator/faults/once", post_faults_once, methods=["POST"]),
        Route("/_emulator/connections/{id}/items", get_items),
        Route("/_emulator/connections/{id}/close", post_close, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.emulator = state
    return app


async def _serve_realtime(
    websocket: WebSocket, config: EmulatorConfig, state: EmulatorState
) -> None:
    faults = state.take_faults()
    subprotocols = list(websocket.scope.get("subprotocols", []))
    credential = _credential(websocket.headers, subprotocols)
    _record_credential(state, websocket.headers, credential)
    route = _route(websocket)
    if faults.handshake_status is not None:
        await websocket.send_denial_response(_denial(faults.handshake_status, faults))
        return
    if not _authorized(config, state, credential):
        message = "Incorrect API key provided." if credential else "Missing API key."
        await websocket.send_denial_response(_denial(401, faults, message))
        return
    if isinstance(route, ClientEventError):
        body = _error_body(400, route.message, route.code, route.param)
        await websocket.send_denial_response(JSONResponse(body, status_code=400))
        return
    secret = state.client_secrets.get(credential or "")
    await websocket.accept(subprotocol="realtime" if "realtime" in subprotocols else None)
    user_agent = websocket.headers.get("user-agent", "")
    info = state.open(websocket.url.path, route.dialect, route.model, user_agent)
    conversation = Conversation(
        config,
        model=route.model,
        beta=route.dialect == "beta",
        now=time.time(),
        session=secret.session if secret else None,
        fail_transcription=faults.fail_transcription,
    )
    try:
        await Connection(websocket, config, faults, info, conversation).run()
    finally:
        state.close(info)


async def _client_secrets(
    request: Request, config: EmulatorConfig, state: EmulatorState
) -> Response:
    credential = _credential(request.headers, [])
    _record_credential(state, request.headers, credential)
    if config.api_key is not None and credential != config.api_key:
        return JSONResponse(_error_body(401, "Incorrect API key provided."), status_code=401)
    try:
        body = orjson.loads(await request.body() or b"{}")
        if not isinstance(body, dict):
            raise ClientEventError("invalid_type", "The body must be a JSON object.")
        seconds = _expires_after(body.get("expires_after"))
        now = int(time.time())
        session_id = "sess_" + secrets.token_hex(8).upper()
        base = default_session(session_id, "gpt-realtime", now + seconds)
        update = body.get("session", {"type": "realtime"})
        session = merged_session(base, update) if update is not None else base
    except orjson.JSONDecodeError:
        return JSONResponse(_error_body(400, "Invalid JSON body.", "invalid_json"), status_code=400)
    except ClientEventError as exc:
        return JSONResponse(_error_body(400, exc.message, exc.code, exc.param), status_code=400)
    value = "ek_" + secrets.token_hex(16)
    state.forget_expired_secrets(now)
    state.client_secrets[value] = ClientSecret(now + seconds, session)
    return JSONResponse({"value": value, "expires_at": now + seconds, "session": session})


def _expires_after(value: object) -> int:
    if value is None:
        return 600
    seconds = value.get("seconds", 600) if isinstance(value, dict) else None
    if not isinstance(seconds, int) or isinstance(seconds, bool) or not 10 <= seconds <= 7200:
        raise ClientEventError(
            "invalid_value",
            "expires_after.seconds must be an integer between 10 and 7200.",
            "expires_after.seconds",
        )
    return seconds


async def _set_faults(request: Request, setter: Any, state: EmulatorState) -> Response:
    try:
        faults = faults_from_dict(orjson.loads(await request.body() or b"{}"))
    except (orjson.JSONDecodeError, ValueError) as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    setter(faults)
    return JSONResponse(state.to_dict())


# --- serving ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunningEmulator(Served):
    """A served emulator and its state (connections, faults, last credential)."""

    state: EmulatorState


class _DenialLogFilter(logging.Filter):
    """uvicorn's sans-I/O websocket protocol logs an error after every correctly sent denial
    response (401, 429, ...), which the emulator sends on purpose; drop that one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing handshake" not in record.getMessage()


def _quiet_denials() -> None:
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DenialLogFilter) for f in uvicorn_errors.filters):
        uvicorn_errors.addFilter(_DenialLogFilter())


def uvicorn_config(app: Starlette, **kwargs: Any) -> uvicorn.Config:
    """uvicorn settings for the emulator running as its own process."""
    _quiet_denials()
    return uvicorn.Config(app, **(_uvicorn_options(embedded=False) | kwargs))


def _uvicorn_options(*, embedded: bool) -> dict[str, Any]:
    """`embedded` leaves the host's logging configuration alone (uvicorn's loggers are
    process-wide: configuring ours would change the middle tier's)."""
    logging_options: dict[str, Any] = {"log_config": None, "log_level": None} if embedded else {}
    return {
        "ws": "websockets-sansio",
        "ws_per_message_deflate": False,
        "ws_max_size": 16 * 1024 * 1024,
        "lifespan": "off",
        "log_level": "warning",
    } | logging_options


@contextlib.asynccontextmanager
async def run_emulator(
    config: EmulatorConfig, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningEmulator]:
    """Serve the emulator until the block ends. Port 0 picks a free port (see `.port`)."""
    state = EmulatorState(faults=config.faults)
    _quiet_denials()
    app = create_emulator_app(config, state)
    async with serve(app, host, port, **_uvicorn_options(embedded=True)) as served:
        yield RunningEmulator(served.host, served.port, state)
