"""One response's MCP work, shared by the JSON and the streaming loop: the servers' tools (listed, or
remembered from the history), the function tools the model is offered, the history it reads, the
calls made so far against the bounds, and the Response the client gets.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ...providers.base import ProviderRequest
from .client import CallResult, McpFailure, call_tool, list_tools
from .config import Limits
from .items import Replay, call_item, call_text, function_name, function_output, list_tools_item, replay
from .servers import ListedTool, McpServer

Json = dict[str, Any]

#: output items the client must act on: the loop stops and hands them over
_CLIENT_ACTIONS = frozenset({"function_call", "custom_tool_call", "computer_call", "local_shell_call",
                             "shell_call", "apply_patch_call"})


@dataclass(frozen=True, slots=True)
class Route:
    """Where a function name the model may call leads."""

    server: McpServer
    tool: ListedTool


class Turn:
    def __init__(self, req: ProviderRequest, servers: list[McpServer], limits: Limits) -> None:
        self.req = req
        self.servers = {s.label: s for s in servers}
        self.limits = limits
        self.history: Replay = replay(req.input_items)
        self.routes: dict[str, Route] = {}
        self.function_tools: list[Json] = []
        self.output: list[Json] = []  # the client's Response output, item by item as each is done
        self.usage: Json | None = None
        requested = req.body.get("max_tool_calls")
        self.budget = min(limits.max_tool_calls, requested) if isinstance(requested, int) else limits.max_tool_calls
        self.calls = 0
        self.executed: set[str] = set()  # ids of the mcp_call items the servers were asked
        self.rounds = 0
        self.last_round = False

    # -- before the model runs -------------------------------------------------------------------

    async def prologue(self) -> list[Json]:
        """List the servers not listed in the history (in parallel), then run the calls approved in this
        turn. Returns the finished items, in order, for the client's output."""
        fresh = [s for s in self.servers.values() if s.label not in self.history.listed]
        listings = await asyncio.gather(*(self._list(s) for s in fresh))
        items = [item for _, item in listings]
        found = dict(self.history.listed)
        found.update({s.label: tools for s, (tools, _) in zip(fresh, listings, strict=True)})
        for label, server in self.servers.items():
            for tool in found.get(label, []):
                if not server.offers(tool):
                    continue
                name = function_name(label, tool.name)
                self.routes[name] = Route(server, tool)
                self.function_tools.append({"type": "function", "name": name,
                                            "description": tool.description or tool.name,
                                            "parameters": tool.input_schema, "strict": False})
        for approved in self.history.approved:
            request = approved.request
            item = call_item(str(request.get("server_label")), str(request.get("name")),
                             str(request.get("arguments") or "{}"), approval_request_id=str(request.get("id")))
            done = await self.run(item, self.routes.get(approved.call["name"]))
            approved.result["output"] = call_text(done)
            items.append(done)
        return items

    async def _list(self, server: McpServer) -> tuple[list[ListedTool], Json]:
        try:
            tools = await list_tools(server, self.limits)
        except McpFailure as e:
            return [], list_tools_item(server.label, [], error=e.message)
        offered = [t for t in tools if server.offers(t)]
        return tools, list_tools_item(server.label, offered)

    # -- the model's calls -----------------------------------------------------------------------

    def route(self, item: Mapping[str, Any]) -> Route | None:
        """The MCP tool a model's function call names, or None (a client's function)."""
        return self.routes.get(str(item.get("name"))) if item.get("type") == "function_call" else None

    def needs_approval(self, route: Route) -> bool:
        return route.server.approval.required(route.tool)

    def may_call(self) -> bool:
        return self.calls < self.budget and not self.last_round

    async def run(self, item: Json, route: Route | None) -> Json:
        """Run an `mcp_call` item's call (when the bounds allow) and return it finished."""
        if route is None:
            result = CallResult(error={"type": "http_error", "code": 400, "message":
                                       f"The MCP server '{item['server_label']}' is not among this request's "
                                       "tools, or does not offer this tool."})
        elif not self.may_call():
            result = CallResult(error={"type": "http_error", "code": 429, "message":
                                       f"Not run: this response reached its limit of {self.budget} MCP tool calls."})
        else:
            self.calls += 1
            self.executed.add(item["id"])
            try:
                arguments = orjson.loads(item["arguments"] or "{}")
            except orjson.JSONDecodeError:
                arguments = None
            if not isinstance(arguments, dict):
                result = CallResult(error={"type": "mcp_protocol_error", "code": -32602,
                                           "message": "The tool call's arguments are not a JSON object."})
            else:
                result = await call_tool(route.server, route.tool.name, arguments, self.limits)
        done = dict(item)
        done["status"] = "failed" if result.error is not None else "completed"
        done["output"] = result.output
        done["error"] = result.error
        return done

    def end_round(self, model_items: list[Json], finished: list[Json]) -> bool:
        """After a model call: True when the model must be called again with the tool results. `finished`
        are the client's items made from `model_items`, in the same order."""
        self.rounds += 1
        ran = any(f.get("id") in self.executed for f in finished)
        waiting = any(f.get("type") == "mcp_approval_request" for f in finished)
        client = any(m.get("type") in _CLIENT_ACTIONS and self.route(m) is None for m in model_items)
        if self.last_round or not ran or waiting or client:
            return False
        # The model's items, then every result: calls made together are answered together.
        self.history.items += model_items
        self.history.items += [function_output(m["call_id"], call_text(f)) for m, f in
                               zip(model_items, finished, strict=False) if f.get("type") == "mcp_call"]
        self.last_round = self.rounds >= self.limits.max_rounds - 1 or self.calls >= self.budget
        return True

    # -- the requests the model gets, and the client's Response ------------------------------------

    def inner_request(self) -> ProviderRequest:
        body = {k: v for k, v in self.req.body.items() if k not in ("max_tool_calls", "tools", "tool_choice")}
        others = [t for t in self.req.body.get("tools") or [] if t.get("type") != "mcp"]
        tools = others + self.function_tools
        if tools:
            body["tools"] = tools
        choice = self._tool_choice()
        if choice is not None and tools:
            body["tool_choice"] = choice
        shell = dict(self.req.shell)
        shell["tools"] = [t for t in shell.get("tools") or [] if t.get("type") != "mcp"] + self.function_tools
        shell["tool_choice"] = choice if choice is not None and tools else "auto"
        return dataclasses.replace(self.req, body=body, shell=shell, input_items=list(self.history.items))

    def _tool_choice(self) -> Any:
        choice = self.req.body.get("tool_choice")
        if self.last_round:
            return "none"
        if self.rounds > 0 and choice not in (None, "auto", "none"):
            return "auto"  # a forced choice is honoured once, or the model could never answer
        if isinstance(choice, dict) and choice.get("type") == "mcp":
            label, name = choice.get("server_label"), choice.get("name")
            if isinstance(name, str):
                return {"type": "function", "name": function_name(str(label), name)}
            return "required"
        if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
            return {**choice, "tools": [t for entry in choice.get("tools") or [] for t in self._expand(entry)]}
        return choice

    def _expand(self, entry: Any) -> list[Any]:
        if not isinstance(entry, dict) or entry.get("type") != "mcp":
            return [entry]
        label, name = entry.get("server_label"), entry.get("name")
        return [{"type": "function", "name": fn} for fn, r in self.routes.items()
                if r.server.label == label and (name is None or r.tool.name == name)]

    def failed(self, code: str, message: str) -> Json:
        """The Response of a stream that broke after it started: what was done, and the error."""
        return self.response({"status": "failed", "error": {"code": code, "message": message}})

    def add_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.usage = usage if self.usage is None else _sum(self.usage, usage)

    def response(self, last: Mapping[str, Any]) -> Json:
        """The client's Response: the request's echo, the last model call's ending, all the output."""
        resp = dict(self.req.shell)
        for key in ("status", "completed_at", "error", "incomplete_details"):
            if key in last:
                resp[key] = last[key]
        resp["output"] = self.output
        resp["usage"] = self.usage
        return resp


def _sum(a: Json, b: Json) -> Json:
    out = dict(a)
    for key, value in b.items():
        mine = out.get(key)
        if isinstance(value, bool) or value is None:
            out.setdefault(key, value)
        elif isinstance(value, int | float) and isinstance(mine, int | float) and not isinstance(mine, bool):
            out[key] = mine + value
        elif isinstance(value, dict) and isinstance(mine, dict):
            out[key] = _sum(mine, value)
        else:
            out.setdefault(key, value)
    return out
