"""One emulated Realtime session as a pure state machine: client event in, server events out.

No sockets, no clocks, no awaits: `receive()` takes a client frame's text and returns the events to
send now; a response is planned up front and its events are pulled one by one with `next_step()`
(the connection paces them); `cancel()` ends the active response. Audio time is counted in samples
the client appended, so VAD results are deterministic. Everything is in the GA shape; the beta
dialect is converted at the edges by `dialect.py` (incoming here, outgoing in the server).
"""

from __future__ import annotations

import base64
import copy
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from rt_server.emulator.audio import Vad, VadEvent, decode_input, sample_rate
from rt_server.emulator.config import EmulatorConfig
from rt_server.emulator.dialect import from_beta
from rt_server.emulator.errors import (
    ClientEventError,
    Event,
    error_event,
    invalid_type,
    invalid_value,
    missing,
    type_name,
)
from rt_server.emulator.items import (
    Item,
    check_conversation_param,
    normalize_item,
    not_found,
    require_item_id,
    snapshot,
)
from rt_server.emulator.replies import Reply, TextReply, decide_reply, item_text
from rt_server.emulator.responses import (
    Plan,
    Step,
    Voice,
    finish_mcp_call,
    plan_response,
    usage,
)
from rt_server.emulator.session_config import (
    Effective,
    check_format,
    check_modalities,
    check_tools,
    check_voice,
    default_session,
    merged_session,
    tool_names,
)

MIN_COMMIT_MS = 100
IDLE_PROMPT = "Are you still there?"
SESSION_LIFETIME_S = 30 * 60


class Ids:
    """Ids like the service's (`item_...`, `resp_...`), unique per session and readable in logs."""

    def __init__(self) -> None:
        self._tag = secrets.token_hex(4).upper()
        self._n = 0

    def new(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._tag}{self._n:05d}"


@dataclass
class Active:
    """The response being sent, and what of it the client has got so far."""

    plan: Plan
    live: Item  # the item as the conversation holds it while it is produced
    input_chars: int
    input_audio_ms: int
    cached: tuple[int, int] = (0, 0)  # of the input: chars and audio ms seen by the last one
    images: int = 0  # input_image parts the response reads
    sent: Step | None = None
    announced: bool = False  # response.output_item.added has been sent

    @property
    def id(self) -> str:
        return str(self.plan.response["id"])


@dataclass(frozen=True)
class McpRequest:
    """I/O the connection does for the conversation: list an MCP server's tools, or call
    one; the answer comes back through ``mcp_listed`` / ``mcp_called``."""

    kind: str  # "list" or "call"
    server: dict[str, Any]  # the session's {"type": "mcp", ...} tool
    item_id: str
    name: str = ""
    arguments: str = "{}"


@dataclass
class InputBuffer:
    position_ms: float = 0.0  # all audio appended in the session
    idle_since_ms: float = 0.0  # the end of the last turn (user's or assistant's)
    buffered_ms: float = 0.0  # since the last commit or clear
    speech_item: str | None = None
    speech_start_ms: int = 0
    item_ms: dict[str, int] = field(default_factory=dict)


class Conversation:
    def __init__(
        self,
        config: EmulatorConfig,
        *,
        model: str,
        beta: bool = False,
        now: float = 0.0,
        session: dict[str, Any] | None = None,
        fail_transcription: bool = False,
    ) -> None:
        """`session`: a configuration made earlier (a client secret's); default otherwise.
        `fail_transcription`: every input transcription fails (a fault)."""
        self._config = config
        self._fail_transcription = fail_transcription
        self._beta = beta
        self._ids = Ids()
        self._conversation_id = self._ids.new("conv")
        self.session = default_session(self._ids.new("sess"), model, int(now) + SESSION_LIFETIME_S)
        if session is not None:
            self.session = copy.deepcopy(session) | {"id": self.session["id"]}
        self._eff = Effective.of(self.session)
        self.temperature = 0.8  # a beta session's sampling temperature (GA has none)
        self.items: list[Item] = []
        self._heard: dict[str, str] = {}  # what the model "heard" in user audio items
        self._audio: dict[str, tuple[int, int]] = {}  # assistant item -> (audio ms, ms per word)
        self._steps: deque[Step] = deque()
        self._prompt_seen = (0, 0)  # input chars and audio ms of the last response
        self.mcp_requests: list[McpRequest] = []  # taken and done by the connection
        self._mcp_tools: dict[str, str] = {}  # listed MCP tool -> its server label
        self._mcp_listed: dict[str, str] = {}  # server label -> the URL listed
        self._active: Active | None = None
        self._input = InputBuffer()
        self._vad = self._new_vad()
        self._handlers: dict[str, Callable[[dict[str, Any]], list[Event]]] = {
            "session.update": self._session_update,
            "input_audio_buffer.append": self._append,
            "input_audio_buffer.commit": self._commit_buffer,
            "input_audio_buffer.clear": self._clear_buffer,
            "conversation.item.create": self._item_create,
            "conversation.item.truncate": self._item_truncate,
            "conversation.item.delete": self._item_delete,
            "conversation.item.retrieve": self._item_retrieve,
            "response.create": self._response_create,
            "response.cancel": self._response_cancel,
        }

    # --- the interface the connection uses ----------------------------------------------------

    def start(self) -> list[Event]:
        return [{"type": "session.created", "session": copy.deepcopy(self.session)}]

    def receive(self, text: str | bytes) -> list[Event]:
        """Handle one client frame; errors become `error` events and the session goes on."""
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:
            return [
                error_event(
                    "invalid_json",
                    "We could not parse the JSON body of your request. Make sure the event is "
                    "valid JSON.",
                )
            ]
        return self.handle(event)

    def handle(self, event: object) -> list[Event]:
        event_id = event.get("event_id") if isinstance(event, dict) else None
        try:
            return self._dispatch(event)
        except ClientEventError as exc:
            return [
                error_event(
                    exc.code,
                    exc.message,
                    param=exc.param,
                    event_id=event_id if isinstance(event_id, str) else None,
                )
            ]

    @property
    def active_response_id(self) -> str | None:
        return self._active.id if self._active else None

    @property
    def has_steps(self) -> bool:
        return bool(self._steps)

    def peek_step(self) -> Step | None:
        return self._steps[0] if self._steps else None

    def next_step(self) -> Step | None:
        """The next planned response event; the conversation takes it as sent."""
        if not self._steps:
            return None
        step = self._steps.popleft()
        active = self._active
        if active is not None and step.response_id == active.id:
            active.sent = step
            if step.mark == "item":
                self._announce(active)
            elif step.mark == "done":
                self._complete(active, step)
            elif step.mark == "mcp":
                item = active.plan.item
                server = self._mcp_server(str(item["server_label"]))
                self.mcp_requests.append(
                    McpRequest("call", server, item["id"], item["name"], item["arguments"])
                )
        return step

    def take_mcp_requests(self) -> list[McpRequest]:
        requests, self.mcp_requests = self.mcp_requests, []
        return requests

    def _mcp_server(self, label: str) -> dict[str, Any]:
        return next((s for s in self._eff.mcp_servers if s["server_label"] == label), {})

    def mcp_listed(
        self, item_id: str, tools: list[dict[str, Any]] | None, error: str | None
    ) -> list[Event]:
        """An MCP server's tools (or why they could not be listed)."""
        index = next((i for i, item in enumerate(self.items) if item["id"] == item_id), None)
        if index is None:
            return []
        item = self.items[index]
        previous = self.items[index - 1]["id"] if index else None
        if error is not None:
            del self._mcp_listed[item["server_label"]]
            return [{"type": "mcp_list_tools.failed", "item_id": item_id}]
        allowed = self._mcp_server(item["server_label"]).get("allowed_tools")
        item["tools"] = [t for t in tools or [] if allowed is None or t["name"] in allowed]
        for tool in item["tools"]:
            self._mcp_tools[tool["name"]] = item["server_label"]
        done = {"type": "conversation.item.done", "previous_item_id": previous}
        return [
            {"type": "mcp_list_tools.completed", "item_id": item_id},
            done | {"item": snapshot(item)},
        ]

    def mcp_called(self, item_id: str, output: str | None, error: str | None) -> None:
        """An MCP server answered a call: the rest of its response is planned."""
        active = self._active
        if active is None or active.plan.item["id"] != item_id:
            return  # the response was cancelled meanwhile
        self._steps.extend(finish_mcp_call(active.plan, output, error))

    def cancel(self, reason: str) -> list[Event]:
        """End the active response now (barge-in or `response.cancel`)."""
        active = self._active
        if active is None:
            return []
        self._active = None
        self._steps = deque(s for s in self._steps if s.response_id != active.id)
        plan = active.plan
        out = [] if active.sent else [plan.steps[0].event]
        words = active.sent.words if active.sent else 0
        audio_ms = active.sent.audio_ms if active.sent else 0
        final = _partial(plan, words)
        output: list[Item] = []
        if active.announced:
            active.live.clear()
            active.live.update(snapshot(final))
            if plan.audio_ms:
                self._audio[final["id"]] = (audio_ms, plan.word_ms)
            out.append(_item_done_event(plan, final))
            if plan.in_conversation:
                item_done = {
                    "type": "conversation.item.done",
                    "previous_item_id": plan.previous_item_id,
                }
                out.append(item_done | {"item": snapshot(final)})
            output = [snapshot(final)]
        response = plan.response | {
            "status": "cancelled",
            "status_details": {"type": "cancelled", "reason": reason, "error": None},
            "output": output,
            "usage": usage(
                active.input_chars,
                active.input_audio_ms,
                _text(final),
                audio_ms,
                active.cached,
                active.images,
            ),
        }
        out.append({"type": "response.done", "response": response})
        return out

    # --- dispatch -------------------------------------------------------------------------------

    def _dispatch(self, event: object) -> list[Event]:
        if not isinstance(event, dict):
            raise ClientEventError(
                "invalid_type",
                f"Invalid type for event: expected an object, but got {type_name(event)} instead.",
            )
        if self._beta:
            session = event.get("session")
            if event.get("type") == "session.update" and isinstance(session, dict):
                temperature = session.get("temperature")
                if isinstance(temperature, int | float):
                    self.temperature = float(temperature)
            event = from_beta(event)
        kind = event.get("type")
        if kind is None:
            raise missing("type")
        if not isinstance(kind, str):
            raise invalid_type("type", "a string", kind)
        handler = self._handlers.get(kind)
        if handler is None:
            raise invalid_value("type", kind, list(self._handlers))
        return handler(event)

    # --- session --------------------------------------------------------------------------------

    def _session_update(self, event: dict[str, Any]) -> list[Event]:
        if "session" not in event:
            raise missing("session")
        self.session = merged_session(self.session, event["session"])
        effective = Effective.of(self.session)
        if (effective.vad, effective.input_format) != (self._eff.vad, self._eff.input_format):
            self._eff = effective
            self._input.speech_item = None
            self._vad = self._new_vad()
        self._eff = effective
        out: list[Event] = [{"type": "session.updated", "session": copy.deepcopy(self.session)}]
        return out + self._list_mcp_tools()

    def _list_mcp_tools(self) -> list[Event]:
        """An ``mcp_list_tools`` item for each MCP server not yet listed (the tools follow)."""
        out: list[Event] = []
        for server in self._eff.mcp_servers:
            label, url = server["server_label"], server["server_url"]
            if self._mcp_listed.get(label) == url:
                continue
            self._mcp_listed[label] = url
            item_id = self._ids.new("mcpl")
            item: Item = {"id": item_id, "type": "mcp_list_tools", "server_label": label}
            item["tools"] = []
            added = self._insert(item, len(self.items))[0]
            out += [added, {"type": "mcp_list_tools.in_progress", "item_id": item_id}]
            self.mcp_requests.append(McpRequest("list", server, item_id))
        return out

    def _new_vad(self) -> Vad | None:
        if self._eff.vad is None or self._config.echo_audio:
            return None
        rate = sample_rate(self._eff.input_format)
        return Vad(rate, self._eff.vad, int(self._input.position_ms))

    # --- input audio ----------------------------------------------------------------------------

    def _append(self, event: dict[str, Any]) -> list[Event]:
        audio = event.get("audio")
        if not isinstance(audio, str):
            raise missing("audio") if audio is None else invalid_type("audio", "a string", audio)
        if self._config.echo_audio:
            return [_echo(audio)]
        try:
            raw = base64.b64decode(audio, validate=True)
        except ValueError:  # binascii.Error, or a string that is not ASCII
            raise ClientEventError(
                "invalid_value", "Invalid 'audio'. Expected base64-encoded audio bytes.", "audio"
            ) from None
        samples = decode_input(raw, self._eff.input_format)
        ms = samples.size * 1000 / sample_rate(self._eff.input_format)
        self._input.position_ms += ms
        self._input.buffered_ms += ms
        if self._vad is None:
            return []
        out: list[Event] = []
        for change in self._vad.feed(samples):
            out += self._speech_changed(change)
        return out + self._idle_check()

    def _idle_check(self) -> list[Event]:
        """``idle_timeout_ms`` of audio without a turn: the server prompts the user."""
        timeout, buffer = self._eff.idle_timeout_ms, self._input
        if not timeout or buffer.speech_item is not None or self._active or self._steps:
            return []
        if buffer.position_ms - buffer.idle_since_ms < timeout:
            return []
        item_id = self._ids.new("item")
        triggered = {
            "type": "input_audio_buffer.timeout_triggered",
            "audio_start_ms": round(buffer.idle_since_ms),
            "audio_end_ms": round(buffer.position_ms),
            "item_id": item_id,
        }
        buffer.idle_since_ms = buffer.position_ms
        return [triggered, *self._commit(item_id, 0), *self._start_response({}, IDLE_PROMPT)]

    def _speech_changed(self, change: VadEvent) -> list[Event]:
        self._input.idle_since_ms = self._input.position_ms
        if change.kind == "start":
            item_id = self._input.speech_item = self._ids.new("item")
            self._input.speech_start_ms = change.ms
            out: list[Event] = [
                {
                    "type": "input_audio_buffer.speech_started",
                    "audio_start_ms": change.ms,
                    "item_id": item_id,
                }
            ]
            active = self._active
            if active and self._eff.interrupt_response and active.plan.in_conversation:
                out += self.cancel("turn_detected")
            return out
        item_id = self._input.speech_item or self._ids.new("item")
        self._input.speech_item = None
        out = [
            {
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": change.ms,
                "item_id": item_id,
            }
        ]
        silence = self._eff.vad.silence_duration_ms if self._eff.vad else 0
        out += self._commit(item_id, max(0, change.ms - silence - self._input.speech_start_ms))
        if self._eff.create_response and self._active is None:
            out += self._start_response({})
        return out

    def _commit(self, item_id: str, speech_ms: int) -> list[Event]:
        previous = self.items[-1]["id"] if self.items else None
        transcript = f"[speech {speech_ms / 1000:.2f} s]"
        self._heard[item_id] = transcript
        self._input.item_ms[item_id] = speech_ms
        self._input.buffered_ms = 0.0
        item: Item = {
            "id": item_id,
            "type": "message",
            "object": "realtime.item",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        committed = {"type": "input_audio_buffer.committed", "previous_item_id": previous}
        out = [committed | {"item_id": item_id}, *self._insert(item, len(self.items))]
        if self._eff.transcription and self._fail_transcription:
            out.append(_transcription_failed(item_id))
        elif self._eff.transcription:
            item["content"][0]["transcript"] = transcript
            out += _transcription_events(item_id, transcript, speech_ms)
        return out

    def _commit_buffer(self, event: dict[str, Any]) -> list[Event]:
        buffered = self._input.buffered_ms
        if buffered < MIN_COMMIT_MS:
            raise ClientEventError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {buffered:.2f}ms of audio.",
            )
        item_id = self._input.speech_item or self._ids.new("item")
        self._input.speech_item = None
        self._vad = self._new_vad()
        return self._commit(item_id, round(buffered))

    def _clear_buffer(self, event: dict[str, Any]) -> list[Event]:
        self._input.buffered_ms = 0.0
        self._input.speech_item = None
        self._vad = self._new_vad()
        return [{"type": "input_audio_buffer.cleared"}]

    # --- conversation items ---------------------------------------------------------------------

    def _insert(self, item: Item, index: int) -> list[Event]:
        previous = self.items[index - 1]["id"] if index > 0 else None
        self.items.insert(index, item)
        added = {"type": "conversation.item.added", "previous_item_id": previous}
        done = {"type": "conversation.item.done", "previous_item_id": previous}
        return [added | {"item": snapshot(item)}, done | {"item": snapshot(item)}]

    def _index(self, item_id: str) -> int:
        for index, item in enumerate(self.items):
            if item["id"] == item_id:
                return index
        raise not_found(item_id)

    def _item_create(self, event: dict[str, Any]) -> list[Event]:
        if "item" not in event:
            raise missing("item")
        previous = event.get("previous_item_id")
        if previous is not None and not isinstance(previous, str):
            raise invalid_type("previous_item_id", "a string", previous)
        item = normalize_item(event["item"], "item", self._ids.new("item"))
        if any(i["id"] == item["id"] for i in self.items):
            raise ClientEventError(
                "item_already_exists", f"Item with id '{item['id']}' already exists.", "item.id"
            )
        if previous is None:
            index = len(self.items)
        elif previous == "root":
            index = 0
        else:
            index = self._index(previous) + 1
        return self._insert(item, index)

    def _item_truncate(self, event: dict[str, Any]) -> list[Event]:
        item_id = require_item_id(event)
        content_index = _int_field(event, "content_index")
        end_ms = _int_field(event, "audio_end_ms")
        item = self.items[self._index(item_id)]
        content = item.get("content") or []
        if item.get("role") != "assistant" or not 0 <= content_index < len(content):
            raise ClientEventError(
                "invalid_value", "Only assistant audio content can be truncated.", "content_index"
            )
        if content[content_index].get("type") != "output_audio":
            raise ClientEventError(
                "invalid_value", "Only assistant audio content can be truncated.", "content_index"
            )
        have_ms, word_ms = self._audio.get(item_id, (0, 1))
        if end_ms > have_ms:
            raise ClientEventError(
                "invalid_value",
                f"Audio content of {have_ms}ms is already shorter than {end_ms}ms.",
                "audio_end_ms",
            )
        self._audio[item_id] = (end_ms, word_ms)
        words = str(content[content_index].get("transcript") or "").split()
        content[content_index]["transcript"] = " ".join(words[: -(-end_ms // word_ms)])
        truncated = {"type": "conversation.item.truncated", "item_id": item_id}
        return [truncated | {"content_index": content_index, "audio_end_ms": end_ms}]

    def _item_delete(self, event: dict[str, Any]) -> list[Event]:
        item_id = require_item_id(event)
        del self.items[self._index(item_id)]
        return [{"type": "conversation.item.deleted", "item_id": item_id}]

    def _item_retrieve(self, event: dict[str, Any]) -> list[Event]:
        item = self.items[self._index(require_item_id(event))]
        return [{"type": "conversation.item.retrieved", "item": snapshot(item)}]

    # --- responses ------------------------------------------------------------------------------

    def _response_create(self, event: dict[str, Any]) -> list[Event]:
        params = event.get("response", {})
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise invalid_type("response", "an object", params)
        if self._active is not None:
            raise ClientEventError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self._active.id}. "
                "Wait until the response is finished before creating a new one.",
            )
        return self._start_response(params)

    def _response_cancel(self, event: dict[str, Any]) -> list[Event]:
        wanted = event.get("response_id")
        if self._active is None or (wanted is not None and wanted != self._active.id):
            raise ClientEventError(
                "response_cancel_not_active", "Cancellation failed: no active response found."
            )
        return self.cancel("client_cancelled")

    def _start_response(self, params: dict[str, Any], says: str | None = None) -> list[Event]:
        """Plan a response (``says``: its text, whatever the conversation holds)."""
        options = self._response_options(params)
        context = options["context"]
        reply: Reply = (
            TextReply(says)
            if says is not None
            else decide_reply(
                context,
                instructions=options["instructions"],
                rules=self._config.rules,
                tools=options["tools"],
                heard=self._heard,
                tool_choice=params.get("tool_choice", self._eff.tool_choice),
                mcp_tools=self._mcp_tools,
            )
        )
        in_conversation = params.get("conversation", "auto") != "none"
        response = {
            "object": "realtime.response",
            "id": self._ids.new("resp"),
            "status": "in_progress",
            "status_details": None,
            "output": [],
            "conversation_id": self._conversation_id if in_conversation else None,
            "output_modalities": options["modalities"],
            "max_output_tokens": params.get("max_output_tokens", self.session["max_output_tokens"]),
            "audio": {"output": {"format": options["format"], "voice": options["voice"]}},
            "usage": None,
            "metadata": params.get("metadata"),
        }
        voice = Voice(
            audio="audio" in options["modalities"],
            fmt=options["format"]["type"],
            word_ms=max(1, round(1000 / self._config.words_per_second)),
            chunk_ms=self._config.audio_chunk_ms,
            chunks_ms=self._config.audio_chunks_ms,
        )
        previous = self.items[-1]["id"] if in_conversation and self.items else None
        plan = plan_response(
            response,
            reply,
            self._ids.new("item"),
            previous_item_id=previous,
            in_conversation=in_conversation,
            voice=voice,
        )
        chars = len(options["instructions"]) + sum(len(item_text(i, self._heard)) for i in context)
        audio_in = sum(self._input.item_ms.get(str(i.get("id")), 0) for i in context)
        live = snapshot(plan.steps[1].event["item"])
        # The service caches a prompt's prefix: what the last response read is cached now.
        seen_chars, seen_ms = self._prompt_seen
        cached = (min(seen_chars, chars), min(seen_ms, audio_in))
        self._prompt_seen = (chars, audio_in)
        images = sum(
            part.get("type") == "input_image" for i in context for part in i.get("content") or []
        )
        self._active = Active(plan, live, chars, audio_in, cached, images)
        self._steps.extend(plan.steps)
        return []

    def _response_options(self, params: dict[str, Any]) -> dict[str, Any]:
        """The effective settings of one response: its overrides over the session's."""
        instructions = params.get("instructions", self._eff.instructions)
        if not isinstance(instructions, str):
            raise invalid_type("response.instructions", "a string", instructions)
        modalities = params.get("output_modalities", self.session["output_modalities"])
        check_modalities(modalities, "response.output_modalities")
        check_conversation_param(params.get("conversation"))
        metadata = params.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise invalid_type("response.metadata", "an object", metadata)
        tools = self._eff.tool_names
        if "tools" in params:
            check_tools(params["tools"], "response.tools")
            tools = tool_names(params["tools"])
        output = self.session["audio"]["output"]
        override = (params.get("audio") or {}).get("output") or {}
        fmt = override.get("format", output["format"])
        check_format(fmt, "response.audio.output.format")
        voice = override.get("voice", output["voice"])
        check_voice(voice, "response.audio.output.voice")
        return {
            "instructions": instructions,
            "modalities": ["audio"] if "audio" in modalities else ["text"],
            "tools": tools,
            "format": fmt,
            "voice": voice,
            "context": self._context(params),
        }

    def _context(self, params: dict[str, Any]) -> list[Item]:
        if "input" not in params:
            return list(self.items) if params.get("conversation", "auto") != "none" else []
        entries = params["input"]
        if not isinstance(entries, list):
            raise invalid_type("response.input", "an array", entries)
        context = []
        for index, entry in enumerate(entries):
            if isinstance(entry, dict) and entry.get("type") == "item_reference":
                context.append(self.items[self._index(str(entry.get("id")))])
            else:
                context.append(normalize_item(entry, f"response.input[{index}]", "item_input"))
        return context

    def _announce(self, active: Active) -> None:
        active.announced = True
        if active.plan.in_conversation:
            self.items.append(active.live)

    def _complete(self, active: Active, step: Step) -> None:
        self._active = None
        plan = active.plan
        active.live.clear()
        active.live.update(snapshot(plan.item))
        if plan.audio_ms:
            self._audio[plan.item["id"]] = (plan.audio_ms, plan.word_ms)
        cut = {"type": "incomplete", "reason": "max_output_tokens"}
        step.event["response"] = plan.response | {
            "status": "incomplete" if plan.cut else "completed",
            "status_details": cut if plan.cut else None,
            "output": [snapshot(plan.item)],
            "usage": usage(
                active.input_chars,
                active.input_audio_ms,
                _text(plan.item),
                plan.audio_ms,
                active.cached,
                active.images,
            ),
        }
        self._steps.append(Step(active.id, step.at_ms, _rate_limits(step.event["response"])))
        self._input.idle_since_ms = self._input.position_ms
        if plan.item["type"] == "mcp_call" and plan.in_conversation:
            self._start_response({})  # the model goes on with what the server answered


def _int_field(event: dict[str, Any], key: str) -> int:
    if key not in event:
        raise missing(key)
    value = event[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid_type(key, "an integer", value)
    if value < 0:
        raise ClientEventError(
            "integer_below_min_value", f"Invalid '{key}': integer below minimum value 0.", key
        )
    return value


def _partial(plan: Plan, words: int) -> Item:
    """The output item as far as the client got it."""
    item = snapshot(plan.item)
    item["status"] = "incomplete"
    for part in item.get("content", []):
        key = "transcript" if part["type"] == "output_audio" else "text"
        part[key] = " ".join(plan.words[:words])
    return item


def _text(item: Item) -> str:
    parts = item.get("content") or []
    return " ".join(str(p.get("text") or p.get("transcript") or "") for p in parts) + str(
        item.get("arguments", "")
    )


def _item_done_event(plan: Plan, item: Item) -> Event:
    done = {"type": "response.output_item.done", "response_id": plan.response["id"]}
    return done | {"output_index": 0, "item": snapshot(item)}


def _echo(audio: str) -> Event:
    return {
        "type": "response.output_audio.delta",
        "response_id": "resp_echo",
        "item_id": "item_echo",
        "output_index": 0,
        "content_index": 0,
        "delta": audio,
    }


def _transcription_events(item_id: str, transcript: str, speech_ms: int) -> list[Event]:
    """A delta per word (as the streaming transcription models send), then the whole."""
    ids = {"item_id": item_id, "content_index": 0}
    kind = "conversation.item.input_audio_transcription.delta"
    words = transcript.split(" ")
    pieces = [word if i == 0 else " " + word for i, word in enumerate(words)]
    return [
        *({"type": kind, **ids, "delta": piece} for piece in pieces),
        {
            "type": "conversation.item.input_audio_transcription.completed",
            **ids,
            "transcript": transcript,
            "usage": {"type": "duration", "seconds": round(speech_ms / 1000, 3)},
        },
    ]


def _transcription_failed(item_id: str) -> Event:
    return {
        "type": "conversation.item.input_audio_transcription.failed",
        "item_id": item_id,
        "content_index": 0,
        "error": {
            "type": "transcription_error",
            "code": "audio_unintelligible",
            "message": "Audio file might be corrupted or unsupported",
            "param": "file",
        },
    }


def _rate_limits(response: dict[str, Any]) -> Event:
    used = response["usage"]["total_tokens"]
    return {
        "type": "rate_limits.updated",
        "rate_limits": [
            {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
            {"name": "tokens", "limit": 40000, "remaining": 40000 - used, "reset_seconds": 0.5},
        ],
    }
