"""End to end through the proxy with the official openai SDK, on the local mock models."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest
from openai import OpenAI
from openai.types.responses import Response

from conftest import MASTER_KEY, ProxyFactory
from fakes.server import ServerThread
from grammar import check_stream
from sse import parse_sse, post_stream

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


def raw_get(proxy: ServerThread, path: str, **params: Any) -> httpx.Response:
    return httpx.get(proxy.url + path, headers=AUTH, params=params, timeout=10)


def test_create_returns_a_complete_response_that_get_returns_byte_for_byte(
        client: OpenAI, proxy: ServerThread) -> None:
    r = client.responses.create(model="mock/echo", input="Hello there")
    assert r.output_text == "Hello there"
    assert r.status == "completed" and r.object == "response" and r.model == "mock/echo"
    assert r.id.startswith("resp_")
    assert r.usage is not None and r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    created = httpx.post(proxy.url + "/v1/responses", headers=AUTH,
                         json={"model": "mock/echo", "input": "Hello there"}).json()
    fetched = raw_get(proxy, f"/v1/responses/{created['id']}").json()
    assert fetched == created
    assert list(fetched) == list(created)  # key order too
    for key in ("error", "incomplete_details", "instructions", "previous_response_id", "user"):
        assert key in created and created[key] is None


def test_stream_follows_the_grammar_and_ends_in_what_get_returns(proxy: ServerThread) -> None:
    events = post_stream(proxy.url, MASTER_KEY, {"model": "mock/echo", "input": "one two three four"})
    final = check_stream(events)
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "one two three four"
    assert raw_get(proxy, f"/v1/responses/{final['id']}").json() == final


def test_sdk_stream_helper_works(client: OpenAI) -> None:
    with client.responses.stream(model="mock/echo", input="stream me please") as stream:
        types = [e.type for e in stream]
        final = stream.get_final_response()
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert final.output_text == "stream me please"
    assert client.responses.retrieve(final.id).output_text == "stream me please"


def test_previous_response_id_continues_the_chain(client: OpenAI) -> None:
    first = client.responses.create(model="mock/recall", input="alpha")
    second = client.responses.create(model="mock/recall", input="beta", previous_response_id=first.id)
    third = client.responses.create(model="mock/echo", input="gamma", previous_response_id=second.id)
    fourth = client.responses.create(model="mock/recall", input="delta", previous_response_id=third.id)
    assert second.output_text == "alpha | beta"
    assert second.previous_response_id == first.id
    assert fourth.output_text == "alpha | beta | gamma | delta"


def test_instructions_are_not_carried_over(client: OpenAI) -> None:
    first = client.responses.create(model="mock/echo", input="x", instructions="be brief")
    second = client.responses.create(model="mock/echo", input="y", previous_response_id=first.id)
    assert first.instructions == "be brief" and second.instructions is None


def test_store_false_is_not_retrievable_nor_continuable(client: OpenAI) -> None:
    r = client.responses.create(model="mock/echo", input="secret", store=False)
    assert r.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="mock/echo", input="x", previous_response_id=r.id)
    assert e.value.body["param"] == "previous_response_id"  # type: ignore[index]


def test_input_items_list_with_paging(client: OpenAI) -> None:
    items = [{"role": "user", "content": f"m{i}"} for i in range(5)]
    r = client.responses.create(model="mock/echo", input=items)  # type: ignore[arg-type]
    page = client.responses.input_items.list(r.id, limit=2, order="asc")
    texts = [i.content[0].text for i in page.data]  # type: ignore[union-attr]
    assert texts == ["m0", "m1"] and page.has_more
    rest = client.responses.input_items.list(r.id, limit=10, order="asc", after=page.data[-1].id)
    assert [i.content[0].text for i in rest.data] == ["m2", "m3", "m4"]  # type: ignore[union-attr]
    assert not rest.has_more
    newest = client.responses.input_items.list(r.id, limit=1)
    assert newest.data[0].content[0].text == "m4"  # type: ignore[union-attr]


def test_delete_then_gone(client: OpenAI, proxy: ServerThread) -> None:
    r = client.responses.create(model="mock/echo", input="bye")
    deleted = httpx.delete(proxy.url + f"/v1/responses/{r.id}", headers=AUTH).json()
    assert deleted == {"id": r.id, "object": "response.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(r.id)


def test_stored_stream_replays_from_starting_after(proxy: ServerThread, client: OpenAI) -> None:
    r = client.responses.create(model="mock/echo", input="replay me")
    full = parse_sse(raw_get(proxy, f"/v1/responses/{r.id}", stream="true").text)
    assert check_stream(full)["output"] == raw_get(proxy, f"/v1/responses/{r.id}").json()["output"]
    tail = parse_sse(raw_get(proxy, f"/v1/responses/{r.id}", stream="true", starting_after=3).text)
    assert [e["sequence_number"] for e in tail] == [e["sequence_number"] for e in full][4:]


def test_function_call_round_trip(client: OpenAI) -> None:
    tools = [{"type": "function", "name": "get_weather", "description": "Weather for a city",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                             "required": ["city"], "additionalProperties": False},
              "strict": True}]
    first = client.responses.create(model="mock/tool", input="get_weather Paris", tools=tools)  # type: ignore[arg-type]
    call = first.output[-1]
    assert call.type == "function_call" and call.name == "get_weather"
    assert orjson.loads(call.arguments) == {"city": "get_weather Paris"}
    second = client.responses.create(
        model="mock/tool", previous_response_id=first.id, tools=tools,  # type: ignore[arg-type]
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}])
    assert second.output_text == "Tool result: sunny"


def test_reasoning_and_failure_models(client: OpenAI, proxy: ServerThread) -> None:
    r = client.responses.create(model="mock/reasoning", input="think")
    assert [o.type for o in r.output] == ["reasoning", "message"]
    events = post_stream(proxy.url, MASTER_KEY, {"model": "mock/fail", "input": "x"})
    final = check_stream(events)
    assert final["status"] == "failed" and final["error"]["code"]


def test_max_output_tokens_gives_incomplete(client: OpenAI) -> None:
    r = client.responses.create(model="mock/echo", input="word " * 200, max_output_tokens=16)
    assert r.status == "incomplete"
    assert r.incomplete_details is not None and r.incomplete_details.reason == "max_output_tokens"


def test_compact_and_input_tokens(client: OpenAI) -> None:
    first = client.responses.create(model="mock/echo", input="a fairly long first message")
    compacted = client.responses.compact(model="mock/echo", previous_response_id=first.id)
    assert compacted.object == "response.compaction"
    assert any(o.type == "compaction" for o in compacted.output)
    count = client.responses.input_tokens.count(model="mock/echo", input="12345678")
    assert count.input_tokens == 2


def test_models_health_and_openapi(proxy: ServerThread) -> None:
    models = raw_get(proxy, "/v1/models").json()
    assert {m["id"] for m in models["data"]} >= {"mock/echo", "mock/recall"}
    assert raw_get(proxy, "/models").json() == models
    health = raw_get(proxy, "/health").json()  # each deployment really called: mock/fail answers `failed`
    assert (health["healthy_count"], health["unhealthy_count"]) == (4, 1)
    assert httpx.get(proxy.url + "/health/liveliness").status_code == 200
    assert httpx.get(proxy.url + "/health/readiness").json()["status"] == "healthy"
    spec = httpx.get(proxy.url + "/openapi.json").json()
    assert "/v1/responses" in spec["paths"] and spec["openapi"].startswith("3.")


def test_routes_work_without_v1_prefix(proxy: ServerThread) -> None:
    with OpenAI(base_url=proxy.url, api_key=MASTER_KEY, max_retries=0) as c:
        r = c.responses.create(model="mock/echo", input="no prefix")
        assert c.responses.retrieve(r.id).output_text == "no prefix"


def test_azure_style_api_key_header_is_accepted(proxy: ServerThread) -> None:
    r = httpx.post(proxy.url + "/v1/responses", headers={"api-key": MASTER_KEY},
                   json={"model": "mock/echo", "input": "hi"})
    assert r.status_code == 200 and r.json()["output"][0]["content"][0]["text"] == "hi"


def test_response_object_validates_against_openai_types(client: OpenAI, proxy: ServerThread) -> None:
    raw = httpx.post(proxy.url + "/v1/responses", headers=AUTH,
                     json={"model": "mock/reasoning", "input": "x", "metadata": {"k": "v"}}).json()
    Response.model_validate(raw)
    assert raw["metadata"] == {"k": "v"}


def _compact_and_continue(proxy: ServerThread, version: str) -> str:
    """Two recall turns, compacted, then a third from the window: the third's text. A forged window
    of `version` is refused naming the field."""
    with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as client:
        first = client.responses.create(model="mock/recall", input="alpha")
        second = client.responses.create(model="mock/recall", input="beta", previous_response_id=first.id)
    window = httpx.post(proxy.url + "/v1/responses/compact", headers=AUTH,
                        json={"model": "mock/recall", "previous_response_id": second.id}).json()
    assert [o["type"] for o in window["output"]] == ["message", "message", "compaction"]
    follow = httpx.post(proxy.url + "/v1/responses", headers=AUTH,
                        json={"model": "mock/recall", "input": [*window["output"],
                                                                {"role": "user", "content": "gamma"}]})
    assert follow.status_code == 200, follow.text
    forged = dict(window["output"][-1], encrypted_content=f"respgate.compaction.{version}:not-base64!")
    bad = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={"model": "mock/recall", "input": [forged]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "input[0].encrypted_content"
    return str(follow.json()["output"][0]["content"][0]["text"])


def test_a_compacted_window_continues_the_session(proxy: ServerThread) -> None:
    # The window is the user's messages, then the summary a model wrote (recall "summarises" by
    # repeating every user message it was sent, the summarising instruction included).
    text = _compact_and_continue(proxy, "v2")
    assert text.startswith("alpha | beta | Summary of the earlier conversation (compacted):\nalpha | beta | ")
    assert "You are compacting the conversation" in text and text.endswith(" | gamma")


def test_lossless_compaction_continues_the_session_exactly(start_proxy: ProxyFactory) -> None:
    assert _compact_and_continue(start_proxy(general="  compaction_mode: lossless\n"), "v1") == "alpha | beta | gamma"
