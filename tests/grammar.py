"""A strict checker of a Responses event sequence, for any stream (ours, a relayed one, the proxy's).

It knows the grammar only, never respgate's builder, so it can judge the builder too.
`check_stream(events)` returns the terminal event's response or raises AssertionError naming
the first offending event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]

_TERMINAL = {"response.completed": "completed", "response.incomplete": "incomplete",
             "response.failed": "failed"}
_LIFECYCLE = {"response.created", "response.queued", "response.in_progress"}

# event type -> (part type it grows, index key, holder list on the item)
_DELTAS = {
    "response.output_text.delta": ("output_text", "content_index", "content"),
    "response.refusal.delta": ("refusal", "content_index", "content"),
    "response.reasoning_text.delta": ("reasoning_text", "content_index", "content"),
    "response.reasoning_summary_text.delta": ("summary_text", "summary_index", "summary"),
}
# event type -> (part type, index key, holder, field carrying the whole text)
_TEXT_DONES = {
    "response.output_text.done": ("output_text", "content_index", "content", "text"),
    "response.refusal.done": ("refusal", "content_index", "content", "refusal"),
    "response.reasoning_text.done": ("reasoning_text", "content_index", "content", "text"),
    "response.reasoning_summary_text.done": ("summary_text", "summary_index", "summary", "text"),
}
_PART_TEXT_KEY = {"output_text": "text", "refusal": "refusal", "reasoning_text": "text",
                  "summary_text": "text"}
# part event -> (index key, holder, is_done)
_PART_EVENTS = {
    "response.content_part.added": ("content_index", "content", False),
    "response.content_part.done": ("content_index", "content", True),
    "response.reasoning_summary_part.added": ("summary_index", "summary", False),
    "response.reasoning_summary_part.done": ("summary_index", "summary", True),
}
_HOLDERS = {"message": ("content",), "reasoning": ("summary", "content")}


@dataclass
class _Part:
    type: str
    chunks: list[str] = field(default_factory=list)
    text: str | None = None  # from the *.done text event
    final: Json | None = None  # from the part .done event


@dataclass
class _Item:
    id: str
    type: str
    parts: dict[str, list[_Part]] = field(default_factory=lambda: {"content": [], "summary": []})
    arg_chunks: list[str] = field(default_factory=list)
    arguments: str | None = None
    final: Json | None = None


class _Checker:
    def __init__(self, events: list[Json]) -> None:
        self.events = events
        self.items: list[_Item] = []
        self.response_id: str | None = None
        self.i = 0

    def fail(self, message: str) -> None:
        event = self.events[self.i] if self.i < len(self.events) else {}
        raise AssertionError(f"event #{self.i} ({event.get('type')!r}): {message}")

    def expect(self, ok: bool, message: str) -> None:
        if not ok:
            self.fail(message)

    def run(self) -> Json:
        assert self.events, "empty event stream"
        terminal: Json | None = None
        for index, event in enumerate(self.events):
            self.i = index
            self.expect(isinstance(event, dict) and isinstance(event.get("type"), str), "not a typed event")
            self.expect(event.get("sequence_number") == self.i,
                        f"sequence_number {event.get('sequence_number')!r}, expected {self.i}")
            kind = event["type"]
            if self.i == 0:
                self.expect(kind in ("response.created", "response.queued"),
                            "a stream must open with response.created (or response.queued)")
            self.expect(terminal is None, "event after the terminal event")
            if kind in _TERMINAL or kind in _LIFECYCLE:
                self.lifecycle(event)
                if kind in _TERMINAL:
                    terminal = event
            else:
                self.step(event)
        self.i = len(self.events) - 1
        self.expect(terminal is not None, "the stream has no terminal event")
        assert terminal is not None
        return self.terminal(terminal)

    def lifecycle(self, event: Json) -> None:
        response = event.get("response")
        self.expect(isinstance(response, dict), "lifecycle event without a response")
        if self.response_id is None:
            self.response_id = response.get("id")
        self.expect(response.get("id") == self.response_id,
                    f"response id {response.get('id')!r} differs from {self.response_id!r}")
        if event["type"] in _LIFECYCLE:
            self.expect(response.get("status") in ("queued", "in_progress"),
                        f"status {response.get('status')!r} in a lifecycle event")

    def item_of(self, event: Json) -> _Item:
        index = event.get("output_index")
        self.expect(isinstance(index, int) and 0 <= index < len(self.items),
                    f"output_index {index!r} names no added item")
        item = self.items[index]
        if not event["type"].startswith("response.output_item."):
            self.expect(event.get("item_id") == item.id,
                        f"item_id {event.get('item_id')!r} is not {item.id!r}")
        self.expect(item.final is None, f"item {item.id} is already done")
        return item

    def part_of(self, item: _Item, event: Json, index_key: str, holder: str, part_type: str) -> _Part:
        index = event.get(index_key)
        parts = item.parts[holder]
        self.expect(isinstance(index, int) and 0 <= index < len(parts),
                    f"{index_key} {index!r} names no part")
        part = parts[index]
        self.expect(part.type == part_type, f"part is {part.type!r}, event is for {part_type!r}")
        self.expect(part.final is None, f"{holder} part {index} is already done")
        return part

    def step(self, event: Json) -> None:
        kind = event["type"]
        if kind == "response.output_item.added":
            self.item_added(event)
        elif kind == "response.output_item.done":
            self.item_done(event)
        elif kind in _PART_EVENTS:
            self.part_event(event, *_PART_EVENTS[kind])
        elif kind in _DELTAS:
            part_type, index_key, holder = _DELTAS[kind]
            part = self.part_of(self.item_of(event), event, index_key, holder, part_type)
            self.expect(part.text is None, "delta after the text's .done")
            self.expect(isinstance(event.get("delta"), str), "delta is not a string")
            part.chunks.append(event["delta"])
        elif kind in _TEXT_DONES:
            part_type, index_key, holder, key = _TEXT_DONES[kind]
            part = self.part_of(self.item_of(event), event, index_key, holder, part_type)
            self.expect(part.text is None, "text .done twice")
            self.expect(event.get(key) == "".join(part.chunks),
                        f"{key} {event.get(key)!r} is not the deltas joined {''.join(part.chunks)!r}")
            part.text = event[key]
        elif kind.startswith("response.function_call_arguments."):
            self.arguments_event(event)
        elif "output_index" in event:
            self.item_of(event)  # another item kind's progress event: the item must be open

    def item_added(self, event: Json) -> None:
        item = event.get("item")
        self.expect(isinstance(item, dict) and isinstance(item.get("id"), str), "added item without an id")
        self.expect(event.get("output_index") == len(self.items),
                    f"output_index {event.get('output_index')!r}, expected {len(self.items)}")
        self.expect(all(it.id != item["id"] for it in self.items), f"item id {item['id']} added twice")
        for holder in _HOLDERS.get(item.get("type", ""), ()):
            self.expect(not item.get(holder), f"added {item['type']} already has {holder}")
        if item.get("type") == "function_call":
            self.expect(item.get("arguments") == "", "added function_call already has arguments")
        if "status" in item:
            self.expect(item["status"] == "in_progress", f"added item has status {item['status']!r}")
        self.items.append(_Item(item["id"], item.get("type", "")))

    def part_event(self, event: Json, index_key: str, holder: str, done: bool) -> None:
        item = self.item_of(event)
        self.expect(holder in _HOLDERS.get(item.type, ()), f"a {item.type} item has no {holder} parts")
        part = event.get("part")
        self.expect(isinstance(part, dict) and isinstance(part.get("type"), str), "part without a type")
        parts = item.parts[holder]
        if not done:
            self.expect(event.get(index_key) == len(parts),
                        f"{index_key} {event.get(index_key)!r}, expected {len(parts)}")
            self.expect(all(p.final is not None for p in parts), "a part was added while another is open")
            key = _PART_TEXT_KEY.get(part["type"])
            self.expect(key is None or part.get(key) == "", "added part already has text")
            parts.append(_Part(part["type"]))
            return
        current = self.part_of(item, event, index_key, holder, part["type"])
        key = _PART_TEXT_KEY.get(part["type"])
        if key is not None:
            self.expect(current.text is not None, "part done before its text's .done")
            self.expect(part.get(key) == current.text, f"part {key} differs from the .done text")
        current.final = part

    def arguments_event(self, event: Json) -> None:
        item = self.item_of(event)
        self.expect(item.type == "function_call", f"arguments event on a {item.type} item")
        self.expect(item.arguments is None, "arguments event after arguments .done")
        if event["type"].endswith(".delta"):
            self.expect(isinstance(event.get("delta"), str), "delta is not a string")
            item.arg_chunks.append(event["delta"])
        else:
            joined = "".join(item.arg_chunks)
            self.expect(event.get("arguments") == joined,
                        f"arguments {event.get('arguments')!r} are not the deltas joined {joined!r}")
            item.arguments = event["arguments"]

    def item_done(self, event: Json) -> None:
        item = self.item_of(event)
        final = event.get("item")
        self.expect(isinstance(final, dict) and final.get("id") == item.id, "done item is not the added one")
        self.expect(final.get("type") == item.type,
                    f"done item type {final.get('type')!r} is not {item.type!r}")
        for holder in _HOLDERS.get(item.type, ()):
            parts = item.parts[holder]
            self.expect(all(p.final is not None for p in parts), f"item done with a {holder} part open")
            self.expect((final.get(holder) or []) == [p.final for p in parts],
                        f"done item's {holder} differs from its parts' .done events")
        if item.type == "function_call":
            self.expect(item.arguments is not None, "function_call done without arguments .done")
            self.expect(final.get("arguments") == item.arguments, "done item's arguments differ")
        if item.type in ("message", "function_call"):
            self.expect(final.get("status") in ("completed", "incomplete"),
                        f"done item has status {final.get('status')!r}")
        item.final = final

    def terminal(self, event: Json) -> Json:
        response: Json = event["response"]
        expected = _TERMINAL[event["type"]]
        self.expect(response.get("status") == expected,
                    f"status {response.get('status')!r} in {event['type']}")
        if expected != "failed":
            open_items = [it.id for it in self.items if it.final is None]
            self.expect(not open_items, f"items never done: {open_items}")
        done_items = [it.final for it in self.items if it.final is not None]
        self.expect(response.get("output") == done_items,
                    "the terminal response's output is not the output_item.done items in order")
        if expected == "incomplete":
            details = response.get("incomplete_details") or {}
            self.expect(bool(details.get("reason")), "incomplete response without incomplete_details.reason")
        elif expected == "failed":
            self.expect(isinstance(response.get("error"), dict), "failed response without an error")
        else:
            self.expect(response.get("error") is None and response.get("incomplete_details") is None,
                        "completed response with error or incomplete_details")
        return response


def check_stream(events: list[Json]) -> Json:
    """Check `events` against the Responses stream grammar; return the terminal response."""
    return _Checker(events).run()


def validate_openai_event(event: Json) -> None:
    """Validate one event against its own `openai.types.responses` model (clear errors, unlike the union)."""
    _openai_event_models()[event["type"]].model_validate(event)


def _openai_event_models() -> dict[str, Any]:
    global _MODELS
    if not _MODELS:
        from typing import get_args

        from openai.types.responses import ResponseStreamEvent

        for model in get_args(get_args(ResponseStreamEvent)[0]):
            for literal in get_args(model.model_fields["type"].annotation):
                _MODELS[literal] = model
    return _MODELS


_MODELS: dict[str, Any] = {}
