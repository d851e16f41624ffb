"""What the REST API shows of a conversation: JSON models and a Markdown transcript (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import Row

from rt_server.usage import token_split


class ConversationSummary(BaseModel):
    id: str
    started_at: datetime
    ended_at: datetime | None = Field(description="None while the session is live")
    dialect: str = Field(examples=["realtime", "conversation", "twilio"])
    backend: str
    profile: str
    peer: str
    close_code: int | None
    close_reason: str | None
    total_tokens: int = Field(description="sum of total_tokens over the responses")


class ConversationPage(BaseModel):
    conversations: list[ConversationSummary]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")


class Turn(BaseModel):
    seq: int
    at: datetime
    role: Literal["user", "assistant"]
    kind: Literal["user_text", "user_transcript", "assistant_text"] = Field(
        description="user_text: typed; user_transcript: spoken (transcribed); "
        "assistant_text: the reply's text or audio transcript"
    )
    text: str
    item_id: str | None = None
    cut: bool = Field(
        default=False,
        description="the reply ended before it was done (barge-in, interrupt, shutdown): "
        "text is what the client was sent of it",
    )


class ToolCall(BaseModel):
    seq: int
    at: datetime
    call_id: str
    name: str
    arguments: str
    output: str | None = Field(description="None if the tool never returned")
    server_label: str | None = Field(None, description="the MCP server the service called")
    error: str | None = None


class ErrorEntry(BaseModel):
    seq: int
    at: datetime
    code: str
    message: str


class Interruption(BaseModel):
    seq: int
    at: datetime
    item_id: str
    audio_end_ms: int


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_text_tokens: int = 0
    input_audio_tokens: int = 0
    input_image_tokens: int = 0
    input_cached_tokens: int = Field(0, description="part of the input tokens, billed less")
    output_text_tokens: int = 0
    output_audio_tokens: int = 0
    responses: list[dict[str, Any]] = Field(description="each response.done usage, as sent")


class Conversation(ConversationSummary):
    turns: list[Turn]
    tool_calls: list[ToolCall]
    errors: list[ErrorEntry]
    interruptions: list[Interruption]
    usage: Usage


def utc(value: datetime) -> datetime:
    """Aware UTC from the naive UTC the tables hold."""
    return value.replace(tzinfo=UTC)


def summary(row: Row[Any]) -> ConversationSummary:
    return ConversationSummary.model_validate(_summary_fields(row))


def _summary_fields(row: Row[Any]) -> dict[str, Any]:
    fields = dict(row._mapping)
    fields["started_at"] = utc(row.started_at)
    fields["ended_at"] = utc(row.ended_at) if row.ended_at is not None else None
    return fields


def conversation(row: Row[Any], events: list[Row[Any]]) -> Conversation:
    """The whole conversation: turns, tool calls (with their outputs), errors, usage."""
    turns: list[Turn] = []
    calls: dict[str, ToolCall] = {}
    errors: list[ErrorEntry] = []
    cuts: list[Interruption] = []
    usages: list[dict[str, Any]] = []
    for event in events:
        data, at, seq = event.data or {}, utc(event.at), event.seq
        match event.kind:
            case "user_text" | "user_transcript" | "assistant_text":
                turns.append(
                    Turn(
                        seq=seq,
                        at=at,
                        role=event.role,
                        kind=event.kind,
                        text=event.text or "",
                        item_id=data.get("item_id"),
                        cut=bool(data.get("cut")),
                    )
                )
            case "tool_call":
                calls[data.get("call_id", str(seq))] = ToolCall(
                    seq=seq,
                    at=at,
                    call_id=data.get("call_id", ""),
                    name=data.get("name", ""),
                    arguments=data.get("arguments", ""),
                    output=None,
                )
            case "mcp_call":
                calls[data.get("item_id", str(seq))] = ToolCall(
                    seq=seq,
                    at=at,
                    call_id=data.get("item_id", ""),
                    name=data.get("name", ""),
                    arguments=data.get("arguments", ""),
                    output=data.get("output"),
                    server_label=data.get("server_label"),
                    error=data.get("error"),
                )
            case "tool_result":
                call = calls.get(data.get("call_id", ""))
                if call is not None:
                    call.output = data.get("output")
            case "error":
                errors.append(
                    ErrorEntry(
                        seq=seq, at=at, code=data.get("code", ""), message=data.get("message", "")
                    )
                )
            case "truncated":
                cuts.append(
                    Interruption(
                        seq=seq,
                        at=at,
                        item_id=data.get("item_id", ""),
                        audio_end_ms=data.get("audio_end_ms", 0),
                    )
                )
            case "usage":
                usages.append(data)
    return Conversation(
        **_summary_fields(row),
        turns=turns,
        tool_calls=list(calls.values()),
        errors=errors,
        interruptions=cuts,
        usage=_usage(usages),
    )


def _usage(usages: list[dict[str, Any]]) -> Usage:
    def total(key: str) -> int:
        return sum(u.get(key, 0) for u in usages if isinstance(u.get(key, 0), int))

    split: dict[str, int] = {}
    for usage in usages:
        for (direction, kind), tokens in token_split(usage).items():
            key = f"{direction}_{kind}_tokens"
            split[key] = split.get(key, 0) + tokens
    return Usage(
        input_tokens=total("input_tokens"),
        output_tokens=total("output_tokens"),
        total_tokens=total("total_tokens"),
        responses=usages,
        **split,
    )


def markdown(talk: Conversation) -> str:
    """A readable transcript: a header, then turns, tool calls and errors in order."""
    lines = [
        f"# Conversation {talk.id}",
        "",
        f"- **Started:** {_time(talk.started_at)}",
        f"- **Ended:** {_time(talk.ended_at) if talk.ended_at else 'still live'}",
        f"- **Dialect:** {talk.dialect}; **backend:** {talk.backend}; **profile:** {talk.profile}",
    ]
    if talk.close_code is not None:
        lines.append(f"- **Closed:** {talk.close_code} ({talk.close_reason})")
    usage = talk.usage
    lines.append(
        f"- **Tokens:** {usage.total_tokens} (input {usage.input_tokens}: text "
        f"{usage.input_text_tokens}, audio {usage.input_audio_tokens}, cached "
        f"{usage.input_cached_tokens}; output {usage.output_tokens}: text "
        f"{usage.output_text_tokens}, audio {usage.output_audio_tokens})"
    )
    entries: list[tuple[int, str]] = []
    for turn in talk.turns:
        who = "User" if turn.role == "user" else "Assistant"
        how = " (spoken)" if turn.kind == "user_transcript" else " (cut)" if turn.cut else ""
        entries.append((turn.seq, f"**{who}**{how} _{_clock(turn.at)}_: {_inline(turn.text)}"))
    for call in talk.tool_calls:
        result = f" → `{_inline(call.output)}`" if call.output is not None else " (no result)"
        entries.append(
            (
                call.seq,
                f"> Tool `{call.name}` _{_clock(call.at)}_: "
                f"`{_inline(call.arguments)}`{result}",
            )
        )
    for error in talk.errors:
        entries.append(
            (
                error.seq,
                f"> **Error** `{error.code}` _{_clock(error.at)}_: {_inline(error.message)}",
            )
        )
    for cut in talk.interruptions:
        entries.append((cut.seq, f"> _(interrupted after {cut.audio_end_ms} ms of audio)_"))
    body = [text for _, text in sorted(entries)] or ["_(nothing was said)_"]
    return "\n\n".join(["\n".join(lines), *body]) + "\n"


def _inline(text: str) -> str:
    """One line: a transcript must not turn user text into Markdown structure."""
    return " ".join(text.split()).replace("`", "'")


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _clock(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%H:%M:%S")
