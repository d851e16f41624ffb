"""Reading and deleting records: what the REST API asks of the database.

Listing is newest first, by ``(started_at, id)``; a cursor is the last row's pair, so
pages stay stable while new conversations arrive.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, delete, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from rt_server.records.schema import conversations, events


class BadCursor(ValueError):
    """The cursor was not one this server handed out."""


@dataclass(frozen=True, slots=True)
class Filters:
    """What to list: naive-UTC time bounds, a dialect, a text to find in the turns."""

    since: datetime | None = None
    until: datetime | None = None
    dialect: str | None = None
    q: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Row[Any]]
    next_cursor: str | None


def encode_cursor(started_at: datetime, id: str) -> str:
    raw = f"{started_at.isoformat()}|{id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, id = raw.split("|", 1)
        return datetime.fromisoformat(when), id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadCursor(cursor) from None


async def list_conversations(
    engine: AsyncEngine, filters: Filters, *, limit: int, cursor: str | None, offset: int
) -> Page:
    """One page of conversations, newest first; raises :class:`BadCursor`."""
    c = conversations.c
    query = select(conversations).where(*_conditions(filters))
    if cursor is not None:
        at, id = decode_cursor(cursor)
        query = query.where(or_(c.started_at < at, and_(c.started_at == at, c.id < id)))
    query = query.order_by(c.started_at.desc(), c.id.desc()).offset(offset).limit(limit + 1)
    async with engine.connect() as conn:
        rows = list((await conn.execute(query)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more else None
    return Page(rows, encode_cursor(last.started_at, last.id) if last is not None else None)


def _conditions(filters: Filters) -> list[Any]:
    c = conversations.c
    found: list[Any] = []
    if filters.since is not None:
        found.append(c.started_at >= filters.since)
    if filters.until is not None:
        found.append(c.started_at < filters.until)
    if filters.dialect is not None:
        found.append(c.dialect == filters.dialect)
    if filters.q:
        pattern = "%" + _escape_like(filters.q) + "%"
        found.append(
            exists().where(
                events.c.conversation_id == c.id,
                events.c.role.is_not(None),
                events.c.text.ilike(pattern, escape="\\"),
            )
        )
    return found


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def get_conversation(engine: AsyncEngine, id: str) -> tuple[Row[Any], list[Row[Any]]] | None:
    """A conversation and its events in order, or None."""
    async with engine.connect() as conn:
        found = (await conn.execute(select(conversations).where(conversations.c.id == id))).first()
        if found is None:
            return None
        query = select(events).where(events.c.conversation_id == id).order_by(events.c.seq)
        return found, list((await conn.execute(query)).all())


async def delete_conversation(engine: AsyncEngine, id: str) -> bool:
    """Delete a conversation and its events; whether it existed."""
    async with engine.begin() as conn:
        await conn.execute(delete(events).where(events.c.conversation_id == id))
        result = await conn.execute(delete(conversations).where(conversations.c.id == id))
    return bool(result.rowcount)


async def count_conversations(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.scalar(select(func.count()).select_from(conversations))) or 0)
