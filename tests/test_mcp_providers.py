"""The MCP loop over real provider adapters: a bridged Chat Completions model and an Anthropic model
(their strict fakes check every request, so a history the loop sends wrong fails here), JSON and
streamed, with parallel calls, approvals and the call budget."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai import OpenAI

from conftest import MASTER_KEY, ProxyFactory
from fakes.anthropic_upstream import FakeAnthropic
from fakes.chat_upstream import FakeChat
from fakes.mcp_server import FakeMcp
from fakes.server import ServerThread
from grammar import check_stream, validate_openai_event
from sse import post_stream


@pytest.fixture
def mcp() -> Iterator[tuple[FakeMcp, str]]:
    fake = FakeMcp()
    with ServerThread(fake.app) as server:
        yield fake, server.url


@pytest.fixture
def upstreams() -> Iterator[tuple[FakeChat, FakeAnthropic, str, str]]:
    chat, claude = FakeChat(api_key="sk-chat"), FakeAnthropic(api_key="sk-ant")
    with ServerThread(chat.app) as a, ServerThread(claude.app) as b:
        yield chat, claude, a.url, b.url


@pytest.fixture
def proxy(start_proxy: ProxyFactory, upstreams: tuple[FakeChat, FakeAnthropic, str, str]) -> ServerThread:
    _, _, chat_url, claude_url = upstreams
    return start_proxy(f"""
model_list:
  - model_name: bridged
    litellm_params: {{model: deepseek/deepseek-chat, api_base: "{chat_url}/v1", api_key: sk-chat}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: "{claude_url}", api_key: sk-ant}}
litellm_settings:
  user_url_allowed_hosts: [127.0.0.1]  # the fake MCP server; the URL guard refuses loopback otherwise
""", general="  mcp_tool_timeout: 20\n")


@pytest.fixture
def client(proxy: ServerThread) -> Iterator[OpenAI]:
    with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        yield c


def tool(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "mcp", "server_label": "calc", "server_url": url + "/mcp", "require_approval": "never",
            "allowed_tools": ["calculate", "shout"], **extra}


MODELS = ["bridged", "claude"]


@pytest.mark.parametrize("model", MODELS)
def test_json_loop(client: OpenAI, mcp: tuple[FakeMcp, str], model: str) -> None:
    r = client.responses.create(model=model, input="call calc__calculate 2+3*4", tools=[tool(mcp[1])])  # type: ignore[list-item]
    assert [i.type for i in r.output] == ["mcp_list_tools", "mcp_call", "message"]
    assert r.output[1].output == "14" and r.output_text == "Tool results: 14"
    assert r.usage is not None and r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens


@pytest.mark.parametrize("model", MODELS)
def test_stream_loop(proxy: ServerThread, upstreams: tuple[FakeChat, FakeAnthropic, str, str],
                     mcp: tuple[FakeMcp, str], model: str) -> None:
    events = post_stream(proxy.url, MASTER_KEY, {"model": model, "input": "call calc__calculate 6*7",
                                                 "tools": [tool(mcp[1])]})
    for event in events:
        validate_openai_event(event)
    final = check_stream(events)
    assert [i["type"] for i in final["output"]] == ["mcp_list_tools", "mcp_call", "message"]
    assert final["output"][1]["output"] == "42"
    assert final["output"][2]["content"][0]["text"] == "Tool results: 42"
    chat, claude, _, _ = upstreams
    sent = (chat.requests if model == "bridged" else claude.requests)[-1].body
    assert "mcp" not in str([t.get("type") for t in sent["tools"]])  # the adapters only ever see functions


def test_parallel_calls_and_the_call_budget(client: OpenAI, mcp: tuple[FakeMcp, str]) -> None:
    fake, url = mcp
    both = client.responses.create(model="bridged", input="call all", tools=[tool(url)])  # type: ignore[list-item]
    calls = [i for i in both.output if i.type == "mcp_call"]
    assert [(c.name, c.status) for c in calls] == [("calculate", "failed"), ("shout", "completed")]
    assert both.output_text.startswith("Tool results: Error: ") and both.output_text.endswith("; CALL ALL")
    fake.calls.clear()
    capped = client.responses.create(model="claude", input="call all", tools=[tool(url)], max_tool_calls=1)  # type: ignore[list-item]
    calls = [i for i in capped.output if i.type == "mcp_call"]
    assert calls[1].status == "failed" and calls[1].error is not None
    assert "limit of 1 MCP tool calls" in calls[1].error.message  # type: ignore[union-attr]
    assert len(fake.calls) == 1 and capped.status == "completed"


@pytest.mark.parametrize("model", MODELS)
def test_approval_round_trip(client: OpenAI, mcp: tuple[FakeMcp, str], model: str) -> None:
    tools = [tool(mcp[1], require_approval="always")]
    first = client.responses.create(model=model, input="call calc__shout", tools=tools)  # type: ignore[arg-type]
    request = first.output[-1]
    assert request.type == "mcp_approval_request" and request.name == "shout"
    second = client.responses.create(
        model=model, tools=tools, previous_response_id=first.id,  # type: ignore[arg-type]
        input=[{"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}])
    assert [i.type for i in second.output] == ["mcp_call", "message"]
    assert second.output_text == "Tool results: CALL CALC__SHOUT"
    # And the next turn replays the MCP history to the provider as tool calls and results.
    third = client.responses.create(model=model, tools=tools, previous_response_id=second.id,  # type: ignore[arg-type]
                                    input="thanks")
    assert third.output_text == "Echo: thanks"


def test_a_client_function_stops_the_loop(client: OpenAI, mcp: tuple[FakeMcp, str]) -> None:
    own = {"type": "function", "name": "lookup", "strict": False,
           "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}
    r = client.responses.create(model="claude", input="call all", tools=[tool(mcp[1]), own])  # type: ignore[list-item]
    assert [i.type for i in r.output] == ["mcp_list_tools", "function_call", "mcp_call", "mcp_call"]
    assert r.output[1].name == "lookup"  # the client's to run: the response ends here
    done = client.responses.create(model="claude", previous_response_id=r.id, tools=[tool(mcp[1]), own],  # type: ignore[list-item]
                                   input=[{"type": "function_call_output", "call_id": r.output[1].call_id,
                                           "output": "looked up"}])
    assert done.output_text.startswith("Tool results: Error: ") and done.output_text.endswith("; CALL ALL; looked up")


def test_a_model_failing_after_a_tool_call(proxy: ServerThread, client: OpenAI,
                                           upstreams: tuple[FakeChat, FakeAnthropic, str, str]) -> None:
    chat = upstreams[0]
    fake = FakeMcp(on_call=lambda _: chat.fail_next(500))
    with ServerThread(fake.app) as server:
        events = post_stream(proxy.url, MASTER_KEY, {"model": "bridged", "input": "call calc__calculate 1+1",
                                                     "tools": [tool(server.url)]})
        final = check_stream(events)
        assert final["status"] == "failed" and final["error"]["message"]
        assert [i["type"] for i in final["output"]] == ["mcp_list_tools", "mcp_call"]  # what was done is kept
        with pytest.raises(openai.InternalServerError):
            client.responses.create(model="bridged", input="call calc__calculate 1+1", tools=[tool(server.url)])  # type: ignore[list-item]
    assert len(fake.calls) == 2
