"""Discussions: conversations as the proxy with conversation logging kept them, a Markdown
transcript file per discussion in ``DISCUSSIONS_DIR``.

A discussion is started by the API (``POST /api/discussions/start``; sessions opened with
``?discussion=<id>`` record into it) or is a session's own. Its turns are the turns of its
conversations, read from the records; :class:`Discussions` writes its file when a session
of it ends (auto-save, off the audio path: the observer only queues the id) and when the
API asks (``save``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from loguru import logger
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from rt_server.observe import SessionInfo
from rt_server.records.model import discussion_filename, utcnow
from rt_server.records.schema import conversations, discussions, events
from rt_server.records.store import RecordStore, describe
from rt_server.records.views import utc
from rt_server.translate import Note

#: A discussion's file name: a plain name, never a path.
FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,250}\.md")
SAMPLE_TURNS = (
    ("user", "This is a test discussion: can you hear me?"),
    ("assistant", "Yes. The discussions pipeline works end to end."),
)


@dataclass(frozen=True, slots=True)
class Discussion:
    id: str
    filename: str
    title: str | None
    started_at: datetime
    ended_at: datetime | None
    turns: int


@dataclass(frozen=True, slots=True)
class Line:
    """One turn of a discussion."""

    role: str
    text: str
    at: datetime


# ------------------------------------------------------------------------------ queries


def _listing() -> Any:
    d, c = discussions.c, conversations.c
    ended = (
        select(
            c.discussion_id.label("discussion_id"),
            func.max(c.ended_at).label("ended_at"),
            func.count().label("sessions"),
            func.count(c.ended_at).label("ended"),
        )
        .group_by(c.discussion_id)
        .subquery()
    )
    turns = (
        select(c.discussion_id.label("discussion_id"), func.count().label("turns"))
        .join(events, events.c.conversation_id == c.id)
        .where(events.c.role.is_not(None))
        .group_by(c.discussion_id)
        .subquery()
    )
    return select(
        d.id,
        d.filename,
        d.title,
        d.started_at,
        ended.c.ended_at,
        ended.c.sessions,
        ended.c.ended,
        func.coalesce(turns.c.turns, 0).label("turns"),
    ).select_from(
        discussions.outerjoin(ended, ended.c.discussion_id == d.id).outerjoin(
            turns, turns.c.discussion_id == d.id
        )
    )


def _discussion(row: Any) -> Discussion:
    # Ended once every session of it has ended (one started by the API and never joined
    # has not).
    ended = row.ended_at if row.sessions and row.ended == row.sessions else None
    return Discussion(row.id, row.filename, row.title, row.started_at, ended, int(row.turns))


async def list_discussions(engine: AsyncEngine, limit: int) -> list[Discussion]:
    """Newest first."""
    query = _listing().order_by(discussions.c.started_at.desc(), discussions.c.id.desc())
    async with engine.connect() as conn:
        rows = (await conn.execute(query.limit(limit))).all()
    return [_discussion(row) for row in rows]


async def find(
    engine: AsyncEngine, *, id: str | None = None, filename: str | None = None
) -> Discussion | None:
    """The discussion with this id or file name."""
    d = discussions.c
    query = _listing().where(d.id == id if id is not None else d.filename == filename)
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    return _discussion(row) if row is not None else None


async def exists(engine: AsyncEngine, id: str) -> bool:
    async with engine.connect() as conn:
        found = await conn.scalar(select(discussions.c.id).where(discussions.c.id == id))
    return found is not None


async def lines(engine: AsyncEngine, id: str) -> list[Line]:
    """The turns of every conversation of discussion ``id``, in order."""
    c, e = conversations.c, events.c
    query = (
        select(e.role, e.text, e.at)
        .join(conversations, c.id == e.conversation_id)
        .where(c.discussion_id == id, e.role.is_not(None))
        .order_by(c.started_at, c.id, e.seq)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [Line(row.role, row.text or "", row.at) for row in rows]


async def start(engine: AsyncEngine, title: str | None) -> Discussion:
    """A new discussion, for sessions to record into."""
    id, now = uuid.uuid4().hex[:12], utcnow()
    filename = discussion_filename(now, id)
    row = {"id": id, "filename": filename, "title": title, "started_at": now}
    async with engine.begin() as conn:
        await conn.execute(insert(discussions), row)
    return Discussion(id, filename, title, now, None, 0)


async def create_sample(engine: AsyncEngine) -> str:
    """A discussion with one finished conversation of :data:`SAMPLE_TURNS`; its id."""
    started = await start(engine, "Test discussion")
    now = utcnow()
    conversation = {
        "id": f"test-{started.id}",
        "started_at": now,
        "ended_at": now,
        "dialect": "test",
        "backend": "none",
        "profile": "default",
        "peer": "POST /api/discussions/test",
        "close_code": 1000,
        "close_reason": "test discussion",
        "discussion_id": started.id,
    }
    kinds = {"user": "user_text", "assistant": "assistant_text"}
    turns = [
        {
            "conversation_id": conversation["id"],
            "seq": seq,
            "at": now,
            "kind": kinds[role],
            "role": role,
            "text": text,
            "data": None,
        }
        for seq, (role, text) in enumerate(SAMPLE_TURNS, 1)
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(conversations), conversation)
        await conn.execute(insert(events), turns)
    return started.id


# ------------------------------------------------------------------------------ the file


def markdown(discussion: Discussion, turns: list[Line]) -> str:
    """The transcript: a title, when it started, then one paragraph per turn."""
    title = discussion.title or f"Discussion {discussion.id}"
    header = [
        f"# {_inline(title)}",
        "",
        f"- **Session:** {discussion.id}",
        f"- **Started:** {utc(discussion.started_at).isoformat(timespec='seconds')}",
    ]
    if discussion.ended_at is not None:
        header.append(f"- **Ended:** {utc(discussion.ended_at).isoformat(timespec='seconds')}")
    body = [
        f"**{'User' if t.role == 'user' else 'Assistant'}** _{utc(t.at):%H:%M:%S}_: "
        f"{_inline(t.text)}"
        for t in turns
    ] or ["_(nothing was said yet)_"]
    return "\n\n".join(["\n".join(header), *body]) + "\n"


def _inline(text: str) -> str:
    return " ".join(text.split()).replace("`", "'")


def _write(path: Path, text: str) -> None:
    """Replace ``path`` at once: a reader never sees half a transcript.

    Each write has its own partial file: a save and a session's end may write the same
    discussion at once (in threads), and the later rename simply wins.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


# ------------------------------------------------------------------------------ the service


class Discussions:
    """Writes discussion files: on request, and when a session ends (an observer)."""

    def __init__(self, store: RecordStore, directory: Path | None) -> None:
        self.store = store
        self.directory = directory
        self._ended: asyncio.Queue[str] = asyncio.Queue()

    # Observer: only queues (never blocks the session).

    def session_started(self, info: SessionInfo) -> None:
        pass

    def session_note(self, info: SessionInfo, note: Note) -> None:
        pass

    def session_ended(self, info: SessionInfo, close_code: int, reason: str) -> None:
        if self.directory is not None:
            self._ended.put_nowait(info.discussion or info.id)

    async def save(self, id: str) -> tuple[Discussion, list[Line]] | None:
        """Write discussion ``id``'s file now (with every turn recorded so far)."""
        await self.store.flush()
        engine = self.store.engine
        discussion = await find(engine, id=id)
        if discussion is None:
            return None
        turns = await lines(engine, id)
        if self.directory is not None:
            text = markdown(discussion, turns)
            await asyncio.to_thread(_write, self.directory / discussion.filename, text)
        return discussion, turns

    async def autosave(self) -> None:
        """Write the file of each discussion whose session ended, until cancelled."""
        while True:
            id = await self._ended.get()
            try:
                await self.save(id)
            except Exception as exc:
                logger.warning("discussions: auto-save of {} failed ({})", id, describe(exc))

    def path_of(self, filename: str) -> Path | None:
        """The saved file ``filename`` (a plain name), if there is one."""
        if self.directory is None or not FILENAME.fullmatch(filename):
            return None
        path = self.directory / filename
        with contextlib.suppress(OSError):
            if path.is_file():
                return path
        return None
