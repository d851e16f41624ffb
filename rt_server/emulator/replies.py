"""What the emulated model says: deterministic, scriptable replies.

Pure functions of the conversation the response sees. Order of precedence:
1. the last context item is a `function_call_output` -> "The <name> tool says: <output>."
2. the first script rule whose regex finds the user's last message (reply, tool call or
   instructions echo);
3. built-ins: "recap" (a word) lists the earlier user messages, "instructions?" quotes the
   effective instructions;
4. "You said: <last user message>." (audio input: its deterministic transcript).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from rt_server.emulator.config import Rule

Item = dict[str, Any]

_RECAP = re.compile(r"\brecap\b", re.IGNORECASE)
GREETING = "Hello! How can I help?"


@dataclass(frozen=True)
class TextReply:
    text: str


@dataclass(frozen=True)
class CallReply:
    name: str
    arguments: str  # JSON text, as on the wire


@dataclass(frozen=True)
class McpCallReply:
    """A call of a tool of an MCP server (the service makes it, not the client)."""

    server_label: str
    name: str
    arguments: str


Reply = TextReply | CallReply | McpCallReply


def item_text(item: Item, heard: Mapping[str, str]) -> str:
    """The words of a message item: typed text, transcripts, or what the model heard."""
    parts: list[str] = []
    for part in item.get("content") or []:
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append(str(part.get("text") or ""))
        elif kind in ("input_audio", "output_audio", "audio"):
            transcript = part.get("transcript") or heard.get(str(item.get("id")), "")
            parts.append(str(transcript))
        elif kind == "input_image":
            parts.append(_seen(str(part.get("image_url") or "")))
    return " ".join(p.strip() for p in parts if p and p.strip())


def _seen(url: str) -> str:
    """What the model "sees" in an image: its type and size (a data URL's), or its URL."""
    if url.startswith("data:") and ";base64," in url:
        media_type, encoded = url[5:].split(";base64,", 1)
        return f"[an {media_type} image of {len(encoded.rstrip('=')) * 3 // 4} bytes]"
    return f"[an image at {url}]"


def decide_reply(
    context: Sequence[Item],
    *,
    instructions: str,
    rules: Sequence[Rule],
    tools: frozenset[str],
    heard: Mapping[str, str],
    tool_choice: str | Mapping[str, Any] = "auto",
    mcp_tools: Mapping[str, str] | None = None,
) -> Reply:
    """``tool_choice`` as the session has it; ``mcp_tools``: each listed MCP tool's server."""
    mcp_tools = mcp_tools or {}
    last = context[-1] if context else {}
    if last.get("type") == "function_call_output":
        return TextReply(_tool_says(context, last))
    if last.get("type") == "mcp_call":
        return TextReply(_mcp_says(last))
    user_texts = [
        item_text(i, heard)
        for i in context
        if i.get("type") == "message" and i.get("role") == "user"
    ]
    current = user_texts[-1] if user_texts else ""
    for rule in rules:
        if rule.pattern.search(current) and not (rule.tool_call and tool_choice == "none"):
            return _apply(rule, instructions, tools, mcp_tools)
    if (forced := _forced_call(tool_choice, tools, mcp_tools)) is not None:
        return forced
    if _RECAP.search(current):
        earlier = [t for t in user_texts[:-1] if t]
        return TextReply(
            "Earlier you said: " + " | ".join(earlier) if earlier else "Earlier you said nothing."
        )
    if "instructions?" in current.lower():
        return TextReply(_quote_instructions(instructions))
    if not current:
        return TextReply(GREETING)
    return TextReply(f"You said: {current}" + ("" if current[-1] in ".!?" else "."))


def _forced_call(
    choice: str | Mapping[str, Any], tools: frozenset[str], mcp_tools: Mapping[str, str]
) -> Reply | None:
    """The call ``tool_choice`` forces when no rule decided: ``required`` calls the first
    tool by name, a named function or MCP tool is called; with empty arguments."""
    if choice == "required":
        if tools:
            return CallReply(sorted(tools)[0], "{}")
        if mcp_tools:
            name = sorted(mcp_tools)[0]
            return McpCallReply(mcp_tools[name], name, "{}")
        return None
    if not isinstance(choice, Mapping):
        return None
    name = str(choice.get("name") or "")
    if choice.get("type") == "function" and name in tools:
        return CallReply(name, "{}")
    if choice.get("type") == "mcp":
        label = str(choice.get("server_label"))
        listed = [tool for tool, server in sorted(mcp_tools.items()) if server == label]
        if listed:
            return McpCallReply(label, name if name in listed else listed[0], "{}")
    return None


def _apply(
    rule: Rule, instructions: str, tools: frozenset[str], mcp_tools: Mapping[str, str]
) -> Reply:
    if rule.tool_call is not None:
        name = rule.tool_call.name
        arguments = orjson.dumps(rule.tool_call.arguments).decode()
        if name in mcp_tools:
            return McpCallReply(mcp_tools[name], name, arguments)
        if name not in tools:
            return TextReply(f"I would call the {name} tool, but it is not available.")
        return CallReply(name, arguments)
    if rule.instructions_echo:
        return TextReply(_quote_instructions(instructions))
    return TextReply(rule.reply or "")


def _mcp_says(call: Item) -> str:
    if call.get("error"):
        return f"The {call.get('name')} tool failed: {call.get('error')}."
    output = str(call.get("output") or "").strip()
    return f"The {call.get('name')} tool says: {output}" + (
        "" if output.endswith((".", "!", "?")) else "."
    )


def _quote_instructions(instructions: str) -> str:
    return f"Instructions: {instructions}" if instructions else "Instructions: (none)"


def _tool_says(context: Sequence[Item], output_item: Item) -> str:
    call_id = output_item.get("call_id")
    name = next(
        (
            str(i.get("name"))
            for i in reversed(context)
            if i.get("type") == "function_call" and i.get("call_id") == call_id
        ),
        "unknown",
    )
    output = str(output_item.get("output", "")).strip()
    return f"The {name} tool says: {output}" + ("" if output.endswith((".", "!", "?")) else ".")
