"""``/api/conversations``: list, read, export and delete conversation records.

Every endpoint needs the admin token (:func:`rt_server.access.admin_refusal`: compared in
constant time); without an ``ADMIN_TOKEN`` configured the API answers 403: it is never
open by default. Errors are the envelope of :mod:`rt_server.http_errors`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from loguru import logger
from sqlalchemy.exc import SQLAlchemyError

from rt_server.http_errors import ApiError, admin_refused, documented
from rt_server.records import queries, views
from rt_server.records.store import RecordStore, describe
from rt_server.runtime import RuntimeDep

_T = TypeVar("_T")
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_bearer = HTTPBearer(auto_error=False, description="ADMIN_TOKEN", scheme_name="AdminToken")


async def admin_store(
    request: Request,
    runtime: RuntimeDep,
    # Declares the scheme in the OpenAPI document; the check is admin_refusal's.
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> RecordStore:
    """The records store, for a caller with the admin token."""
    if (refused := admin_refused(request, runtime.settings)) is not None:
        raise refused
    store = runtime.records.store
    if store is None:
        raise ApiError(503, "records_disabled", "conversation records are off (RECORDS=off)")
    return store


Store = Annotated[RecordStore, Depends(admin_store)]
ConversationId = Annotated[str, Path(description="the session id", examples=["3f9c0a1b2d4e"])]

router = APIRouter(
    prefix="/api", tags=["conversation records"], responses=documented(401, 403, 503)
)


@router.get("/conversations", responses=documented(400, 422))
async def list_conversations(
    store: Store,
    limit: Annotated[int, Query(ge=1, le=200, description="page size")] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    offset: Annotated[int, Query(ge=0, le=100_000, description="rows to skip")] = 0,
    since: Annotated[datetime | None, Query(description="started at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="started before (ISO 8601)")] = None,
    dialect: Annotated[str | None, Query(max_length=32, examples=["realtime"])] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=200, description="text in a turn")] = (
        None
    ),
) -> views.ConversationPage:
    """Conversations, newest first; page with ``cursor`` (stable) or ``offset``."""
    if cursor is not None and offset:
        raise ApiError(400, "invalid_paging", "give either cursor or offset, not both")
    filters = queries.Filters(_naive_utc(since, "since"), _naive_utc(until, "until"), dialect, q)
    if filters.since and filters.until and filters.since > filters.until:
        raise ApiError(400, "invalid_filter", "since is after until")
    try:
        page = await from_db(
            queries.list_conversations(
                store.engine, filters, limit=limit, cursor=cursor, offset=offset
            )
        )
    except queries.BadCursor:
        raise ApiError(400, "invalid_cursor", "cursor is not one this API handed out") from None
    return views.ConversationPage(
        conversations=[views.summary(row) for row in page.rows], next_cursor=page.next_cursor
    )


@router.get("/conversations/{id}", responses=documented(400, 404))
async def get_conversation(store: Store, id: ConversationId) -> views.Conversation:
    """One conversation: turns, tool calls with their outputs, errors, usage."""
    return await _conversation(store, id)


@router.get(
    "/conversations/{id}/transcript.md",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/markdown": {}}}, **documented(400, 404)},
)
async def get_transcript(store: Store, id: ConversationId) -> Response:
    """The conversation as a readable Markdown transcript."""
    talk = await _conversation(store, id)
    return Response(views.markdown(talk), media_type="text/markdown; charset=utf-8")


@router.delete("/conversations/{id}", status_code=204, responses=documented(400, 404))
async def delete_conversation(store: Store, id: ConversationId) -> Response:
    """Delete a conversation and everything recorded of it."""
    if not await from_db(queries.delete_conversation(store.engine, checked_id(id))):
        raise ApiError(404, "not_found", f"no conversation {id!r}")
    return Response(status_code=204)


async def _conversation(store: RecordStore, id: str) -> views.Conversation:
    found = await from_db(queries.get_conversation(store.engine, checked_id(id)))
    if found is None:
        raise ApiError(404, "not_found", f"no conversation {id!r}")
    return views.conversation(*found)


async def from_db(work: Awaitable[_T]) -> _T:
    """Await a query: a database that is down or refuses is a 503, not a 500."""
    try:
        return await work
    except (SQLAlchemyError, OSError) as exc:
        logger.warning("records API: database error ({})", describe(exc))
        raise ApiError(503, "records_unavailable", "the records database is unavailable") from None


def checked_id(id: str) -> str:
    if not _ID.fullmatch(id):
        raise ApiError(400, "invalid_id", "a conversation id is 1-64 letters, digits, - or _")
    return id


def _naive_utc(value: datetime | None, name: str) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value  # naive times are taken as UTC
    try:
        return value.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:  # 0001-01-01T00:00+00:01 is before year 1 in UTC
        raise ApiError(400, "invalid_filter", f"{name} is out of range in UTC") from None
