"""The SDK's in-process WebSocket mode (`respgate.sdk_connect`): the same session as the proxy's socket,
for the SDK's own `provider/model` deployments, with openai's event types."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fakes.openai_upstream import FakeOpenAI
from fakes.server import ServerThread
from grammar import check_stream
from respgate.sdk import Client
from respgate.sdk_connect import ConnectionClosedError, aconnect, connect

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
TERMINAL = {"response.completed", "response.failed", "response.incomplete", "error"}


@pytest.fixture
def client() -> Iterator[Client]:
    c = Client()
    yield c
    c.close()


def plain(events: list[Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.model_dump(mode="json", exclude_unset=True).items() if k != "stream_id"}
            for e in events if not e.type.startswith("response.steer")]


async def turn(conn: Any) -> list[Any]:
    events = []
    while True:
        events.append(await conn.recv())
        if events[-1].type in TERMINAL:
            return events


async def test_async_connect_streams_continues_and_steers(client: Client) -> None:
    async with aconnect(client) as conn:
        await conn.response.create(model="mock/recall", input="first", stream_id="x")
        first = await turn(conn)
        rid = first[-1].response.id
        await conn.response.create(model="mock/recall", input="second", previous_response_id=rid, stream_id="x")
        second = await turn(conn)
        await conn.response.create(model="mock/tool", input="get_weather", tools=[WEATHER])
        tool = await turn(conn)
        await conn.response.steer(input="in French", previous_response_id=tool[-1].response.id)
        accepted, pending = await conn.recv(), await conn.recv()
    assert check_stream(plain(first))["status"] == "completed"
    assert {e.stream_id for e in first} == {"x"}
    assert second[-1].response.output_text == "first | second"
    assert second[-1].response.previous_response_id == rid
    assert accepted.type == "response.steer.accepted" and pending.type == "response.steer.pending"
    assert pending.required_input[0].type == "function_call_output"


async def test_errors_are_events_and_the_connection_goes_on(client: Client) -> None:
    async with aconnect(client) as conn:
        await conn.response.create(model="nope/model", input="x")
        [error] = await turn(conn)
        await conn.send({"type": "response.steer", "previous_response_id": "resp_x", "input": "y"})
        failed = await conn.recv()
        await conn.response.create(model="mock/echo", input="fine")
        ok = await turn(conn)
    assert error.type == "error" and error.error.param == "model"
    assert failed.type == "response.steer.failed" and failed.error.code == "response_not_found"
    assert ok[-1].response.output_text == "fine"


def test_sync_connect_with_the_credentials_of_a_native_upstream() -> None:
    fake = FakeOpenAI(api_key="sk-upstream-sdk")
    with ServerThread(fake.app) as upstream:
        c = Client()
        try:
            with connect(c, api_base=upstream.url + "/v1", api_key="sk-upstream-sdk") as conn:
                conn.response.create(model="openai/gpt-4o", input="hello native")
                events = []
                for event in conn:
                    events.append(event)
                    if event.type in TERMINAL:
                        break
                with pytest.raises(TimeoutError):
                    conn.recv(timeout=0.05)  # nothing more: a timeout loses nothing
                conn.response.create(model="openai/gpt-4o", input="again")
                again = conn.recv()
        finally:
            c.close()
    assert events[-1].response.output_text == "Echo: hello native"
    assert fake.requests[-1].headers["authorization"] == "Bearer sk-upstream-sdk"
    assert again.type == "response.created"


async def test_a_reader_that_lags_pauses_the_response_and_loses_nothing(client: Client) -> None:
    words = " ".join(f"w{i}" for i in range(2000))
    async with aconnect(client, max_buffered_bytes=4096) as conn:  # a few events at a time
        await conn.response.create(model="mock/echo", input=words)
        events = await turn(conn)
    final = check_stream(plain(events))
    assert final["output"][0]["content"][0]["text"] == words


async def test_after_close_nothing_arrives(client: Client) -> None:
    manager = aconnect(client)
    conn = await manager.enter()
    await conn.close()
    with pytest.raises(ConnectionClosedError):
        await conn.recv()
    assert [e async for e in conn] == []
