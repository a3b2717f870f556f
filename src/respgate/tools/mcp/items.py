"""MCP output items in OpenAI's shapes, the function names models see, and the history a model is
given: `mcp_*` items turned into the function calls and outputs every provider understands.

A tool reaches the model as the function `<server_label>__<tool>` (characters outside
[A-Za-z0-9_-] become `_`; names past 64 characters end in a hash), so tools of different servers
never clash and the name leads back to its server.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ...errors import InvalidRequestError
from ...ids import new_item_id
from .servers import ListedTool

Json = dict[str, Any]

SEPARATOR: Final = "__"
_MAX_NAME: Final = 64
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_-]")
DECLINED: Final = "The user declined to run this tool call."


def function_name(label: str, tool: str) -> str:
    name = f"{label}{SEPARATOR}{_UNSAFE.sub('_', tool)}"
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(f"{label}\0{tool}".encode()).hexdigest()[:8]
    return f"{name[:_MAX_NAME - 9]}_{digest}"


def list_tools_item(label: str, tools: list[ListedTool], error: str | None = None) -> Json:
    item: Json = {"id": new_item_id("mcpl"), "type": "mcp_list_tools", "server_label": label,
                  "tools": [t.item() for t in tools]}
    if error is not None:
        item["error"] = error
    return item


def call_item(label: str, name: str, arguments: str, approval_request_id: str | None = None) -> Json:
    """An `mcp_call` as it starts: in progress, no output yet."""
    return {"id": new_item_id("mcp"), "type": "mcp_call", "status": "in_progress",
            "approval_request_id": approval_request_id, "arguments": arguments, "error": None, "name": name,
            "output": None, "server_label": label}


def approval_item(label: str, name: str, arguments: str) -> Json:
    return {"id": new_item_id("mcpr"), "type": "mcp_approval_request", "arguments": arguments, "name": name,
            "server_label": label}


def call_id_for(item_id: str) -> str:
    """The function call id standing for a stored MCP item: short and plain, as chat APIs want them
    (OpenAI's caps ids at 40 characters), and the same every time the history is replayed."""
    return "call_" + hashlib.sha256(item_id.encode()).hexdigest()[:24]


def function_call(call_id: str, name: str, arguments: str) -> Json:
    return {"id": new_item_id("fc"), "type": "function_call", "status": "completed", "call_id": call_id,
            "name": name, "arguments": arguments}


def function_output(call_id: str, text: str) -> Json:
    return {"id": new_item_id("fco"), "type": "function_call_output", "status": "completed", "call_id": call_id,
            "output": text}


def call_text(item: Mapping[str, Any]) -> str:
    """What the model reads as the result of a stored `mcp_call`."""
    if isinstance(item.get("output"), str):
        return str(item["output"])
    error = item.get("error")
    if isinstance(error, dict):
        if error.get("type") == "mcp_tool_execution_error":
            blocks = error.get("content") or []
            return "Error: " + " ".join(str(b.get("text", "")) for b in blocks if isinstance(b, dict))
        return f"Error: {error.get('message', 'the tool call failed')}"
    if isinstance(error, str):
        return f"Error: {error}"
    return "Error: the tool call did not finish."


@dataclass(slots=True)
class Approved:
    """An approval request the client approved in this turn: to run before the model continues."""

    request: Json
    call: Json  # the function_call standing for it in the model's history
    result: Json  # its function_call_output, filled in once the call has run


@dataclass(slots=True)
class Replay:
    """The model's view of the history, what it says about the servers, and what waits to run."""

    items: list[Json] = field(default_factory=list)
    listed: dict[str, list[ListedTool]] = field(default_factory=dict)  # label -> tools already listed
    approved: list[Approved] = field(default_factory=list)


def replay(items: list[Json]) -> Replay:
    """History for a model: each `mcp_call` as a function call and its output; an approval request as a
    call the user declined, or one about to run when approved in this turn; listings remembered.

    Calls made together stay together: a run of calls is followed by all their outputs, as a model that
    made parallel calls expects (Anthropic wants every result of a turn in the very next message)."""
    answers = {i.get("approval_request_id"): i for i in items if i.get("type") == "mcp_approval_response"}
    done = {i.get("approval_request_id") for i in items if i.get("type") == "mcp_call"}
    requests = {i.get("id") for i in items if i.get("type") == "mcp_approval_request"}
    missing = next((key for key in answers if key not in requests), None)
    if missing is not None:
        raise InvalidRequestError(f"No MCP approval request with id '{missing}' was found in this conversation.",
                                  param="input", code="invalid_value")
    out = Replay()
    outputs: list[Json] = []  # of the current run of calls
    for item in items:
        kind = item.get("type")
        if kind == "mcp_list_tools":
            if not item.get("error"):
                out.listed[str(item.get("server_label"))] = [
                    t for raw in item.get("tools") or [] if (t := ListedTool.from_item(raw)) is not None]
        elif kind == "mcp_call":
            call = _call_for(item)
            out.items.append(call)
            outputs.append(function_output(call["call_id"], call_text(item)))
        elif kind == "mcp_approval_request":
            answer = answers.get(item.get("id"))
            if answer is None or item.get("id") in done:
                continue  # unanswered (the model moved on), or its mcp_call says what happened
            call = _call_for(item)
            out.items.append(call)
            if answer.get("approve") is True:
                result = function_output(call["call_id"], "")
                out.approved.append(Approved(item, call, result))
            else:
                reason = answer.get("reason")
                result = function_output(call["call_id"], DECLINED + (f" Reason: {reason}" if reason else ""))
            outputs.append(result)
        elif kind == "mcp_approval_response":
            continue
        elif kind == "function_call":
            out.items.append(item)
        else:
            out.items += outputs
            outputs = []
            out.items.append(item)
    out.items += outputs
    return out


def _call_for(item: Mapping[str, Any]) -> Json:
    return function_call(call_id_for(str(item.get("id"))), _name(item), str(item.get("arguments") or "{}"))


def _name(item: Mapping[str, Any]) -> str:
    return function_name(str(item.get("server_label") or ""), str(item.get("name") or ""))
