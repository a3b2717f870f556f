"""WebSocket mode for a native OpenAI upstream (the strict fake OpenAI) and a bridged one (the strict fake
Chat Completions API), with the official SDK's `client.responses.connect()`: both go through the
gateway's stream machinery, so the same socket behaviour holds for every provider."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI

from conftest import MASTER_KEY, ProxyFactory
from fakes.chat_upstream import FakeChat
from fakes.openai_upstream import FakeOpenAI
from fakes.server import ServerThread
from test_websocket import AUTH, STEER_EVENTS, checked, get, recv, text_of, until

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}


@dataclass
class Target:
    kind: str  # native | bridged
    proxy: ServerThread
    fake: Any  # FakeOpenAI | FakeChat
    model: str

    def last_upstream_input(self) -> list[Any]:
        """What the upstream was last asked, as (role or item type, text) pairs in order."""
        body = self.fake.requests[-1].body
        if self.kind == "native":
            items = body["input"]
            items = [{"type": "message", "role": "user", "content": items}] if isinstance(items, str) else items
            return [(i.get("role") or i["type"], _text(i.get("content", i.get("output")))) for i in items]
        return [(m["role"], _text(m.get("content"))) for m in body["messages"]]


async def eventually(condition: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


@pytest.fixture(params=["native", "bridged"])
def target(request: pytest.FixtureRequest, start_proxy: ProxyFactory) -> Iterator[Target]:
    if request.param == "native":
        fake: Any = FakeOpenAI(api_key="sk-upstream-ws")
        line = "{model: openai/gpt-4o, api_base: \"%s/v1\", api_key: sk-upstream-ws}"
    else:
        fake = FakeChat(api_key="sk-chat-ws")
        line = "{model: deepseek/deepseek-chat, api_base: \"%s/v1\", api_key: sk-chat-ws}"
    with ServerThread(fake.app) as upstream:
        config = f"model_list:\n  - model_name: up\n    litellm_params: {line % upstream.url}\n"
        yield Target(request.param, start_proxy(config), fake, "up")


@pytest.fixture
async def openai_client(target: Target) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=target.proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        yield c


async def test_create_and_stream(openai_client: AsyncOpenAI, target: Target) -> None:
    async with openai_client.responses.connect() as conn:
        await conn.response.create(model=target.model, input="hello upstream", stream_id="l")
        events = await until(conn)
    final = checked(events)
    assert final["status"] == "completed" and final["model"] == "up"
    assert text_of(final) == "Echo: hello upstream"
    assert {e["stream_id"] for e in events} == {"l"}
    assert get(target.proxy.url, f"/responses/{final['id']}") == final
    assert target.fake.requests[-1].body["stream"] is True


async def test_stored_and_connection_local_continuation(openai_client: AsyncOpenAI, target: Target) -> None:
    async with openai_client.responses.connect() as conn:
        await conn.response.create(model=target.model, input="first words")
        first = checked(await until(conn))
        await conn.response.create(model=target.model, input="second words", previous_response_id=first["id"])
        second = checked(await until(conn))
        await conn.response.create(model=target.model, input="private", store=False)
        private = checked(await until(conn))
        await conn.response.create(model=target.model, input="more", store=False, previous_response_id=private["id"])
        more = checked(await until(conn))
    assert second["previous_response_id"] == first["id"] and text_of(second) == "Echo: second words"
    assert more["previous_response_id"] == private["id"] and text_of(more) == "Echo: more"
    # the memory of the store:false response went upstream as history
    assert target.last_upstream_input() == [("user", "private"), ("assistant", "Echo: private"), ("user", "more")]


async def test_reconnect_continues_stored_responses_but_not_connection_memory(
        openai_client: AsyncOpenAI, target: Target) -> None:
    async with openai_client.responses.connect() as conn:
        await conn.response.create(model=target.model, input="kept")
        kept = checked(await until(conn))
        await conn.response.create(model=target.model, input="forgotten", store=False)
        forgotten = checked(await until(conn))
    async with openai_client.responses.connect() as conn:
        await conn.response.create(model=target.model, input="again", previous_response_id=kept["id"])
        again = checked(await until(conn))
        await conn.response.create(model=target.model, input="x", store=False, previous_response_id=forgotten["id"])
        [missing] = await until(conn)
    assert again["status"] == "completed" and again["previous_response_id"] == kept["id"]
    assert missing["type"] == "error" and missing["error"]["code"] == "previous_response_not_found"


async def test_steer_pending_for_tool_output_then_explicit_continuation(openai_client: AsyncOpenAI,
                                                                        target: Target) -> None:
    async with openai_client.responses.connect() as conn:
        await conn.response.create(model=target.model, input="call get_weather", tools=[WEATHER], stream_id="t")
        first = checked(await until(conn))
        call = next(i for i in first["output"] if i["type"] == "function_call")
        await conn.response.steer(input="then say goodbye", previous_response_id=first["id"])
        accepted, pending = await recv(conn), await recv(conn)
        await conn.response.create(model=target.model, tools=[WEATHER], previous_response_id=first["id"],
                                   stream_id="t",
                                   input=[{"type": "function_call_output", "call_id": call["call_id"],
                                           "output": "rainy"}])
        second = checked(await until(conn))
    assert accepted["type"] == "response.steer.accepted" and accepted["stream_id"] == "t"
    assert pending["type"] == "response.steer.pending" and pending["steer"]["id"] == accepted["steer"]["id"]
    assert pending["required_input"] == [{"type": "function_call_output", "call_id": call["call_id"],
                                          "name": "get_weather"}]
    assert second["status"] == "completed" and second["previous_response_id"] == first["id"]
    sent = target.last_upstream_input()
    assert sent[-2:] == [("function_call_output" if target.kind == "native" else "tool", "rainy"),
                         ("user", "then say goodbye")]  # the tool's answer first, then the steering


async def test_steer_failures(openai_client: AsyncOpenAI, target: Target) -> None:
    async with openai_client.responses.connect() as conn:
        await conn.response.create(model=target.model, input="done")
        done = checked(await until(conn))
        await conn.response.steer(input="late", previous_response_id=done["id"])
        await conn.response.steer(input="lost", previous_response_id="resp_elsewhere")
        late, lost = await recv(conn), await recv(conn)
    assert {late["type"], lost["type"]} == {"response.steer.failed"} and STEER_EVENTS
    assert late["error"]["code"] == "response_already_completed" and late["steer"]["previous_response_id"] == done["id"]
    assert lost["error"]["code"] == "response_not_found" and lost["steer"]["input"] == "lost"


async def test_cancel_a_lane_before_its_response_started(openai_client: AsyncOpenAI, target: Target) -> None:
    target.fake.delay_next(60)  # the upstream keeps the first request waiting
    async with openai_client.responses.connect() as conn:
        await conn.response.create(model=target.model, input="slow", stream_id="c")
        await eventually(lambda: len(target.fake.requests) == 1)  # it is waiting upstream
        await conn.send({"type": "response.cancel", "stream_id": "c"})  # type: ignore[typeddict-item]
        [cancelled] = await until(conn)
        await conn.response.create(model=target.model, input="after", stream_id="c")
        after = checked(await until(conn))
    assert cancelled["type"] == "error" and cancelled["stream_id"] == "c"
    assert cancelled["error"]["code"] == "response_cancelled" and cancelled["status"] == 499
    assert text_of(after) == "Echo: after"


async def test_upstream_refusal_is_an_error_event_and_the_socket_goes_on(openai_client: AsyncOpenAI,
                                                                        target: Target) -> None:
    target.fake.fail_next(400, {"error": {"message": "Bad thing.", "type": "invalid_request_error",
                                          "param": "input", "code": "bad_thing"}})
    async with openai_client.responses.connect() as conn:
        await conn.response.create(model=target.model, input="refused")
        [error] = await until(conn)
        await conn.response.create(model=target.model, input="fine")
        fine = checked(await until(conn))
    assert error["type"] == "error" and error["status"] == 400 and "Bad thing." in error["error"]["message"]
    assert text_of(fine) == "Echo: fine"


async def test_handshake_refused_without_the_right_key(target: Target) -> None:
    async with AsyncOpenAI(base_url=target.proxy.url + "/v1", api_key="sk-wrong-key-123456", max_retries=0) as c:
        with pytest.raises(Exception) as info:
            async with c.responses.connect():
                pass
    response = info.value.response  # type: ignore[attr-defined]
    assert response.status_code == 401
    body = bytes(response.body)
    assert b"sk-wrong-key-123456" not in body and MASTER_KEY.encode() not in body
    assert httpx.post(target.proxy.url + "/v1/responses", headers={"Authorization": "Bearer sk-wrong-key-123456"},
                      json={"model": "up", "input": "x"}).content == body  # exactly what HTTP answers
    assert AUTH  # the right key works over HTTP too (used throughout)
