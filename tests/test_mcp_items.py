"""The history a model reads when a conversation holds MCP items, and the names it calls tools by."""

from __future__ import annotations

from typing import Any

import pytest

from respgate.errors import InvalidRequestError
from respgate.tools.mcp.items import DECLINED, call_id_for, function_name, replay
from respgate.tools.mcp.servers import ApprovalPolicy, ListedTool, ToolFilter


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def mcp_call(item_id: str, name: str, output: str | None = None, error: Any = None,
             approval: str | None = None) -> dict[str, Any]:
    return {"id": item_id, "type": "mcp_call", "server_label": "calc", "name": name, "arguments": "{}",
            "output": output, "error": error, "status": "completed", "approval_request_id": approval}


def shape(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(i["type"], i.get("call_id") or i.get("role", "")) for i in items]


def test_parallel_calls_are_followed_by_all_their_outputs() -> None:
    history = [user("hi"), {"id": "l1", "type": "mcp_list_tools", "server_label": "calc",
                            "tools": [{"name": "add", "input_schema": {"type": "object"}}]},
               mcp_call("a", "add", output="3"),
               mcp_call("b", "sub", error={"type": "mcp_tool_execution_error", "content": [{"type": "text",
                                                                                            "text": "nope"}]}),
               {"id": "m", "type": "message", "role": "assistant", "content": []}]
    out = replay(history)
    a, b = call_id_for("a"), call_id_for("b")
    assert shape(out.items) == [("message", "user"), ("function_call", a), ("function_call", b),
                                ("function_call_output", a), ("function_call_output", b), ("message", "assistant")]
    assert out.items[1]["name"] == "calc__add"
    assert [i["output"] for i in out.items[3:5]] == ["3", "Error: nope"]
    assert [t.name for t in out.listed["calc"]] == ["add"]
    assert replay(history).items[1]["call_id"] == a  # the same ids on every replay


def test_a_client_function_output_comes_after_the_mcp_outputs_of_its_turn() -> None:
    own = {"id": "fc1", "type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"}
    out = replay([user("x"), own, mcp_call("a", "add", output="1"),
                  {"type": "function_call_output", "call_id": "c1", "output": "mine"}])
    assert shape(out.items)[1:] == [("function_call", "c1"), ("function_call", call_id_for("a")),
                                    ("function_call_output", call_id_for("a")), ("function_call_output", "c1")]


def test_approvals_pending_declined_done_and_unanswered() -> None:
    def request(rid: str) -> dict[str, Any]:
        return {"id": rid, "type": "mcp_approval_request", "server_label": "calc", "name": "add", "arguments": "{}"}

    def answer(rid: str, approve: bool) -> dict[str, Any]:
        return {"type": "mcp_approval_response", "approval_request_id": rid, "approve": approve}

    out = replay([request("r1"), request("r2"), request("r3"), request("r4"),
                  answer("r1", True), answer("r2", False), answer("r3", True),
                  mcp_call("c3", "add", output="ok", approval="r3")])
    # r1 waits to run, r2 was declined, r3 ran (its mcp_call tells), r4 was never answered.
    assert [a.request["id"] for a in out.approved] == ["r1"]
    calls = [i for i in out.items if i["type"] == "function_call"]
    assert [c["call_id"] for c in calls] == [call_id_for("r1"), call_id_for("r2"), call_id_for("c3")]
    declined = next(i for i in out.items if i.get("call_id") == call_id_for("r2") and i["type"].endswith("output"))
    assert declined["output"] == DECLINED
    assert out.approved[0].result in out.items  # filled in once r1 has run


def test_an_answer_to_nothing_is_a_400() -> None:
    with pytest.raises(InvalidRequestError) as e:
        replay([{"type": "mcp_approval_response", "approval_request_id": "ghost", "approve": True}])
    assert e.value.param == "input"


def test_function_names_are_safe_and_bounded() -> None:
    assert function_name("calc", "add") == "calc__add"
    assert function_name("fs", "read.file/v2") == "fs__read_file_v2"
    long = function_name("server", "x" * 100)
    assert len(long) == 64 and long != function_name("server", "x" * 99)


def test_approval_policy() -> None:
    tool = ListedTool("add", {}, annotations={"readOnlyHint": True})
    other = ListedTool("rm", {})
    only_always = ApprovalPolicy(always=ToolFilter(frozenset({"rm"})), default=False)
    assert not only_always.required(tool) and only_always.required(other)
    read_only_free = ApprovalPolicy(never=ToolFilter(read_only=True))
    assert not read_only_free.required(tool) and read_only_free.required(other)
    assert ApprovalPolicy().required(tool)
