"""The conversation as the backend holds it, item by item, to rebuild it on a new session.

Pure and JSON-ready: :class:`Context` keeps each item in the shape
``conversation.item.create`` takes (user and assistant messages, function calls and their
outputs, MCP calls), in the backend's order, and :meth:`Context.restore` is the list of events that
recreates them. A spoken user turn takes its place when its audio is committed and gets
its text when the transcript arrives, which may be after the reply has begun; one whose
transcript never comes (it failed) is left out, since its audio is not kept. A reply
cut at barge-in keeps the words the listener heard, in proportion to the audio played
(the backend's own item was truncated there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

Item: TypeAlias = dict[str, Any]


def message(role: Literal["user", "assistant"], text: str) -> Item:
    """A message item with one text part."""
    kind = "input_text" if role == "user" else "output_text"
    return {"type": "message", "role": role, "content": [{"type": kind, "text": text}]}


@dataclass(slots=True)
class Context:
    """The items of one conversation, in order (``items``: what a resume would store)."""

    items: list[Item] = field(default_factory=list)
    #: Spoken user items committed and not yet transcribed: item id -> their placeholder.
    _awaiting: dict[str, Item] = field(default_factory=dict)
    #: Assistant messages by backend item id, and the cuts of those not recorded yet.
    _replies: dict[str, Item] = field(default_factory=dict)
    _cuts: dict[str, tuple[int, int]] = field(default_factory=dict)

    def user_text(self, text: str) -> None:
        self.items.append(message("user", text))

    def user_item(self, item: Item) -> None:
        """A user message the client made whole (typed text, an image or both)."""
        self.items.append(item)

    def user_audio(self, item_id: str) -> None:
        """A spoken turn was committed: its place, to be filled by :meth:`transcript`."""
        if item_id not in self._awaiting:
            placeholder: Item = {"type": "message", "role": "user", "content": []}
            self._awaiting[item_id] = placeholder
            self.items.append(placeholder)

    def transcript(self, item_id: str, text: str) -> None:
        """What a spoken turn said, in its place (at the end if its commit went unseen)."""
        placeholder = self._awaiting.pop(item_id, None)
        if placeholder is None:
            self.items.append(message("user", text))
        elif text:
            placeholder["content"] = message("user", text)["content"]

    def transcript_failed(self, item_id: str) -> None:
        placeholder = self._awaiting.pop(item_id, None)
        if placeholder is not None:
            self.items[:] = [item for item in self.items if item is not placeholder]

    def assistant_text(self, text: str, item_id: str | None = None) -> None:
        """A reply's text (``item_id``: the backend's item, which a barge-in may cut)."""
        if item_id is not None and (cut := self._cuts.pop(item_id, None)) is not None:
            text = heard_words(text, *cut)
        item = message("assistant", text)
        self.items.append(item)
        if item_id is not None:
            self._replies[item_id] = item
            if len(self._replies) > _KEPT_REPLIES:  # only the latest can still be cut
                del self._replies[next(iter(self._replies))]

    def truncated(self, item_id: str, heard_ms: int, sent_ms: int) -> None:
        """A reply was cut after ``heard_ms`` of the ``sent_ms`` the client had."""
        item = self._replies.get(item_id)
        if item is None:
            self._cuts[item_id] = (heard_ms, sent_ms)  # its text comes when it ends
            if len(self._cuts) > _KEPT_REPLIES:  # a reply with no text never claims its cut
                del self._cuts[next(iter(self._cuts))]
            return
        part = item["content"][0]
        part["text"] = heard_words(part["text"], heard_ms, sent_ms)

    def function_call(self, call_id: str, name: str, arguments: str) -> None:
        item = {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}
        self.items.append(item)

    def function_output(self, call_id: str, output: str) -> None:
        self.items.append({"type": "function_call_output", "call_id": call_id, "output": output})

    def mcp_call(self, item: Item) -> None:
        """A call the service made on an MCP server, with its output or error (the
        server's tool listing is not kept: a new session lists the tools again)."""
        self.items.append(item)

    def restore(self) -> list[dict[str, Any]]:
        """The ``conversation.item.create`` events that rebuild this conversation."""
        return restore_events(self.items)


_KEPT_REPLIES = 8


def heard_words(text: str, heard_ms: int, sent_ms: int) -> str:
    """The words of ``text`` a listener heard after ``heard_ms`` of its ``sent_ms`` of
    audio: in proportion, a word begun counting as heard (as the emulator truncates)."""
    if sent_ms <= 0 or heard_ms >= sent_ms:
        return text
    words = text.split()
    return " ".join(words[: -(-len(words) * max(heard_ms, 0) // sent_ms)])


def restore_events(items: list[Item]) -> list[dict[str, Any]]:
    """``conversation.item.create`` for each item that has something to restore, in order
    (a spoken turn without its transcript has nothing)."""
    return [
        {"type": "conversation.item.create", "item": item}
        for item in items
        if item.get("type") != "message" or item.get("content")
    ]
