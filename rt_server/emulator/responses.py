"""Turning a decided reply into the timed events of a response's lifecycle (pure).

A response is planned up front as a list of `Step`s: an event and when, in ms after
`response.created`, it would be sent at real-time pace. The connection's pump sends them at once
(`pace="fast"`) or on time (`pace="realtime"`); the conversation updates its state as steps are
sent, so a cancel knows exactly which words and how much audio the client got.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from rt_server.emulator.audio import AudioFormat, encode_output, sample_rate, speak_slice
from rt_server.emulator.errors import Event
from rt_server.emulator.items import Item, snapshot
from rt_server.emulator.replies import CallReply, McpCallReply, Reply

Mark = Literal["", "item", "done", "midpoint", "mcp"]

#: The longest reply, in words (about 3 minutes of speech at 3 words a second): a longer
#: one stops there with status "incomplete" (reason "max_output_tokens"), as the model's
#: output cap ends a real one.
MAX_REPLY_WORDS = 600


@dataclass(slots=True)
class Step:
    response_id: str
    at_ms: float
    event: Event
    mark: Mark = ""
    words: int = 0  # words of text/transcript the client has after this step
    audio_ms: int = 0  # ms of audio the client has after this step
    #: The event's ``delta``, made when it is sent (a reply's audio is never built whole,
    #: and the plan keeps none of it).
    lazy: Callable[[], str] | None = None

    def ready(self) -> Event:
        """The event to send: with its lazy ``delta`` made now, in a copy."""
        return self.event if self.lazy is None else {**self.event, "delta": self.lazy()}


@dataclass
class Plan:
    """Everything needed to run one response."""

    response: dict[str, Any]  # the GA response object, in_progress
    item: Item  # the final output item (completed)
    previous_item_id: str | None
    in_conversation: bool
    words: list[str] = field(default_factory=list)
    word_ms: int = 333
    audio_ms: int = 0
    steps: list[Step] = field(default_factory=list)
    cut: bool = False  # the reply was longer than MAX_REPLY_WORDS: it ends "incomplete"


@dataclass(frozen=True)
class Voice:
    audio: bool
    fmt: AudioFormat
    word_ms: int
    chunk_ms: int
    #: Audio per delta, cycled (the service's deltas vary in length); empty: ``chunk_ms``.
    chunks_ms: tuple[int, ...] = ()


def _chunks(total: int, rate: int, voice: Voice) -> list[tuple[int, int, int]]:
    """``(first sample, end sample, ms after the reply's start)`` of each audio delta."""
    sizes = voice.chunks_ms or (voice.chunk_ms,)
    chunks: list[tuple[int, int, int]] = []
    start = at = 0
    while start < total:
        ms = max(1, sizes[len(chunks) % len(sizes)])
        stop = min(total, start + max(1, rate * ms // 1000))
        chunks.append((start, stop, at))
        start, at = stop, at + ms
    return chunks


def plan_response(
    response: dict[str, Any],
    reply: Reply,
    item_id: str,
    *,
    previous_item_id: str | None,
    in_conversation: bool,
    voice: Voice,
) -> Plan:
    if isinstance(reply, CallReply):
        return _plan_call(response, reply, item_id, previous_item_id, in_conversation)
    if isinstance(reply, McpCallReply):
        return _plan_mcp_call(response, reply, item_id, previous_item_id, in_conversation)
    words = reply.text.split(maxsplit=MAX_REPLY_WORDS)  # never a list of every word
    text, cut = reply.text, len(words) > MAX_REPLY_WORDS
    if cut:  # the model's output cap: the reply ends there, "incomplete"
        words = words[:MAX_REPLY_WORDS]
        text = " ".join(words)
    content = (
        {"type": "output_audio", "transcript": text}
        if voice.audio
        else {"type": "output_text", "text": text}
    )
    status = "incomplete" if cut else "completed"
    item = _item(item_id, status, role="assistant", content=[content])
    plan = Plan(response, item, previous_item_id, in_conversation, words, voice.word_ms)
    plan.cut = cut
    _opening(plan)
    if voice.audio:
        _audio_body(plan, voice)
    else:
        _text_body(plan)
    return plan


def _item(item_id: str, status: str, **fields: Any) -> Item:
    return {"id": item_id, "type": "message", "object": "realtime.item", "status": status} | fields


def _opening(plan: Plan) -> None:
    rid = plan.response["id"]
    live = {**plan.item, "status": "in_progress"}
    if "content" in live:
        live["content"] = []
    add = plan.steps.append
    add(Step(rid, 0, {"type": "response.created", "response": dict(plan.response)}))
    added = {"type": "response.output_item.added", "response_id": rid, "output_index": 0}
    add(Step(rid, 0, added | {"item": snapshot(live)}, mark="item"))
    if plan.in_conversation:
        event = {"type": "conversation.item.added", "previous_item_id": plan.previous_item_id}
        add(Step(rid, 0, event | {"item": snapshot(live)}))


def _ids(plan: Plan) -> dict[str, Any]:
    return {
        "response_id": plan.response["id"],
        "item_id": plan.item["id"],
        "output_index": 0,
        "content_index": 0,
    }


def _text_body(plan: Plan) -> None:
    rid, ids, text = plan.response["id"], _ids(plan), plan.item["content"][0]["text"]
    part = {"type": "text", "text": ""}
    plan.steps.append(Step(rid, 0, {"type": "response.content_part.added", **ids, "part": part}))
    middle = len(plan.words) // 2
    for i, delta in enumerate(_deltas(plan.words)):
        event = {"type": "response.output_text.delta", **ids, "delta": delta}
        mark: Mark = "midpoint" if i == middle else ""
        plan.steps.append(Step(rid, i * plan.word_ms, event, mark, words=i + 1))
    end = max(0, len(plan.words) - 1) * plan.word_ms
    done = {"type": "response.output_text.done", **ids, "text": text}
    _closing(plan, end, [done], {"type": "text", "text": text})


def _audio_body(plan: Plan, voice: Voice) -> None:
    rid, ids, transcript = plan.response["id"], _ids(plan), plan.item["content"][0]["transcript"]
    rate = sample_rate(voice.fmt)
    total = len(plan.words) * (rate * voice.word_ms // 1000)  # samples of the whole reply
    plan.audio_ms = round(total * 1000 / rate)
    part = {"type": "audio", "transcript": ""}
    plan.steps.append(Step(rid, 0, {"type": "response.content_part.added", **ids, "part": part}))
    timed: list[tuple[float, int, Event, int, int]] = []
    for i, delta in enumerate(_deltas(plan.words)):
        event = {"type": "response.output_audio_transcript.delta", **ids, "delta": delta}
        timed.append((i * plan.word_ms, 0, event, i + 1, -1))
    chunks = _chunks(total, rate, voice)
    lazy: dict[int, Callable[[], str]] = {}
    for start, stop, chunk_at in chunks:
        event = {"type": "response.output_audio.delta", **ids, "delta": ""}
        lazy[id(event)] = partial(_audio_chunk, plan.words, voice, start, stop)
        timed.append((chunk_at, 1, event, -1, min(plan.audio_ms, round(stop * 1000 / rate))))
    timed.sort(key=lambda t: (t[0], t[1]))
    words = audio = 0
    midpoint_seen = False
    for at_ms, _, event, w, a in timed:
        words, audio = max(words, w), max(audio, a)
        mark: Mark = ""
        if a >= 0 and audio * 2 >= plan.audio_ms and not midpoint_seen:
            mark, midpoint_seen = "midpoint", True
        step = Step(rid, at_ms, event, mark, words, audio, lazy.get(id(event)))
        plan.steps.append(step)
    end = chunks[-1][2] if chunks else 0
    done = [
        {"type": "response.output_audio.done", **ids},
        {"type": "response.output_audio_transcript.done", **ids, "transcript": transcript},
    ]
    _closing(plan, end, done, {"type": "audio", "transcript": transcript})


def _audio_chunk(words: list[str], voice: Voice, start: int, stop: int) -> str:
    """Samples ``start:stop`` of the reply's audio, base64 in the output format."""
    pcm = speak_slice(words, sample_rate(voice.fmt), voice.word_ms, start, stop)
    return base64.b64encode(encode_output(pcm, voice.fmt)).decode()


def _deltas(words: list[str]) -> list[str]:
    """A word and its following space per delta; joined they give back the text."""
    return [w + " " for w in words[:-1]] + words[-1:]


def _closing(plan: Plan, end: float, dones: list[Event], part: dict[str, Any]) -> None:
    rid, ids = plan.response["id"], _ids(plan)
    words, audio = len(plan.words), plan.audio_ms
    for event in dones:
        plan.steps.append(Step(rid, end, event, words=words, audio_ms=audio))
    part_done = {"type": "response.content_part.done", **ids, "part": part}
    plan.steps.append(Step(rid, end, part_done, words=words, audio_ms=audio))
    _finish_item(plan, end, words, audio)


def _finish_item(plan: Plan, end: float, words: int, audio: int) -> None:
    rid = plan.response["id"]
    done = {"type": "response.output_item.done", "response_id": rid, "output_index": 0}
    plan.steps.append(Step(rid, end, done | {"item": snapshot(plan.item)}, "", words, audio))
    if plan.in_conversation:
        event = {"type": "conversation.item.done", "previous_item_id": plan.previous_item_id}
        plan.steps.append(Step(rid, end, event | {"item": snapshot(plan.item)}, "", words, audio))
    plan.steps.append(Step(rid, end, {"type": "response.done"}, "done", words, audio))


def _plan_call(
    response: dict[str, Any],
    reply: CallReply,
    item_id: str,
    previous_item_id: str | None,
    in_conversation: bool,
) -> Plan:
    call_id = "call_" + item_id.removeprefix("item_")
    item = {
        "id": item_id,
        "type": "function_call",
        "object": "realtime.item",
        "status": "completed",
        "name": reply.name,
        "call_id": call_id,
        "arguments": reply.arguments,
    }
    plan = Plan(response, item, previous_item_id, in_conversation)
    plan.item = {**item, "arguments": ""}
    _opening(plan)
    plan.item = item
    rid = response["id"]
    ids = {"response_id": rid, "item_id": item_id, "output_index": 0, "call_id": call_id}
    delta = {"type": "response.function_call_arguments.delta", **ids, "delta": reply.arguments}
    plan.steps.append(Step(rid, 0, delta, "midpoint"))
    done = {"type": "response.function_call_arguments.done", **ids, "name": reply.name}
    plan.steps.append(Step(rid, 0, done | {"arguments": reply.arguments}))
    _finish_item(plan, 0, 0, 0)
    return plan


def _plan_mcp_call(
    response: dict[str, Any],
    reply: McpCallReply,
    item_id: str,
    previous_item_id: str | None,
    in_conversation: bool,
) -> Plan:
    """An MCP call's response up to the call: the step marked ``mcp`` is where the service
    calls the server; :func:`finish_mcp_call` plans the rest once it answered."""
    item = {
        "id": item_id,
        "type": "mcp_call",
        "object": "realtime.item",
        "server_label": reply.server_label,
        "name": reply.name,
        "arguments": reply.arguments,
        "output": None,
        "error": None,
        "approval_request_id": None,
    }
    plan = Plan(response, item, previous_item_id, in_conversation)
    plan.item = {**item, "arguments": ""}
    _opening(plan)
    plan.item = item
    rid = response["id"]
    ids = {"response_id": rid, "item_id": item_id, "output_index": 0}
    delta = {"type": "response.mcp_call_arguments.delta", **ids, "delta": reply.arguments}
    plan.steps.append(Step(rid, 0, delta, "midpoint"))
    done = {"type": "response.mcp_call_arguments.done", **ids, "arguments": reply.arguments}
    plan.steps.append(Step(rid, 0, done))
    calling = {"type": "response.mcp_call.in_progress", "item_id": item_id, "output_index": 0}
    plan.steps.append(Step(rid, 0, calling, "mcp"))
    return plan


def finish_mcp_call(plan: Plan, output: str | None, error: str | None) -> list[Step]:
    """The rest of an MCP call's response, with what the server answered."""
    plan.item = {**plan.item, "output": output, "error": error}
    before = len(plan.steps)
    kind = "response.mcp_call.failed" if error is not None else "response.mcp_call.completed"
    event = {"type": kind, "item_id": plan.item["id"], "output_index": 0}
    plan.steps.append(Step(plan.response["id"], 0, event))
    _finish_item(plan, 0, 0, 0)
    return plan.steps[before:]


def usage(
    input_text: int,
    input_audio_ms: int,
    output_text: str,
    output_audio_ms: int,
    cached: tuple[int, int] = (0, 0),
    images: int = 0,
) -> dict[str, Any]:
    """Plausible token counts: ~4 characters per text token, one audio token per 50 ms,
    85 per image; ``cached``: the characters and audio ms of the input a previous response
    read."""
    in_text = input_text // 4 + 1
    in_audio = input_audio_ms // 50
    out_text = len(output_text) // 4 + 1
    out_audio = output_audio_ms // 50
    in_image = 85 * images
    cached_text, cached_audio = cached[0] // 4, cached[1] // 50
    return {
        "total_tokens": in_text + in_audio + in_image + out_text + out_audio,
        "input_tokens": in_text + in_audio + in_image,
        "output_tokens": out_text + out_audio,
        "input_token_details": {
            "text_tokens": in_text,
            "audio_tokens": in_audio,
            "image_tokens": in_image,
            "cached_tokens": cached_text + cached_audio,
            "cached_tokens_details": {
                "text_tokens": cached_text,
                "audio_tokens": cached_audio,
                "image_tokens": 0,
            },
        },
        "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
    }
