"""Computer use: OpenAI's computer tool through the proxy to Claude's computer tool and back.

The official openai SDK drives the loop (computer_call -> computer_call_output with a screenshot ->
the next computer_call or the answer) against the strict fake Messages API, which checks the beta
header each tool version needs and the actions it takes. OpenAI upstreams get the tool untouched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from conftest import MASTER_KEY, ProxyFactory
from fakes.anthropic_upstream import FakeAnthropic
from fakes.openai_upstream import FakeOpenAI
from fakes.server import ServerThread
from grammar import check_stream, validate_openai_event
from respgate.providers.anthropic import computer
from sse import post_stream

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9aw"
       "AAAABJRU5ErkJggg==")
PREVIEW: Any = {"type": "computer_use_preview", "display_width": 1280, "display_height": 800, "environment": "linux"}


@pytest.fixture
def anthropic() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic(api_key="sk-ant")
    with ServerThread(fake.app) as server:
        fake.url = server.url  # type: ignore[attr-defined]
        yield fake


@pytest.fixture
def proxy(start_proxy: ProxyFactory, anthropic: FakeAnthropic) -> ServerThread:
    url = anthropic.url  # type: ignore[attr-defined]
    return start_proxy(f"""
model_list:
  - model_name: sonnet
    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_base: "{url}", api_key: sk-ant}}
  - model_name: opus
    litellm_params: {{model: anthropic/claude-opus-4-5-20251101, api_base: "{url}", api_key: sk-ant,
                      display_width_px: 1024, display_height_px: 768, display_number: 1,
                      anthropic_beta: "context-1m-2025-08-07"}}
""")


@pytest.fixture
def client(proxy: ServerThread) -> Iterator[OpenAI]:
    with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        yield c


def probe(action: dict[str, Any]) -> str:
    return "computer " + json.dumps(action)


def screenshot_of(call_id: str) -> Any:
    return {"type": "computer_call_output", "call_id": call_id, "acknowledged_safety_checks": [],
            "output": {"type": "computer_screenshot", "image_url": PNG}}


def test_a_computer_use_loop_with_claude(client: OpenAI, anthropic: FakeAnthropic) -> None:
    first = client.responses.create(model="sonnet", tools=[PREVIEW], truncation="auto",
                                    input=probe({"action": "left_click", "coordinate": [100, 200]}))
    call = first.output[-1]
    assert call.type == "computer_call" and call.call_id.startswith("toolu_")
    assert call.action is not None and call.action.model_dump(exclude_none=True) == {
        "type": "click", "button": "left", "x": 100, "y": 200}
    assert call.pending_safety_checks == [] and call.status == "completed"
    sent = anthropic.requests[-1]
    assert sent.body["tools"] == [{"type": "computer_20250124", "name": "computer", "display_width_px": 1280,
                                   "display_height_px": 800}]
    assert sent.headers["anthropic-beta"] == "computer-use-2025-01-24"

    second = client.responses.create(model="sonnet", tools=[PREVIEW], previous_response_id=first.id,
                                     input=[screenshot_of(call.call_id)])
    assert second.output_text == "Tool results: [image image/png]"
    messages = anthropic.requests[-1].body["messages"]
    assert messages[1]["content"] == [{"type": "tool_use", "id": call.call_id, "name": "computer",
                                       "input": {"action": "left_click", "coordinate": [100, 200]}}]
    result = messages[2]["content"][0]
    assert result["tool_use_id"] == call.call_id
    assert result["content"][0]["type"] == "image" and result["content"][0]["source"]["media_type"] == "image/png"
    items = client.responses.input_items.list(second.id).data
    assert items[0].type == "computer_call_output"  # the turn's own input is stored as sent


def test_a_streamed_computer_call_and_the_same_as_json(proxy: ServerThread, anthropic: FakeAnthropic) -> None:
    body = {"model": "sonnet", "tools": [PREVIEW],
            "input": probe({"action": "scroll", "coordinate": [10, 20], "scroll_direction": "up",
                            "scroll_amount": 3, "text": "shift"})}
    events = post_stream(proxy.url, MASTER_KEY, body)
    for event in events:
        validate_openai_event(event)
    final = check_stream(events)
    assert anthropic.requests[-1].body["stream"] is True
    call = final["output"][-1]
    assert call["type"] == "computer_call"
    assert call["action"] == {"type": "scroll", "x": 10, "y": 20, "scroll_x": 0, "scroll_y": -300, "keys": ["shift"]}
    as_json = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json=body).json()
    assert as_json["output"][-1]["action"] == call["action"]
    follow = check_stream(post_stream(proxy.url, MASTER_KEY, {
        "model": "sonnet", "tools": [PREVIEW], "previous_response_id": final["id"],
        "input": [screenshot_of(call["call_id"])]}))
    assert follow["output"][-1]["content"][0]["text"] == "Tool results: [image image/png]"
    assert anthropic.requests[-1].body["messages"][1]["content"][0]["input"] == {
        "action": "scroll", "coordinate": [10, 20], "scroll_direction": "up", "scroll_amount": 3, "text": "shift"}


def test_openai_computer_tool_with_the_deployments_display(client: OpenAI, anthropic: FakeAnthropic) -> None:
    r = client.responses.create(model="opus", tools=[{"type": "computer"}],
                                input=probe({"action": "type", "text": "hello"}))
    call = r.output[-1]
    assert call.type == "computer_call" and call.action is None
    assert [a.model_dump() for a in call.actions or []] == [{"type": "type", "text": "hello"}]
    sent = anthropic.requests[-1]
    assert sent.body["tools"] == [{"type": "computer_20251124", "name": "computer", "display_width_px": 1024,
                                   "display_height_px": 768, "display_number": 1}]
    assert sent.headers["anthropic-beta"] == "context-1m-2025-08-07,computer-use-2025-11-24"
    again = client.responses.create(model="opus", tools=[{"type": "computer"}], previous_response_id=r.id,
                                    input=[screenshot_of(call.call_id)])
    assert again.output_text == "Tool results: [image image/png]"


def test_a_click_without_coordinates_happens_at_the_last_known_position(client: OpenAI) -> None:
    first = client.responses.create(model="sonnet", tools=[PREVIEW],
                                    input=probe({"action": "mouse_move", "coordinate": [640, 400]}))
    move = first.output[-1]
    assert move.type == "computer_call"
    second = client.responses.create(model="sonnet", tools=[PREVIEW], previous_response_id=first.id, input=[
        screenshot_of(move.call_id), {"role": "user", "content": probe({"action": "double_click"})}])
    click = second.output[-1]
    assert click.type == "computer_call" and click.action is not None
    assert click.action.model_dump() == {"type": "double_click", "x": 640, "y": 400, "keys": None}


def test_a_batch_of_actions_from_openai_replays_as_several_tool_uses(client: OpenAI,
                                                                     anthropic: FakeAnthropic) -> None:
    batch: Any = {"type": "computer_call", "id": "cu_1", "call_id": "call_abc", "status": "completed",
                  "pending_safety_checks": [{"id": "cu_sc_1", "code": "malicious_instructions", "message": "m"}],
                  "actions": [{"type": "click", "button": "left", "x": 5, "y": 6},
                              {"type": "keypress", "keys": ["CTRL", "A"]}]}
    r = client.responses.create(model="opus", tools=[{"type": "computer"}], input=[
        {"role": "user", "content": "select all"}, batch, screenshot_of("call_abc")])
    assert r.output_text == "Tool results: done; [image image/png]"
    messages = anthropic.requests[-1].body["messages"]
    assert [b["id"] for b in messages[1]["content"]] == ["call_abc", "call_abc_batch1"]
    assert messages[1]["content"][1]["input"] == {"action": "key", "text": "ctrl+a"}
    assert [b["tool_use_id"] for b in messages[2]["content"]] == ["call_abc_batch1", "call_abc"]


@pytest.mark.parametrize(("tools", "param"), [
    ([{"type": "computer"}], "tools[0].type"),  # no display size for this deployment
    ([PREVIEW, {"type": "function", "name": "computer", "parameters": {"type": "object"}}], "tools[1].name"),
    ([PREVIEW, PREVIEW], "tools[1].type"),
])
def test_computer_tools_claude_cannot_take(client: OpenAI, tools: Any, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="sonnet", tools=tools, input="hi")
    assert err.value.body["param"] == param  # type: ignore[index]


def test_a_screenshot_by_file_id_is_refused(client: OpenAI) -> None:
    first = client.responses.create(model="sonnet", tools=[PREVIEW], input=probe({"action": "screenshot"}))
    output: Any = {"type": "computer_screenshot", "file_id": "file_1"}
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="sonnet", tools=[PREVIEW], previous_response_id=first.id, input=[
            {"type": "computer_call_output", "call_id": first.output[-1].call_id, "output": output}])  # type: ignore[union-attr]
    assert err.value.body["param"].endswith(".output.file_id")  # type: ignore[index]  # counted over the chain


# --- the action tables ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("claude", "openai_action"), [
    ({"action": "left_click", "coordinate": [1, 2]}, {"type": "click", "button": "left", "x": 1, "y": 2}),
    ({"action": "right_click", "coordinate": [1, 2], "text": "ctrl"},
     {"type": "click", "button": "right", "x": 1, "y": 2, "keys": ["ctrl"]}),
    ({"action": "middle_click", "coordinate": [1, 2]}, {"type": "click", "button": "wheel", "x": 1, "y": 2}),
    ({"action": "double_click", "coordinate": [3, 4]}, {"type": "double_click", "x": 3, "y": 4, "keys": None}),
    ({"action": "left_click_drag", "start_coordinate": [1, 1], "coordinate": [9, 9]},
     {"type": "drag", "path": [{"x": 1, "y": 1}, {"x": 9, "y": 9}]}),
    ({"action": "key", "text": "ctrl+Return"}, {"type": "keypress", "keys": ["ctrl", "enter"]}),
    ({"action": "type", "text": "hi"}, {"type": "type", "text": "hi"}),
    ({"action": "mouse_move", "coordinate": [5, 5]}, {"type": "move", "x": 5, "y": 5}),
    ({"action": "scroll", "coordinate": [5, 5], "scroll_direction": "right", "scroll_amount": 2},
     {"type": "scroll", "x": 5, "y": 5, "scroll_x": 200, "scroll_y": 0}),
    ({"action": "screenshot"}, {"type": "screenshot"}),
    ({"action": "wait", "duration": 1}, {"type": "wait"}),
])
def test_actions_map_both_ways(claude: dict[str, Any], openai_action: dict[str, Any]) -> None:
    assert computer.to_openai(claude, computer.Cursor()) == openai_action
    assert computer.to_anthropic(openai_action) == claude


@pytest.mark.parametrize(("claude", "openai_action"), [
    ({"action": "triple_click", "coordinate": [1, 2]}, {"type": "double_click", "x": 1, "y": 2, "keys": None}),
    ({"action": "left_mouse_down"}, {"type": "move", "x": 7, "y": 8}),
    ({"action": "hold_key", "text": "shift", "duration": 2}, {"type": "keypress", "keys": ["shift"]}),
    ({"action": "zoom", "region": [0, 0, 10, 10]}, {"type": "screenshot"}),
])
def test_actions_without_a_counterpart_become_the_nearest(claude: dict[str, Any], openai_action: Any) -> None:
    assert computer.to_openai(claude, computer.Cursor(7, 8)) == openai_action


def test_openai_keys_and_buttons_to_claude() -> None:
    assert computer.to_anthropic({"type": "keypress", "keys": ["CMD", "SHIFT", "ArrowUp"]}) == {
        "action": "key", "text": "super+shift+Up"}
    assert computer.to_anthropic({"type": "click", "button": "back", "x": 1, "y": 1}) == {
        "action": "key", "text": "alt+Left"}
    assert computer.to_anthropic({"type": "scroll", "x": 0, "y": 0, "scroll_x": 0, "scroll_y": 250,
                                  "keys": ["ctrl"]}) == {
        "action": "scroll", "coordinate": [0, 0], "scroll_direction": "down", "scroll_amount": 3, "text": "ctrl"}


# --- OpenAI: passed through --------------------------------------------------------------------------------

def test_openai_upstreams_get_the_computer_tool_untouched(start_proxy: ProxyFactory) -> None:
    fake = FakeOpenAI(api_key="sk-up")
    with ServerThread(fake.app) as server:
        proxy = start_proxy(f"""
model_list:
  - model_name: cua
    litellm_params: {{model: openai/computer-use-preview, api_base: "{server.url}/v1", api_key: sk-up}}
""")
        with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as client:
            first = client.responses.create(model="cua", tools=[PREVIEW], input="open the browser",
                                            truncation="auto")
            client.responses.create(model="cua", tools=[PREVIEW], previous_response_id=first.id, truncation="auto",
                                    input=[screenshot_of("call_1")])
        sent = [r for r in fake.requests if r.method == "POST"]
        assert sent[0].body["tools"] == [PREVIEW]
        assert sent[1].body["input"] == [screenshot_of("call_1")]
