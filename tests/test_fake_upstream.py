"""The fake OpenAI upstream, driven by the official `openai` SDK and by raw HTTP."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import AzureOpenAI, OpenAI
from openai.types.responses import FunctionToolParam

from fakes import FakeOpenAI, ServerThread

KEY = "sk-upstream"
RESPONSE_KEYS = [
    "id", "object", "created_at", "status", "background", "completed_at", "error", "frequency_penalty",
    "incomplete_details", "instructions", "max_output_tokens", "max_tool_calls", "model", "output",
    "parallel_tool_calls", "presence_penalty", "previous_response_id", "prompt_cache_key", "reasoning",
    "safety_identifier", "service_tier", "store",
    "temperature", "text", "tool_choice", "tools", "top_logprobs", "top_p", "truncation", "usage", "user",
    "metadata",
]  # fmt: skip
TOOL: FunctionToolParam = {
    "type": "function",
    "name": "lookup",
    "parameters": {"type": "object", "properties": {}},
    "strict": True,
}


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI(api_key=KEY, azure_api_version="2025-04-01-preview")


@pytest.fixture
def server(fake: FakeOpenAI) -> Iterator[ServerThread]:
    with ServerThread(fake.app) as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> Iterator[OpenAI]:
    with OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def http(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {KEY}"}) as raw:
        yield raw


def wait_for_status(client: OpenAI, rid: str, statuses: set[str]) -> Any:
    for _ in range(400):
        response = client.responses.retrieve(rid)
        if response.status in statuses:
            return response
        time.sleep(0.01)
    raise AssertionError(f"{rid} never reached {statuses}")


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    blocks = [b for b in text.split("\n\n") if b.strip()]
    events = []
    for block in blocks:
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


# ---------------------------------------------------------------- create / retrieve / delete


def test_create_answers_with_an_echo_in_a_real_response_body(
    client: OpenAI, http: httpx.Client, fake: FakeOpenAI
) -> None:
    response = client.responses.create(model="gpt-4o", input="hello there")
    assert response.status == "completed"
    assert response.output_text == "Echo: hello there"
    assert response.model == "gpt-4o-2024-08-06"
    assert re.fullmatch(r"resp_[0-9a-f]{48}", response.id)
    assert re.fullmatch(r"msg_[0-9a-f]{48}", response.output[0].id or "")
    assert response.usage is not None
    assert response.usage.input_tokens == math.ceil(len("hello there") / 4)
    assert response.usage.output_tokens == math.ceil(len("Echo: hello there") / 4)
    raw = http.post("/v1/responses", json={"model": "gpt-4.1", "input": "x"}).json()
    assert list(raw) == RESPONSE_KEYS
    assert raw["model"] == "gpt-4.1-2025-04-14"
    method, path, _, headers, body = fake.requests[0]
    assert (method, path, body) == ("POST", "/v1/responses", {"model": "gpt-4o", "input": "hello there"})
    assert headers["authorization"] == f"Bearer {KEY}"


def test_retrieve_returns_the_stored_response_and_checks_include(client: OpenAI) -> None:
    created = client.responses.create(model="gpt-4o", input="keep me")
    fetched = client.responses.retrieve(created.id, include=["message.output_text.logprobs"])
    assert fetched.model_dump() == created.model_dump()
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.retrieve(created.id, extra_query={"include[]": "nonsense"})
    assert err.value.body["code"] == "invalid_value"  # type: ignore[index]


def test_a_response_not_stored_cannot_be_retrieved(client: OpenAI) -> None:
    created = client.responses.create(model="gpt-4o", input="forget me", store=False)
    assert created.to_dict()["store"] is False
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.retrieve(created.id)
    assert err.value.body == {
        "message": f"Response with id '{created.id}' not found.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def test_delete_removes_the_response(client: OpenAI, http: httpx.Client) -> None:
    created = client.responses.create(model="gpt-4o", input="bye")
    deleted = http.delete(f"/v1/responses/{created.id}")
    assert deleted.json() == {"id": created.id, "object": "response.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(created.id)


# ---------------------------------------------------------------- streaming


def test_stream_numbers_events_and_ends_with_the_final_response(client: OpenAI) -> None:
    with client.responses.create(model="gpt-4o", input="stream this please", stream=True) as stream:
        events = list(stream)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response  # type: ignore[union-attr]
    assert deltas == final.output_text == "Echo: stream this please"
    assert final.model_dump() == client.responses.retrieve(final.id).model_dump()


def test_stream_is_server_sent_events_with_named_events(http: httpx.Client) -> None:
    reply = http.post("/v1/responses", json={"model": "gpt-4o", "input": "hi", "stream": True})
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = sse_events(reply.text)
    assert all(name == data["type"] for name, data in events)
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))


def test_a_function_tool_is_called_when_asked(client: OpenAI) -> None:
    response = client.responses.create(model="gpt-4o", input="call the tool", tools=[TOOL])
    call = response.output[0]
    assert call.type == "function_call"
    assert (call.name, call.arguments) == ("lookup", "{}")
    with client.responses.create(model="gpt-4o", input="call it", tools=[TOOL], stream=True) as stream:
        kinds = [e.type for e in stream]
    assert "response.function_call_arguments.done" in kinds


# ---------------------------------------------------------------- state


def test_previous_response_id_makes_the_chain_visible(client: OpenAI) -> None:
    first = client.responses.create(model="gpt-4o", input="alpha")
    second = client.responses.create(model="gpt-4o", input="beta", previous_response_id=first.id)
    third = client.responses.create(model="gpt-4o", input="recall", previous_response_id=second.id)
    assert third.output_text == "alpha | beta"
    assert third.previous_response_id == second.id
    assert third.usage is not None and second.usage is not None
    assert third.usage.input_tokens > second.usage.input_tokens


def test_instructions_are_honoured_and_not_inherited(client: OpenAI) -> None:
    first = client.responses.create(model="gpt-4o", input="instructions", instructions="Be brief.")
    assert first.output_text == "Be brief."
    second = client.responses.create(model="gpt-4o", input="instructions", previous_response_id=first.id)
    assert second.output_text == ""


def test_max_output_tokens_makes_the_response_incomplete(client: OpenAI) -> None:
    response = client.responses.create(model="gpt-4o", input="word " * 40, max_output_tokens=16)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert len(response.output_text) == 64


def test_input_items_page_with_cursors(client: OpenAI) -> None:
    words = ["one", "two", "three", "four", "five"]
    created = client.responses.create(model="gpt-4o", input=[{"role": "user", "content": t} for t in words])
    page = client.responses.input_items.list(created.id, limit=2, order="asc")
    assert texts(page.data) == ["one", "two"]
    assert page.has_more
    every = texts(client.responses.input_items.list(created.id, limit=2, order="asc"))
    assert every == words
    newest = client.responses.input_items.list(created.id)
    assert texts(newest.data) == words[::-1]
    before = client.responses.input_items.list(created.id, order="asc", extra_query={"before": page.data[1].id})
    assert [i.id for i in before.data] == [page.data[0].id]


def test_tool_results_are_answered_and_listed_as_input_items(client: OpenAI) -> None:
    created = client.responses.create(
        model="gpt-4o",
        input=[
            {"role": "user", "content": "call lookup"},
            {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "42"},
        ],
    )
    assert created.output_text == "Echo: 42"
    items = client.responses.input_items.list(created.id, order="asc").data
    assert [i.type for i in items] == ["message", "function_call", "function_call_output"]
    assert [(i.id or "").split("_")[0] for i in items] == ["msg", "fc", "fco"]


def test_compact_returns_user_messages_and_a_compaction_item(client: OpenAI) -> None:
    first = client.responses.create(model="gpt-4o", input="red")
    second = client.responses.create(model="gpt-4o", input="green", previous_response_id=first.id)
    raw = client.responses.with_raw_response.compact(model="gpt-4o", previous_response_id=second.id)
    compacted = raw.parse()
    assert compacted.object == "response.compaction"
    assert [item.type for item in compacted.output] == ["message", "message", "compaction"]
    # The SDK's output union has no user message, so its models cannot re-serialise them: use the JSON.
    carried = json.loads(raw.text)["output"]
    assert [m["role"] for m in carried[:2]] == ["user", "user"]
    follow = client.responses.create(model="gpt-4o", input=[*carried, {"role": "user", "content": "recall"}])
    assert follow.output_text == "red | green"


def test_input_tokens_counts_a_quarter_of_the_characters(client: OpenAI) -> None:
    counted = client.responses.input_tokens.count(model="gpt-4o", input="abcdefghij", instructions="xyz")
    assert (counted.object, counted.input_tokens) == ("response.input_tokens", math.ceil(13 / 4))


# ---------------------------------------------------------------- background


def test_background_response_is_queued_then_completes_and_replays(client: OpenAI) -> None:
    created = client.responses.create(model="gpt-4o", input="later", background=True)
    assert (created.status, created.background) == ("queued", True)
    done = wait_for_status(client, created.id, {"completed"})
    assert done.output_text == "Echo: later"
    with client.responses.retrieve(created.id, stream=True, starting_after=2) as stream:
        events = list(stream)
    assert events[0].sequence_number == 3
    assert events[-1].type == "response.completed"


def test_background_stream_follows_the_response_to_its_end(client: OpenAI) -> None:
    with client.responses.create(model="gpt-4o", input="bg", background=True, stream=True) as stream:
        events = list(stream)
    assert [e.type for e in events[:3]] == ["response.created", "response.queued", "response.in_progress"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == "Echo: bg"


def test_cancel_stops_a_background_response_only(client: OpenAI, fake: FakeOpenAI) -> None:
    fake.background_seconds = 60
    created = client.responses.create(model="gpt-4o", input="slow", background=True)
    cancelled = client.responses.cancel(created.id)
    assert cancelled.status == "cancelled"
    assert client.responses.retrieve(created.id).status == "cancelled"
    foreground = client.responses.create(model="gpt-4o", input="fast")
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.cancel(foreground.id)
    assert err.value.body["message"] == "Cannot cancel a synchronous response."  # type: ignore[index]


# ---------------------------------------------------------------- validation and auth


def texts(items: Any) -> list[str]:
    return [item.content[0].text for item in items]


def error_of(reply: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = reply.json()["error"]
    return body


@pytest.mark.parametrize(
    ("body", "code", "param", "message"),
    [
        (
            {"model": "gpt-4o", "input": "x", "foo": 1},
            "unknown_parameter",
            "foo",
            "Unknown parameter: 'foo'.",
        ),
        (
            {"model": "gpt-4o", "input": [{"role": "user", "content": 123}]},
            "invalid_type",
            "input[0].content",
            "Invalid type for 'input[0].content': expected one of a string or an array, but got an integer instead.",
        ),
        (
            {"model": "gpt-4o", "input": [{"role": "user", "content": "x", "foo": 1}]},
            "unknown_parameter",
            "input[0].foo",
            "Unknown parameter: 'input[0].foo'.",
        ),
        ({"input": "x"}, "missing_required_parameter", "model", "Missing required parameter: 'model'."),
        (
            {"model": "gpt-4o", "input": [{"role": "robot", "content": "x"}]},
            "invalid_value",
            "input[0].role",
            "Invalid value: 'robot'. Supported values are: 'user', 'assistant', 'system', and 'developer'.",
        ),
        (
            {"model": "gpt-4o", "tools": [{"name": "f"}]},
            "missing_required_parameter",
            "tools[0].type",
            "Missing required parameter: 'tools[0].type'.",
        ),
        (
            {"model": "gpt-4o", "max_output_tokens": "5"},
            "invalid_type",
            "max_output_tokens",
            "Invalid type for 'max_output_tokens': expected an integer, but got a string instead.",
        ),
        (
            {"model": "gpt-4o", "max_output_tokens": 5},
            "integer_below_min_value",
            "max_output_tokens",
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got 5 instead.",
        ),
        (
            {"model": "gpt-4o", "previous_response_id": "resp_nope"},
            "previous_response_not_found",
            "previous_response_id",
            "Previous response with id 'resp_nope' not found.",
        ),
    ],
)
def test_bad_requests_are_rejected_like_openai(
    http: httpx.Client, body: dict[str, Any], code: str, param: str, message: str
) -> None:
    reply = http.post("/v1/responses", json=body)
    assert reply.status_code == 400
    assert error_of(reply) == {
        "message": message,
        "type": "invalid_request_error",
        "param": param,
        "code": code,
    }


def test_a_nested_literal_lists_the_supported_values(http: httpx.Client) -> None:
    content = [{"type": "input_txt", "text": "x"}]
    reply = http.post("/v1/responses", json={"model": "gpt-4o", "input": [{"role": "user", "content": content}]})
    error = error_of(reply)
    assert (error["code"], error["param"]) == ("invalid_value", "input[0].content[0].type")
    assert "'input_text'" in error["message"] and "'output_text'" not in error["message"]


def test_a_wrong_key_is_refused_with_the_key_masked(server: ServerThread) -> None:
    wrong = "sk-proj-abcdefghijklmnopqrstuvwxyz1234"
    sdk = OpenAI(base_url=server.url + "/v1", api_key=wrong, max_retries=0)
    with sdk, pytest.raises(openai.AuthenticationError) as err:
        sdk.responses.create(model="gpt-4o", input="x")
    body = err.value.body
    assert body["code"] == "invalid_api_key"  # type: ignore[index]
    assert body["message"].startswith("Incorrect API key provided: sk-proj-*****")  # type: ignore[index]
    assert wrong not in body["message"] and body["message"].split(":")[1].split(".")[0].endswith("1234")  # type: ignore[index]


def test_unknown_response_ids_are_404(http: httpx.Client) -> None:
    routes = [("GET", ""), ("DELETE", ""), ("POST", "/cancel"), ("GET", "/input_items")]
    for method, suffix in routes:
        reply = http.request(method, f"/v1/responses/resp_x{suffix}")
        assert reply.status_code == 404
        assert error_of(reply)["message"] == "Response with id 'resp_x' not found."


# ---------------------------------------------------------------- Azure


def test_azure_paths_take_the_api_version_and_api_key(server: ServerThread, fake: FakeOpenAI) -> None:
    with AzureOpenAI(azure_endpoint=server.url, api_key=KEY, api_version="2025-04-01-preview", max_retries=0) as azure:
        response = azure.responses.create(model="gpt-4o", input="from azure")
    assert response.output_text == "Echo: from azure"
    _, path, query, headers, _ = fake.requests[-1]
    assert (path, query, headers["api-key"]) == ("/openai/responses", "api-version=2025-04-01-preview", KEY)
    with httpx.Client(base_url=server.url, headers={"api-key": KEY}) as raw:
        v1 = raw.post("/openai/v1/responses", json={"model": "gpt-4o", "input": "v1"})
        assert v1.json()["output"][0]["content"][0]["text"] == "Echo: v1"
        wrong_version = raw.post("/openai/responses?api-version=2020-01-01", json={"model": "gpt-4o"})
        assert wrong_version.status_code == 404
    with httpx.Client(base_url=server.url, headers={"api-key": "nope"}) as raw:
        denied = raw.post("/openai/v1/responses", json={"model": "gpt-4o", "input": "v1"})
        assert (denied.status_code, denied.json()["error"]["code"]) == (401, "401")


# ---------------------------------------------------------------- fault knobs


def test_fault_knobs(http: httpx.Client, fake: FakeOpenAI) -> None:
    fake.fail_next(429, retry_after="2")
    limited = http.post("/v1/responses", json={"model": "gpt-4o", "input": "x"})
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "2")
    assert error_of(limited)["code"] == "rate_limit_exceeded"
    custom = {"error": {"message": "boom", "type": "server_error", "param": None, "code": None}}
    fake.fail_next(500, custom)
    assert http.post("/v1/responses", json={"model": "gpt-4o", "input": "x"}).json() == custom
    assert http.post("/v1/responses", json={"model": "gpt-4o", "input": "x"}).status_code == 200
    fake.garbage_next()
    garbage = http.post("/v1/responses", json={"model": "gpt-4o", "input": "x"})
    assert garbage.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        garbage.json()
    fake.delay_next(0.01)
    assert http.post("/v1/responses", json={"model": "gpt-4o", "input": "late"}).status_code == 200


def test_drop_stream_after_cuts_the_connection(http: httpx.Client, fake: FakeOpenAI) -> None:
    fake.drop_stream_after(3)
    received: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        http.stream("POST", "/v1/responses", json={"model": "gpt-4o", "input": "hi", "stream": True}) as r,
    ):
        for line in r.iter_lines():
            if line.startswith("event: "):
                received.append(line)
    assert len(received) == 3


def test_server_thread_stops_cleanly(fake: FakeOpenAI) -> None:
    server = ServerThread(fake.app).start()
    assert httpx.get(server.url + "/v1/nothing").status_code == 404
    thread = server._thread
    server.stop()
    assert thread is not None and not thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/v1/nothing")
