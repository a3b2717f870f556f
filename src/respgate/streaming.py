"""The one place the Responses event grammar is produced.

Adapters say what happened (`text_delta`, `function_call`, `finish`, ...); `StreamBuilder` answers
with the events to send, in OpenAI's exact shapes, and accumulates the final Response from the
same calls, so a stream and its final response agree by construction. It owns item ids, output
and content indexes, and stamps `sequence_number` (from 0) in one place, `_Stamp`.

One output item is open at a time: a delta of another kind (or a function call with another
`call_id`) closes the open item first. Every upstream we bridge streams items one after another,
so this costs nothing and keeps the state to "which item and which part are open".

`replay(response)` re-makes the stream of a stored final response (for
`GET /v1/responses/{id}?stream=true`). It yields the live stream's events with each part's deltas
merged into one delta carrying the whole text, so sequence numbers match the live stream only up
to the first delta; `starting_after` on a replay counts the replay's own events. A reasoning
item's summary parts are replayed before its reasoning_text parts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .ids import new_item_id

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class _PartSpec:
    """How one kind of part is announced, grown and closed."""

    holder: str  # the item's list the part lives in
    index_key: str  # "content_index" or "summary_index"
    added: str
    done: str
    delta: str
    text_done: str
    text_key: str  # where the part keeps its text
    blank: Json
    delta_extra: Json = field(default_factory=dict)  # fields OpenAI adds to delta/done events

    def fresh(self) -> Json:
        """An empty part of this kind, sharing no list with the template."""
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self.blank.items()}

    def extra(self) -> Json:
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self.delta_extra.items()}


_CONTENT_ADDED, _CONTENT_DONE = "response.content_part.added", "response.content_part.done"

_PARTS: dict[str, _PartSpec] = {
    "output_text": _PartSpec(
        "content", "content_index", _CONTENT_ADDED, _CONTENT_DONE, "response.output_text.delta",
        "response.output_text.done", "text", {"type": "output_text", "annotations": [], "logprobs": [],
                                              "text": ""}, {"logprobs": []}),
    "refusal": _PartSpec(
        "content", "content_index", _CONTENT_ADDED, _CONTENT_DONE, "response.refusal.delta",
        "response.refusal.done", "refusal", {"type": "refusal", "refusal": ""}),
    "reasoning_text": _PartSpec(
        "content", "content_index", _CONTENT_ADDED, _CONTENT_DONE, "response.reasoning_text.delta",
        "response.reasoning_text.done", "text", {"type": "reasoning_text", "text": ""}),
    "summary_text": _PartSpec(
        "summary", "summary_index", "response.reasoning_summary_part.added",
        "response.reasoning_summary_part.done", "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done", "text", {"type": "summary_text", "text": ""}),
}

#: The item a part kind lives in, and that item's id prefix.
_ITEM_OF_PART = {"output_text": "message", "refusal": "message", "reasoning_text": "reasoning",
                 "summary_text": "reasoning"}
_ID_PREFIX = {"message": "msg", "reasoning": "rs", "function_call": "fc"}
_TERMINAL_EVENT = {"completed": "response.completed", "incomplete": "response.incomplete",
                   "failed": "response.failed"}


class _Stamp:
    """Numbers events in the order they are made: the only place `sequence_number` is set."""

    __slots__ = ("next",)

    def __init__(self) -> None:
        self.next = 0

    def __call__(self, type_: str, **fields: Any) -> Json:
        event = {"type": type_, "sequence_number": self.next, **fields}
        self.next += 1
        return event


def _blank_item(kind: str, item_id: str, **fields: Any) -> Json:
    if kind == "message":
        return {"id": item_id, "type": "message", "status": "in_progress", "content": [], "role": "assistant"}
    if kind == "function_call":
        return {"id": item_id, "type": "function_call", "status": "in_progress", "arguments": "", **fields}
    return {"id": item_id, "type": "reasoning", "summary": []}


def _added_snapshot(item: Json) -> Json:
    """The item as `output_item.added` shows it: nothing generated yet.

    A reasoning item's `content` and `encrypted_content` appear only once generated, so they are
    left out here, as the live builder's fresh reasoning item has neither.
    """
    hidden = ("content", "encrypted_content") if item.get("type") == "reasoning" else ()
    snap = {k: ([] if isinstance(v, list) else v) for k, v in item.items() if k not in hidden}
    if "status" in snap:
        snap["status"] = "in_progress"
    if snap.get("type") == "function_call":
        snap["arguments"] = ""
    return snap


def _lifecycle_snapshot(response: Json) -> Json:
    return {**response, "output": list(response["output"])}


def _part_where(spec: _PartSpec, item_id: str, output_index: int, part_index: int) -> Json:
    return {"item_id": item_id, "output_index": output_index, spec.index_key: part_index}


def _part_done_events(stamp: _Stamp, spec: _PartSpec, where: Json, part: Json) -> list[Json]:
    return [stamp(spec.text_done, **where, **{spec.text_key: part[spec.text_key]}, **spec.extra()),
            stamp(spec.done, **where, part=part)]


@dataclass(slots=True)
class _OpenItem:
    item: Json
    output_index: int
    chunks: list[str] = field(default_factory=list)  # deltas of the open part or of the arguments
    part: Json | None = None
    part_kind: str = ""
    part_index: int = -1


class StreamBuilder:
    """A Responses stream under construction; see the module docstring."""

    def __init__(self, shell: Json, *, clock: Callable[[], float] = time.time) -> None:
        self._response: Json = {**shell, "output": list(shell.get("output") or [])}
        self._clock = clock
        self._stamp = _Stamp()
        self._open: _OpenItem | None = None
        self._started = False
        self._finished = False

    @property
    def response(self) -> Json:
        """The accumulated Response; after the end, the very object the terminal event carries."""
        return self._response

    @property
    def finished(self) -> bool:
        return self._finished

    def start(self) -> list[Json]:
        """response.created and response.in_progress (background: created as queued, then queued)."""
        if self._started:
            raise RuntimeError("stream already started")
        self._started = True
        stamp, response = self._stamp, self._response
        events: list[Json] = []
        if response.get("background"):
            response["status"] = "queued"
            events.append(stamp("response.created", response=_lifecycle_snapshot(response)))
            events.append(stamp("response.queued", response=_lifecycle_snapshot(response)))
            response["status"] = "in_progress"
        else:
            response["status"] = "in_progress"
            events.append(stamp("response.created", response=_lifecycle_snapshot(response)))
        events.append(stamp("response.in_progress", response=_lifecycle_snapshot(response)))
        return events

    # --- what adapters report -------------------------------------------------------------

    def text_delta(self, text: str) -> list[Json]:
        return self._part_delta("output_text", text)

    def refusal_delta(self, text: str) -> list[Json]:
        return self._part_delta("refusal", text)

    def reasoning_summary_delta(self, text: str, *, new_part: bool = False) -> list[Json]:
        """Summary text; `new_part` starts another summary part of the same reasoning item."""
        return self._part_delta("summary_text", text, new_part=new_part)

    def reasoning_text_delta(self, text: str) -> list[Json]:
        return self._part_delta("reasoning_text", text)

    def reasoning_encrypted_content(self, value: str) -> list[Json]:
        """Attach `encrypted_content` to the open reasoning item (opening one if needed)."""
        events = self._begin()
        self._item("reasoning", events).item["encrypted_content"] = value
        return events

    def function_call(self, name: str, call_id: str, arguments_delta: str) -> list[Json]:
        """Arguments of the call `call_id`; a new `call_id` closes the open item and opens a call."""
        events = self._begin()
        open_ = self._open
        if open_ is None or open_.item["type"] != "function_call" or open_.item["call_id"] != call_id:
            open_ = self._open_item("function_call", events, call_id=call_id, name=name)
        if arguments_delta:
            open_.chunks.append(arguments_delta)
            events.append(self._stamp("response.function_call_arguments.delta", item_id=open_.item["id"],
                                      output_index=open_.output_index, delta=arguments_delta))
        return events

    def add_item(self, item: Json) -> list[Json]:
        """A whole item at once (e.g. a hosted tool call relayed complete): added, then done."""
        events = self._begin()
        self._close_item("completed", events)
        index = len(self._response["output"])
        events.append(self._stamp("response.output_item.added", output_index=index,
                                  item=_added_snapshot(item)))
        events.append(self._stamp("response.output_item.done", output_index=index, item=item))
        self._response["output"].append(item)
        return events

    def close_item(self) -> list[Json]:
        events = self._begin()
        self._close_item("completed", events)
        return events

    def finish(self, usage: Json | None, *, status: str = "completed",
               incomplete_reason: str | None = None) -> list[Json]:
        """Close what is open and end with response.completed or response.incomplete."""
        if status not in ("completed", "incomplete"):
            raise ValueError(f"finish() ends a stream as completed or incomplete, not {status!r}")
        events = self._begin()
        self._close_item(status, events)
        response = self._response
        response["status"] = status
        response["completed_at"] = int(self._clock()) if status == "completed" else None
        if status == "incomplete":
            response["incomplete_details"] = {"reason": incomplete_reason or "max_output_tokens"}
        response["usage"] = usage
        return self._end(events)

    def fail(self, code: str, message: str, *, usage: Json | None = None) -> list[Json]:
        """End with response.failed; an item still open is closed as incomplete."""
        events = self._begin()
        self._close_item("incomplete", events)
        self._response["status"] = "failed"
        self._response["error"] = {"code": code, "message": message}
        self._response["usage"] = usage
        return self._end(events)

    # --- the state machine ----------------------------------------------------------------

    def _begin(self) -> list[Json]:
        if self._finished:
            raise RuntimeError("stream already finished")
        return [] if self._started else self.start()

    def _end(self, events: list[Json]) -> list[Json]:
        events.append(self._stamp(_TERMINAL_EVENT[self._response["status"]], response=self._response))
        self._finished = True
        return events

    def _part_delta(self, kind: str, text: str, *, new_part: bool = False) -> list[Json]:
        events = self._begin()
        open_ = self._item(_ITEM_OF_PART[kind], events)
        spec = _PARTS[kind]
        if open_.part_kind != kind or new_part:
            self._close_part(open_, events)
            open_.part = spec.fresh()
            open_.part_kind = kind
            parts = open_.item.setdefault(spec.holder, [])
            open_.part_index = len(parts)
            parts.append(open_.part)
            events.append(self._stamp(spec.added, **self._where(open_), part=spec.fresh()))
        if text:
            open_.chunks.append(text)
            events.append(self._stamp(spec.delta, **self._where(open_), delta=text, **spec.extra()))
        return events

    def _where(self, open_: _OpenItem) -> Json:
        return _part_where(_PARTS[open_.part_kind], open_.item["id"], open_.output_index, open_.part_index)

    def _item(self, kind: str, events: list[Json]) -> _OpenItem:
        if self._open is not None and self._open.item["type"] == kind:
            return self._open
        return self._open_item(kind, events)

    def _open_item(self, kind: str, events: list[Json], **fields: Any) -> _OpenItem:
        self._close_item("completed", events)
        item = _blank_item(kind, new_item_id(_ID_PREFIX[kind]), **fields)
        self._open = _OpenItem(item, len(self._response["output"]))
        events.append(self._stamp("response.output_item.added", output_index=self._open.output_index,
                                  item=_added_snapshot(item)))
        return self._open

    def _close_part(self, open_: _OpenItem, events: list[Json]) -> None:
        if open_.part is None:
            return
        spec = _PARTS[open_.part_kind]
        open_.part[spec.text_key] = "".join(open_.chunks)
        events.extend(_part_done_events(self._stamp, spec, self._where(open_), open_.part))
        open_.part, open_.part_kind, open_.part_index, open_.chunks = None, "", -1, []

    def _close_item(self, status: str, events: list[Json]) -> None:
        open_ = self._open
        if open_ is None:
            return
        item = open_.item
        if item["type"] == "function_call":
            item["arguments"] = "".join(open_.chunks)
            events.append(self._stamp("response.function_call_arguments.done", item_id=item["id"],
                                      output_index=open_.output_index, name=item["name"],
                                      arguments=item["arguments"]))
        else:
            self._close_part(open_, events)
        if "status" in item:
            item["status"] = status
        events.append(self._stamp("response.output_item.done", output_index=open_.output_index, item=item))
        self._response["output"].append(item)
        self._open = None


def replay(response: Json) -> list[Json]:
    """The event sequence of a stored response (see the module docstring for how it differs).

    A response still queued or in progress gets no terminal event (its stream is not over), nor
    does a cancelled one (the Responses grammar has no event for it).
    """
    stamp = _Stamp()
    base = {**response, "status": "in_progress", "completed_at": None, "error": None,
            "incomplete_details": None, "output": [], "usage": None}
    events: list[Json] = []
    if response.get("background"):
        queued = {**base, "status": "queued"}
        events += [stamp("response.created", response=queued), stamp("response.queued", response=queued)]
    else:
        events.append(stamp("response.created", response=base))
    events.append(stamp("response.in_progress", response=base))
    for index, item in enumerate(response.get("output") or []):
        events.append(stamp("response.output_item.added", output_index=index, item=_added_snapshot(item)))
        events += _replay_item_body(stamp, index, item)
        events.append(stamp("response.output_item.done", output_index=index, item=item))
    terminal = _TERMINAL_EVENT.get(response.get("status", ""))
    if terminal is not None:
        events.append(stamp(terminal, response=response))
    return events


def _replay_item_body(stamp: _Stamp, index: int, item: Json) -> list[Json]:
    events: list[Json] = []
    if item.get("type") == "function_call":
        where = {"item_id": item["id"], "output_index": index}
        if item["arguments"]:
            events.append(stamp("response.function_call_arguments.delta", **where, delta=item["arguments"]))
        events.append(stamp("response.function_call_arguments.done", **where, name=item["name"],
                            arguments=item["arguments"]))
        return events
    holders = {"message": ("content",), "reasoning": ("summary", "content")}.get(item.get("type", ""), ())
    for holder in holders:
        for part_index, part in enumerate(item.get(holder) or []):
            spec = _PARTS.get(part.get("type", ""))
            where = {"item_id": item["id"], "output_index": index,
                     ("summary_index" if holder == "summary" else "content_index"): part_index}
            if spec is None:  # a part we cannot grow (e.g. a future type): announce it whole
                events += [stamp(_CONTENT_ADDED, **where, part=part),
                           stamp(_CONTENT_DONE, **where, part=part)]
                continue
            events.append(stamp(spec.added, **where, part=spec.fresh()))
            if part[spec.text_key]:
                events.append(stamp(spec.delta, **where, delta=part[spec.text_key], **spec.extra()))
            events += _part_done_events(stamp, spec, where, part)
    return events
