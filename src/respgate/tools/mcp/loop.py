"""The provider that runs a request's MCP tools around another provider (mock, bridged, Anthropic, ...).

    list the servers' tools (mcp_list_tools items)  ->  model call with them as function tools
      -> each MCP call: run it (mcp_call item), or ask for approval (mcp_approval_request) and stop
      -> results back to the model as function outputs  ->  model call ... until it answers

The client sees one Response and one event stream however many model calls it took: the inner
streams' lifecycle events are dropped, their items re-indexed after the items before them, every
event numbered again at this outlet, and the model's MCP function calls shown as `mcp_call` items
with OpenAI's `response.mcp_call*` events. Usage is the sum of the model calls.

The stream's first event waits for the first model event, so that a provider failing at once still
fails the request as an HTTP error (and the router can fall back) rather than as response.failed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ...errors import BadGatewayError, RespgateError
from ...events import LIFECYCLE_TYPES, TERMINAL_TYPES, Event
from ...providers.base import Provider, ProviderRequest
from .config import Limits
from .items import approval_item, call_item
from .servers import McpServer
from .turn import Route, Turn

Json = dict[str, Any]

_TERMINAL_EVENT = {"completed": "response.completed", "incomplete": "response.incomplete",
                   "failed": "response.failed"}


class McpProvider:
    holds_state = False

    def __init__(self, inner: Provider, servers: list[McpServer], limits: Limits) -> None:
        self.inner = inner
        self.servers = servers
        self.limits = limits

    async def create(self, req: ProviderRequest) -> Json:
        turn = Turn(req, self.servers, self.limits)
        turn.output += await turn.prologue()
        while True:
            resp = await self.inner.create(turn.inner_request())
            turn.add_usage(resp.get("usage"))
            model_items = list(resp.get("output") or [])
            finished = [await self._finish(turn, item) for item in model_items]
            turn.output += finished
            if resp.get("status") != "completed" or not turn.end_round(model_items, finished):
                return turn.response(resp)

    @staticmethod
    async def _finish(turn: Turn, item: Json) -> Json:
        """A model output item as the client sees it (an MCP call run, or its approval request)."""
        route = turn.route(item)
        if route is None:
            return item
        arguments = str(item.get("arguments") or "")
        if item.get("status") == "incomplete":  # cut short (max_output_tokens): never run half a call
            return {**call_item(route.server.label, route.tool.name, arguments), "status": "incomplete"}
        if turn.needs_approval(route) and turn.may_call():
            return approval_item(route.server.label, route.tool.name, arguments)
        return await turn.run(call_item(route.server.label, route.tool.name, arguments), route)

    async def stream(self, req: ProviderRequest) -> AsyncIterator[Event]:
        turn = Turn(req, self.servers, self.limits)
        before = await turn.prologue()
        events = self.inner.stream(turn.inner_request())
        try:
            first = await anext(events, None)  # a failure here is still the request's HTTP error
            if first is None:
                raise BadGatewayError(f"The upstream for model `{req.body.get('model')}` sent an empty stream.")
            out = _Outlet(req.shell)
            for event in out.start():
                yield event
            for item in before:
                for event in out.whole(item, len(turn.output)):
                    yield event
                turn.output.append(item)
            while True:
                relay = _Round(turn, out, base=len(turn.output))
                try:
                    if first is None:  # a later round: its model call starts here
                        events = self.inner.stream(turn.inner_request())
                        first = await anext(events, None)
                    terminal = None
                    async with contextlib.aclosing(self._relay(first, events, relay)) as relayed_events:
                        async for relayed in relayed_events:
                            if isinstance(relayed, dict):
                                terminal = relayed
                            else:
                                yield relayed
                except RespgateError as e:  # after the first event: the stream ends failed, items kept
                    turn.output += relay.finished
                    yield out.end(turn.failed(e.code or "server_error", e.message))
                    return
                turn.output += relay.finished
                assert terminal is not None
                turn.add_usage(terminal.get("usage"))
                model_items = list(terminal.get("output") or [])
                if terminal.get("status") != "completed" or not turn.end_round(model_items, relay.finished):
                    yield out.end(turn.response(terminal))
                    return
                await _aclose(events)
                first = None
        finally:
            await _aclose(events)

    @staticmethod
    async def _relay(first: Event | None, events: AsyncIterator[Event],
                     relay: _Round) -> AsyncGenerator[Event | Json, None]:
        """One model stream's events as the client's, then its final response (a dict) last."""
        event_in = first
        while event_in is not None:
            if event_in.is_terminal:
                yield event_in.obj.get("response") or {}
                return
            for event in await relay.take(event_in):
                yield event
            event_in = await anext(events, None)
        raise BadGatewayError("The upstream stream ended before the response finished.")


class _Outlet:
    """Numbers the client's events: the only sequence_number of this stream is set here."""

    def __init__(self, shell: Json) -> None:
        self.shell = shell
        self.next = 0

    def stamp(self, event: Json) -> Event:
        event["sequence_number"] = self.next
        self.next += 1
        return Event.of(event)

    def start(self) -> list[Event]:
        snapshot = {**self.shell, "status": "in_progress", "output": []}
        events = []
        if self.shell.get("background"):
            queued = {**snapshot, "status": "queued"}
            events += [self.stamp({"type": "response.created", "response": queued}),
                       self.stamp({"type": "response.queued", "response": queued})]
        else:
            events.append(self.stamp({"type": "response.created", "response": snapshot}))
        events.append(self.stamp({"type": "response.in_progress", "response": snapshot}))
        return events

    def end(self, response: Json) -> Event:
        return self.stamp({"type": _TERMINAL_EVENT.get(str(response.get("status")), "response.completed"),
                           "response": response})

    def whole(self, item: Json, index: int) -> list[Event]:
        """A finished MCP item's events, from added to done."""
        if item["type"] == "mcp_list_tools":
            where = {"item_id": item["id"], "output_index": index}
            ending = "failed" if item.get("error") else "completed"
            added = {k: ([] if k == "tools" else v) for k, v in item.items() if k != "error"}
            return [self.stamp({"type": "response.output_item.added", "output_index": index, "item": added}),
                    self.stamp({"type": "response.mcp_list_tools.in_progress", **where}),
                    self.stamp({"type": f"response.mcp_list_tools.{ending}", **where}),
                    self.stamp({"type": "response.output_item.done", "output_index": index, "item": item})]
        if item["type"] == "mcp_call":
            return [*self.call_opened(item, index), *self.call_arguments(item, index, item["arguments"], done=True),
                    *self.call_closed(item, index)]
        return [self.stamp({"type": "response.output_item.added", "output_index": index, "item": item}),
                self.stamp({"type": "response.output_item.done", "output_index": index, "item": item})]

    def call_opened(self, item: Json, index: int) -> list[Event]:
        opened = {**item, "status": "in_progress", "arguments": "", "output": None, "error": None}
        return [self.stamp({"type": "response.output_item.added", "output_index": index, "item": opened}),
                self.stamp({"type": "response.mcp_call.in_progress", "item_id": item["id"], "output_index": index})]

    def call_arguments(self, item: Json, index: int, text: str, *, done: bool) -> list[Event]:
        where = {"item_id": item["id"], "output_index": index}
        events = [self.stamp({"type": "response.mcp_call_arguments.delta", **where, "delta": text})] if text else []
        if done:
            events.append(self.stamp({"type": "response.mcp_call_arguments.done", **where,
                                      "arguments": item["arguments"]}))
        return events

    def call_closed(self, item: Json, index: int) -> list[Event]:
        """`mcp_call.completed` or `.failed`, then the item; a call cut short (incomplete) never ran."""
        events = []
        if item.get("status") in ("completed", "failed"):
            events.append(self.stamp({"type": f"response.mcp_call.{item['status']}", "item_id": item["id"],
                                      "output_index": index}))
        events.append(self.stamp({"type": "response.output_item.done", "output_index": index, "item": item}))
        return events


@dataclass(slots=True)
class _Call:
    """A model function call being shown as an MCP item."""

    route: Route
    item: Json  # the mcp_call (or, for approval, nothing is shown until it is done)
    approval: bool


@dataclass(slots=True)
class _Round:
    """One model stream relayed: its items keep their order, after the `base` items already sent."""

    turn: Turn
    out: _Outlet
    base: int
    calls: dict[int, _Call] = field(default_factory=dict)  # by the model's output_index
    finished: list[Json] = field(default_factory=list)

    async def take(self, event: Event) -> list[Event]:
        kind = event.type
        if kind in LIFECYCLE_TYPES or kind in TERMINAL_TYPES:
            return []
        obj = event.obj
        index = obj.get("output_index")
        if not isinstance(index, int):
            return [self.out.stamp(dict(obj))]
        at = self.base + index
        call = self.calls.get(index)
        if kind == "response.output_item.added":
            route = self.turn.route(obj.get("item") or {})
            if route is not None:
                return self._open(index, at, route)
        elif call is not None:
            return await self._advance(call, at, kind, obj)
        elif kind == "response.output_item.done":
            self.finished.append(obj["item"])
        relayed = dict(obj)
        relayed["output_index"] = at
        return [self.out.stamp(relayed)]

    def _open(self, index: int, at: int, route: Route) -> list[Event]:
        approval = self.turn.needs_approval(route) and self.turn.may_call()
        item = call_item(route.server.label, route.tool.name, "")
        self.calls[index] = _Call(route, item, approval)
        return [] if approval else self.out.call_opened(item, at)

    async def _advance(self, call: _Call, at: int, kind: str, obj: Json) -> list[Event]:
        if kind == "response.function_call_arguments.delta":
            call.item["arguments"] += str(obj.get("delta") or "")
            return [] if call.approval else self.out.call_arguments(call.item, at, str(obj.get("delta") or ""),
                                                                   done=False)
        if kind == "response.function_call_arguments.done":
            call.item["arguments"] = str(obj.get("arguments") or call.item["arguments"])
            return [] if call.approval else self.out.call_arguments(call.item, at, "", done=True)
        if kind != "response.output_item.done":
            return []  # nothing else belongs to a function call
        model_item = obj.get("item") or {}
        call.item["arguments"] = str(model_item.get("arguments") or call.item["arguments"])
        if model_item.get("status") == "incomplete":  # cut short: shown, never run
            done = {**call.item, "status": "incomplete"}
            self.finished.append(done)
            return self.out.whole(done, at) if call.approval else self.out.call_closed(done, at)
        if call.approval:
            request = approval_item(call.route.server.label, call.route.tool.name, call.item["arguments"])
            self.finished.append(request)
            return self.out.whole(request, at)
        done = await self.turn.run(call.item, call.route)
        self.finished.append(done)
        return self.out.call_closed(done, at)


async def _aclose(events: AsyncIterator[Event]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()

