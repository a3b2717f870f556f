"""The MCP tool loop the gateway runs for non-native models, end to end: the official `openai` client
against the proxy, a mock model that calls the tool named in its input, and a real MCP server
(tests/fakes/mcp_server.py) on 127.0.0.1 over streamable HTTP and SSE."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from conftest import MASTER_KEY, MOCK_MODELS, ProxyFactory
from fakes.mcp_server import FakeMcp
from fakes.server import ServerThread
from grammar import check_stream, validate_openai_event
from sse import post_stream

# The fake MCP servers listen on 127.0.0.1, which the proxy's URL guard refuses unless allowed.
MODELS = MOCK_MODELS + "litellm_settings:\n  user_url_allowed_hosts: [127.0.0.1]\n"
LIMITS = """
  mcp_tool_timeout: 20
  mcp_list_timeout: 20
  mcp_max_output_chars: 1000
"""


@pytest.fixture
def mcp() -> Iterator[tuple[FakeMcp, str]]:
    fake = FakeMcp(hostile=True)
    with ServerThread(fake.app) as server:
        yield fake, server.url


@pytest.fixture
def proxy(start_proxy: ProxyFactory) -> ServerThread:
    return start_proxy(MODELS, general=LIMITS)


@pytest.fixture
def client(proxy: ServerThread) -> Iterator[OpenAI]:
    with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        yield c


def tool(url: str, path: str = "/mcp", **extra: Any) -> dict[str, Any]:
    return {"type": "mcp", "server_label": "calc", "server_url": url + path, "require_approval": "never", **extra}


def types(response: Any) -> list[str]:
    return [item.type for item in response.output]


def streamed(proxy: ServerThread, body: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The raw events (each valid against its openai model) and the grammar-checked final response."""
    events = post_stream(proxy.url, MASTER_KEY, body)
    for event in events:
        validate_openai_event(event)
    return events, check_stream(events)


def test_the_model_calls_a_tool_and_answers_with_its_result(client: OpenAI, mcp: tuple[FakeMcp, str]) -> None:
    fake, url = mcp
    r = client.responses.create(model="mock/tool", input="calc__calculate 2+3*4", tools=[tool(url)])
    assert r.status == "completed"
    assert types(r) == ["mcp_list_tools", "mcp_call", "message"]
    listing, call, _ = r.output
    assert listing.server_label == "calc" and {t.name for t in listing.tools} >= {"calculate", "now", "shout"}
    assert (call.name, call.server_label, call.status, call.output, call.error) == (
        "calculate", "calc", "completed", "14", None)
    assert call.arguments == '{"q":"calc__calculate 2+3*4"}'
    assert r.output_text == "Tool result: 14"
    assert fake.calls == [("calculate", {"q": "calc__calculate 2+3*4"})]
    # Two model calls, one usage: the second call read the first's output too.
    assert r.usage is not None and r.usage.input_tokens > 8 and r.usage.total_tokens == (
        r.usage.input_tokens + r.usage.output_tokens)
    # The echo shows the client's own tool, and GET gives back the same response.
    assert [t.type for t in r.tools] == ["mcp"]
    assert client.responses.retrieve(r.id).model_dump() == r.model_dump()


def test_the_stream_is_one_coherent_response(proxy: ServerThread, client: OpenAI, mcp: tuple[FakeMcp, str]) -> None:
    _, url = mcp
    events, final = streamed(proxy, {"model": "mock/tool", "input": "calc__calculate 6*7", "tools": [tool(url)]})
    kinds = [e["type"] for e in events]
    assert kinds.count("response.created") == 1 and kinds.count("response.completed") == 1
    call_events = [k for k in kinds if "mcp_call" in k]
    assert call_events[0] == "response.mcp_call.in_progress" and call_events[-1] == "response.mcp_call.completed"
    assert "response.mcp_call_arguments.done" in call_events and "response.mcp_list_tools.completed" in kinds
    assert "response.function_call_arguments.delta" not in kinds  # the model's call is shown as mcp_call only
    assert [i["type"] for i in final["output"]] == ["mcp_list_tools", "mcp_call", "message"]
    assert final["output"][1]["output"] == "42"
    assert final["output"][2]["content"][0]["text"] == "Tool result: 42"
    assert client.responses.retrieve(final["id"]).model_dump(mode="json", exclude_unset=True)["output"] == (
        final["output"])


def test_the_openai_stream_helper_accumulates_it(client: OpenAI, mcp: tuple[FakeMcp, str]) -> None:
    _, url = mcp
    with client.responses.stream(model="mock/tool", input="calc__shout hello", tools=[tool(url)]) as stream:
        seen = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.mcp_call.completed" in seen
    assert final.output_text == "Tool result: CALC__SHOUT HELLO"


def test_sse_transport_for_a_url_ending_in_sse(client: OpenAI, mcp: tuple[FakeMcp, str]) -> None:
    fake, url = mcp
    r = client.responses.create(model="mock/tool", input="calc__calculate 1+1", tools=[tool(url, "/sse")])
    assert types(r) == ["mcp_list_tools", "mcp_call", "message"]
    assert r.output[1].output == "2" and fake.calls == [("calculate", {"q": "calc__calculate 1+1"})]


def test_allowed_tools_limit_what_is_listed_and_callable(client: OpenAI, mcp: tuple[FakeMcp, str]) -> None:
    fake, url = mcp
    r = client.responses.create(model="mock/tool", input="calc__calculate 9-4",
                                tools=[tool(url, allowed_tools=["shout"])])
    assert [t.name for t in r.output[0].tools] == ["shout"]
    # The mock calls the first tool it has when the named one is not offered.
    assert r.output[1].name == "shout" and fake.calls == [("shout", {"q": "calc__calculate 9-4"})]
    filtered = client.responses.create(model="mock/tool", input="x",
                                       tools=[tool(url, allowed_tools={"read_only": True})])
    assert [t.name for t in filtered.output[0].tools] == ["shout"]


def test_a_tool_error_is_a_failed_mcp_call_the_model_reads(client: OpenAI, mcp: tuple[FakeMcp, str]) -> None:
    r = client.responses.create(model="mock/tool", input="calc__calculate nothing to compute",
                                tools=[tool(mcp[1])])
    call = r.output[1]
    assert call.type == "mcp_call" and call.status == "failed" and call.output is None
    assert call.error is not None and call.error.type == "mcp_tool_execution_error"
    assert "No arithmetic expression" in str(call.error.content)
    assert r.output_text.startswith("Tool result: Error: ") and "No arithmetic expression" in r.output_text


def test_a_failing_tool_in_the_stream_sends_mcp_call_failed(proxy: ServerThread, mcp: tuple[FakeMcp, str]) -> None:
    events, final = streamed(proxy, {"model": "mock/tool", "input": "calc__boom now", "tools": [tool(mcp[1])]})
    assert "response.mcp_call.failed" in [e["type"] for e in events]
    assert final["output"][1]["error"]["type"] == "mcp_tool_execution_error"
    assert final["status"] == "completed"


def test_a_server_that_is_down_gives_a_failed_listing_and_no_hang(client: OpenAI, proxy: ServerThread) -> None:
    with ServerThread(FakeMcp().app) as gone:
        url = gone.url
    r = client.responses.create(model="mock/tool", input="calc__calculate 1+1", tools=[tool(url)])
    assert types(r) == ["mcp_list_tools", "message"]
    assert r.output[0].error is not None and "could not be reached" in r.output[0].error
    assert r.output_text == "calc__calculate 1+1"  # no tools left: the mock just echoes
    events, final = streamed(proxy, {"model": "mock/tool", "input": "hi", "tools": [tool(url)]})
    assert "response.mcp_list_tools.failed" in [e["type"] for e in events]
    assert final["output"][0]["error"]


def test_a_huge_output_is_cut_with_a_marker(client: OpenAI, mcp: tuple[FakeMcp, str]) -> None:
    r = client.responses.create(model="mock/tool", input="calc__huge please", tools=[tool(mcp[1])])
    output = r.output[1].output
    assert output is not None and len(output) < 1200
    assert output.endswith("[output truncated by respgate: 2000000 characters, limit 1000]")


def test_a_slow_tool_times_out(start_proxy: ProxyFactory, mcp: tuple[FakeMcp, str]) -> None:
    proxy = start_proxy(MODELS, general="  mcp_tool_timeout: 0.5\n")
    with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        r = c.responses.create(model="mock/tool", input="calc__slow please", tools=[tool(mcp[1])])
    call = r.output[1]
    assert call.status == "failed" and call.error is not None
    assert call.error.type == "http_error" and call.error.code == 504
    assert "did not answer within 0.5 seconds" in call.error.message
    assert r.output_text.startswith("Tool result: Error: The MCP server 'calc' did not answer")


def test_a_slow_listing_times_out(start_proxy: ProxyFactory) -> None:
    fake = FakeMcp(slow_listing=30)
    proxy = start_proxy(MODELS, general="  mcp_list_timeout: 0.3\n")
    with ServerThread(fake.app) as server, OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY,
                                                   max_retries=0) as c:
        r = c.responses.create(model="mock/tool", input="hi", tools=[tool(server.url)])
    assert r.output[0].error == "The MCP server 'calc' did not answer within 0.3 seconds."


def test_approval_then_approved_call_in_a_second_request(client: OpenAI, mcp: tuple[FakeMcp, str]) -> None:
    fake, url = mcp
    tools = [tool(url, require_approval="always")]
    first = client.responses.create(model="mock/tool", input="calc__calculate 10/4", tools=tools)
    assert types(first) == ["mcp_list_tools", "mcp_approval_request"]
    request = first.output[1]
    assert (request.name, request.server_label, request.arguments) == (
        "calculate", "calc", '{"q":"calc__calculate 10/4"}')
    assert fake.calls == []
    second = client.responses.create(
        model="mock/tool", tools=tools, previous_response_id=first.id,
        input=[{"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}])
    assert types(second) == ["mcp_call", "message"]  # the tools listed before are not listed again
    assert second.output[0].approval_request_id == request.id and second.output[0].output == "2.5"
    assert second.output_text == "Tool result: 2.5"
    assert fake.calls == [("calculate", {"q": "calc__calculate 10/4"})]
    # The conversation goes on over the MCP history (replayed to the model as function calls).
    third = client.responses.create(model="mock/recall", previous_response_id=second.id, input="and then?")
    assert third.output_text == "calc__calculate 10/4 | and then?"


def test_a_declined_call_is_not_run(client: OpenAI, mcp: tuple[FakeMcp, str]) -> None:
    fake, url = mcp
    tools = [tool(url, require_approval="always")]
    first = client.responses.create(model="mock/tool", input="calc__calculate 1+1", tools=tools)
    second = client.responses.create(
        model="mock/tool", tools=tools, previous_response_id=first.id,
        input=[{"type": "mcp_approval_response", "approval_request_id": first.output[1].id, "approve": False,
                "reason": "not now"}])
    assert types(second) == ["message"]
    assert second.output_text == "Tool result: The user declined to run this tool call. Reason: not now"
    assert fake.calls == []


def test_approval_in_streams(proxy: ServerThread, mcp: tuple[FakeMcp, str]) -> None:
    url = mcp[1]
    tools = [tool(url, require_approval={"always": {"tool_names": ["calculate"]}})]
    _, first = streamed(proxy, {"model": "mock/tool", "input": "calc__calculate 3*3", "tools": tools})
    request = first["output"][1]
    assert request["type"] == "mcp_approval_request"
    events, second = streamed(proxy, {
        "model": "mock/tool", "tools": tools, "previous_response_id": first["id"],
        "input": [{"type": "mcp_approval_response", "approval_request_id": request["id"], "approve": True}]})
    assert [i["type"] for i in second["output"]] == ["mcp_call", "message"]
    assert second["output"][0]["output"] == "9"
    assert [e["type"] for e in events][2:5] == ["response.output_item.added", "response.mcp_call.in_progress",
                                                "response.mcp_call_arguments.delta"]


def test_require_approval_filters(client: OpenAI, mcp: tuple[FakeMcp, str]) -> None:
    url = mcp[1]
    never = client.responses.create(model="mock/tool", input="calc__calculate 2*2",
                                    tools=[tool(url, require_approval={"never": {"tool_names": ["calculate"]}})])
    assert types(never) == ["mcp_list_tools", "mcp_call", "message"]
    other = client.responses.create(model="mock/tool", input="calc__now UTC",
                                    tools=[tool(url, require_approval={"never": {"tool_names": ["calculate"]}})])
    assert types(other) == ["mcp_list_tools", "mcp_approval_request"]
    default = client.responses.create(model="mock/tool", input="calc__shout x",
                                      tools=[{k: v for k, v in tool(url).items() if k != "require_approval"}])
    assert types(default) == ["mcp_list_tools", "mcp_approval_request"]  # OpenAI's default: always


def test_an_approval_for_an_unknown_request_is_a_400(client: OpenAI, mcp: tuple[FakeMcp, str]) -> None:
    first = client.responses.create(model="mock/echo", input="hi")
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="mock/tool", tools=[tool(mcp[1])], previous_response_id=first.id,
                                input=[{"type": "mcp_approval_response", "approval_request_id": "mcpr_nope",
                                        "approve": True}])
    assert e.value.body["param"] == "input" and "mcpr_nope" in e.value.body["message"]  # type: ignore[index]


@pytest.mark.parametrize(("tool_patch", "param"), [
    ({"server_url": "ftp://x"}, "tools[0].server_url"),
    ({"server_url": None, "connector_id": "connector_gmail"}, "tools[0].connector_id"),
    ({"server_label": "a__b"}, "tools[0].server_label"),
    ({"require_approval": "sometimes"}, "tools[0].require_approval"),
])
def test_bad_mcp_tools_are_400s_naming_the_field(proxy: ServerThread, tool_patch: dict[str, Any], param: str) -> None:
    bad = {k: v for k, v in {**tool("http://127.0.0.1:9"), **tool_patch}.items() if v is not None}
    r = httpx.post(proxy.url + "/v1/responses", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                   json={"model": "mock/tool", "input": "x", "tools": [bad]})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_duplicate_labels_are_a_400(proxy: ServerThread) -> None:
    r = httpx.post(proxy.url + "/v1/responses", headers={"Authorization": f"Bearer {MASTER_KEY}"},
                   json={"model": "mock/tool", "input": "x",
                         "tools": [tool("http://127.0.0.1:9"), tool("http://127.0.0.1:8")]})
    assert r.status_code == 400 and "Duplicate MCP server_label 'calc'" in r.json()["error"]["message"]


def test_max_tool_calls_bounds_the_calls(client: OpenAI, mcp: tuple[FakeMcp, str]) -> None:
    fake, url = mcp
    r = client.responses.create(model="mock/tool", input="calc__calculate 1+2", tools=[tool(url)], max_tool_calls=1)
    assert r.output[1].status == "completed" and r.output_text == "Tool result: 3"
    assert len(fake.calls) == 1


def test_a_background_run_loops_too(client: OpenAI, mcp: tuple[FakeMcp, str]) -> None:
    queued = client.responses.create(model="mock/tool", input="calc__calculate 5*5", tools=[tool(mcp[1])],
                                     background=True)
    assert queued.status == "queued"
    deadline = time.monotonic() + 20
    done = client.responses.retrieve(queued.id)
    while done.status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.02)
        done = client.responses.retrieve(queued.id)
    assert done.status == "completed"
    assert types(done) == ["mcp_list_tools", "mcp_call", "message"] and done.output_text == "Tool result: 25"
    replayed = [e.type for e in client.responses.retrieve(queued.id, stream=True)]
    assert replayed[:3] == ["response.created", "response.queued", "response.in_progress"]
    assert "response.mcp_call.completed" in replayed and replayed[-1] == "response.completed"


def test_a_call_cut_short_is_never_run(proxy: ServerThread, client: OpenAI, mcp: tuple[FakeMcp, str]) -> None:
    fake, url = mcp
    long = "calc__calculate " + "1+" * 40 + "1"
    r = client.responses.create(model="mock/tool", input=long, tools=[tool(url)], max_output_tokens=16)
    assert r.status == "incomplete" and r.incomplete_details is not None
    assert types(r) == ["mcp_list_tools", "mcp_call"] and r.output[1].status == "incomplete"
    events, final = streamed(proxy, {"model": "mock/tool", "input": long, "tools": [tool(url)],
                                     "max_output_tokens": 16})
    assert final["status"] == "incomplete" and final["output"][1]["status"] == "incomplete"
    kinds = [e["type"] for e in events]
    assert "response.mcp_call.in_progress" in kinds
    assert "response.mcp_call.completed" not in kinds and "response.mcp_call.failed" not in kinds
    assert fake.calls == []


def test_the_echoed_mcp_tool_carries_no_credentials() -> None:
    from respgate.shell import response_shell

    tool = {"type": "mcp", "server_label": "calc", "server_url": "https://mcp.example.com/mcp",
            "authorization": "secret-token-1", "headers": {"X-Api-Key": "secret-token-2"}, "require_approval": "never"}
    echoed = response_shell({"model": "m", "tools": [tool]}, response_id="resp_1", model="m", created_at=0)["tools"]
    assert echoed == [{"type": "mcp", "server_label": "calc", "server_url": "https://mcp.example.com/mcp",
                       "headers": None, "require_approval": "never"}]
    assert "secret-token" not in str(echoed)
