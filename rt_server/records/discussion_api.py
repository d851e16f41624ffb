"""``/api/discussions``: the proxy's discussions API, served from the conversation records.

Same admin access as ``/api/conversations`` (:func:`~rt_server.records.api.admin_store`);
the keys are the proxy's (``sessionId``, ``startedAt``, ...). Errors are the envelope of
:mod:`rt_server.http_errors`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from rt_server.http_errors import ApiError, documented
from rt_server.records import discussions as found
from rt_server.records.api import admin_store, checked_id, from_db
from rt_server.records.discussions import FILENAME, Discussion, Discussions, Line
from rt_server.records.store import RecordStore
from rt_server.records.views import utc
from rt_server.runtime import RuntimeDep


class StartRequest(BaseModel):
    title: str | None = Field(default=None, max_length=255)


class Started(BaseModel):
    sessionId: str = Field(description="open a WebSocket with ?discussion=<sessionId>")
    filename: str
    startedAt: datetime


class Saved(BaseModel):
    sessionId: str
    filename: str
    turns: int


class Summary(BaseModel):
    sessionId: str
    filename: str
    title: str | None
    startedAt: datetime
    endedAt: datetime | None = Field(description="None while a session of it is live")
    turns: int


class TurnLine(BaseModel):
    role: Literal["user", "assistant"]
    text: str
    at: datetime


class Content(BaseModel):
    filename: str
    turns: list[TurnLine]


async def discussion_service(
    runtime: RuntimeDep, store: Annotated[RecordStore, Depends(admin_store)]
) -> Discussions:
    service = runtime.records.discussions
    assert service is not None  # records are on: admin_store made sure
    return service


Service = Annotated[Discussions, Depends(discussion_service)]
SessionId = Annotated[str, Path(description="the discussion's sessionId")]

router = APIRouter(prefix="/api", tags=["discussions"], responses=documented(401, 403, 503))


@router.post("/discussions/start", status_code=201)
async def start_discussion(
    service: Service, request: Annotated[StartRequest | None, Body()] = None
) -> Started:
    """A new discussion; sessions opened with ``?discussion=<sessionId>`` record into it."""
    title = request.title if request is not None else None
    started = await from_db(found.start(service.store.engine, title))
    return Started(
        sessionId=started.id, filename=started.filename, startedAt=utc(started.started_at)
    )


@router.post("/discussions/test", status_code=201)
async def test_discussion(service: Service) -> Summary:
    """A discussion with two sample turns, its file written: the pipeline end to end."""
    id = await from_db(found.create_sample(service.store.engine))
    saved = await from_db(service.save(id))
    assert saved is not None
    return _summary(saved[0])


@router.post("/discussions/{sessionId}/save", responses=documented(400, 404))
async def save_discussion(service: Service, sessionId: SessionId) -> Saved:
    """Write the discussion's file now, with every turn so far."""
    saved = await from_db(service.save(checked_id(sessionId)))
    if saved is None:
        raise ApiError(404, "not_found", f"no discussion {sessionId!r}")
    discussion, turns = saved
    return Saved(sessionId=discussion.id, filename=discussion.filename, turns=len(turns))


@router.get("/discussions")
async def list_discussions(
    service: Service, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> list[Summary]:
    """Discussions, newest first."""
    return [_summary(d) for d in await from_db(found.list_discussions(service.store.engine, limit))]


@router.get(
    "/discussions/{filename}/content",
    response_model=None,
    responses={200: {"content": {"text/markdown": {}}}, **documented(404, 422)},
)
async def discussion_content(
    service: Service,
    filename: Annotated[str, Path(examples=["20260107-093000-3f9c0a1b2d4e.md"])],
    format: Annotated[Literal["markdown", "json"], Query()] = "markdown",
) -> Response | Content:
    """The transcript: Markdown, or ``?format=json`` its turns."""
    missing = ApiError(404, "not_found", f"no discussion file {filename!r}")
    if not FILENAME.fullmatch(filename):
        raise missing  # a plain name, never a path
    engine = service.store.engine
    discussion = await from_db(found.find(engine, filename=filename))
    if discussion is None:
        # A file saved before (the proxy's own discussions/ folder): served as it is.
        path = service.path_of(filename)
        if path is None or format == "json":
            raise missing
        return FileResponse(path, media_type="text/markdown; charset=utf-8")
    turns = await from_db(found.lines(engine, discussion.id))
    if format == "json":
        return Content(filename=filename, turns=[_line(t) for t in turns])
    text = found.markdown(discussion, turns)
    return Response(text, media_type="text/markdown; charset=utf-8")


def _summary(d: Discussion) -> Summary:
    return Summary(
        sessionId=d.id,
        filename=d.filename,
        title=d.title,
        startedAt=utc(d.started_at),
        endedAt=utc(d.ended_at) if d.ended_at is not None else None,
        turns=d.turns,
    )


def _line(turn: Line) -> TurnLine:
    role: Literal["user", "assistant"] = "user" if turn.role == "user" else "assistant"
    return TurnLine(role=role, text=turn.text, at=utc(turn.at))
