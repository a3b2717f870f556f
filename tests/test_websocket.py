"""WebSocket mode on the mock models, driven by the official SDK's `client.responses.connect()`.

Responses, continuations (stored and connection-local), lanes, steering (accepted -> steered
successor, pending for tool output, failed), cancel, failed responses and malformed events: the
connection always survives a client's mistake.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx
import orjson
import pytest
from openai import AsyncOpenAI
from openai.lib.responses_websocket import AsyncResponsesWebSocketSession, ResponsesWebSocketLimits

from conftest import MASTER_KEY, MOCK_MODELS, ProxyFactory
from fakes.server import ServerThread
from grammar import check_stream, validate_openai_event

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
TERMINAL = frozenset({"response.completed", "response.failed", "response.incomplete"})
STEER_EVENTS = frozenset({"response.steer.accepted", "response.steer.pending", "response.steer.failed"})
# Models with a (1 ms) pause after response.created, which `Held` can hold: steering or cancelling a
# held response never races its end, and its successor (not held) runs at once.
SLOW = """
  - model_name: mock/slow
    litellm_params: {model: mock/reasoning, mock_latency_ms: 1}
  - model_name: mock/slow-echo
    litellm_params: {model: mock/echo, mock_latency_ms: 1}
"""
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}

Json = dict[str, Any]


# -- helpers (the other test_websocket_* files use them too) -------------------------------------------

async def recv(conn: Any, timeout: float = 20) -> Json:
    """The next server event as the wire carried it."""
    async with asyncio.timeout(timeout):
        raw = await conn.recv_bytes()
    event: Json = orjson.loads(raw)
    conn.parse_event(raw)  # and the SDK can parse it
    return event


async def until(conn: Any, types: Iterable[str] = TERMINAL | {"error"}, timeout: float = 20) -> list[Json]:
    """Events up to and including the first whose type is in `types`."""
    wanted = frozenset(types)
    events = []
    while True:
        ev = await recv(conn, timeout)
        events.append(ev)
        if ev["type"] in wanted:
            return events


def response_events(events: list[Json]) -> list[Json]:
    """A response's stream events as SSE would carry them: no lane tag, no steering notices."""
    return [{k: v for k, v in e.items() if k != "stream_id"} for e in events if e["type"] not in STEER_EVENTS]


def checked(events: list[Json]) -> Json:
    """The stream grammar holds, every event is an openai event; the terminal response."""
    plain = response_events(events)
    for e in plain:
        validate_openai_event(e)
    return check_stream(plain)


def text_of(response: Json) -> str:
    return "".join(part.get("text", "") for item in response.get("output", []) if item.get("type") == "message"
                   for part in item.get("content", []))


def get(url: str, path: str) -> Json:
    r = httpx.get(url + "/v1" + path, headers=AUTH)
    assert r.status_code == 200, r.text
    result: Json = r.json()
    return result


class Held:
    """The in-process proxy's mock model with its pauses under the test's control: after `hold(n)` the next
    n pauses last until the gateway stops the response (steering, cancel, the client leaving)."""

    def __init__(self, server: ServerThread) -> None:
        provider = server._config.app.gateway.providers["mock"]
        self._real = provider._sleep
        self._left = 0
        provider._sleep = self._sleep

    def hold(self, n: int = 1) -> None:
        self._left = n

    async def _sleep(self, seconds: float) -> None:
        if self._left > 0:
            self._left -= 1
            await asyncio.get_running_loop().create_future()  # until cancelled
        await self._real(seconds)


@pytest.fixture
def held(proxy: ServerThread) -> Held:
    return Held(proxy)


@pytest.fixture
async def openai_client(proxy: ServerThread) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        yield c


@pytest.fixture
def proxy(start_proxy: ProxyFactory) -> ServerThread:
    return start_proxy(MOCK_MODELS + SLOW)


# -- responses on one connection ------------------------------------------------------------------------

async def test_create_streams_the_same_events_as_sse_and_stores_the_response(
        openai_client: AsyncOpenAI, proxy: ServerThread) -> None:
    async with openai_client.responses.connect() as conn:
        await conn.response.create(model="mock/echo", input="hello over a socket")
        events = await until(conn)
    final = checked(events)
    assert final["status"] == "completed" and text_of(final) == "hello over a socket"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert all("stream_id" not in e for e in events)  # the default lane carries no tag
    assert get(proxy.url, f"/responses/{final['id']}") == final


async def test_several_responses_and_stored_continuation_on_one_connection(openai_client: AsyncOpenAI) -> None:
    async with openai_client.responses.connect() as conn:
        await conn.response.create(model="mock/recall", input="my name is Ada")
        first = checked(await until(conn))
        await conn.response.create(model="mock/recall", input="and I like tea", previous_response_id=first["id"])
        second = checked(await until(conn))
        await conn.response.create(model="mock/echo", input="unrelated")
        third = checked(await until(conn))
    assert text_of(second) == "my name is Ada | and I like tea"
    assert second["previous_response_id"] == first["id"]
    assert text_of(third) == "unrelated" and len({first["id"], second["id"], third["id"]}) == 3


async def test_store_false_continues_from_connection_memory_only(openai_client: AsyncOpenAI,
                                                                 proxy: ServerThread) -> None:
    async with openai_client.responses.connect() as conn:
        await conn.response.create(model="mock/recall", input="code word: papaya", store=False)
        first = checked(await until(conn))
        await conn.response.create(model="mock/recall", input="what was it?", previous_response_id=first["id"],
                                   store=False)
        second = checked(await until(conn))
    assert text_of(second) == "code word: papaya | what was it?"
    assert second["previous_response_id"] == first["id"]  # shown as sent, though expanded from memory
    assert httpx.get(proxy.url + f"/v1/responses/{first['id']}", headers=AUTH).status_code == 404
    # another connection has no memory of it: OpenAI's previous_response_not_found, and the socket goes on
    async with openai_client.responses.connect() as conn:
        await conn.response.create(model="mock/recall", input="again", previous_response_id=first["id"],
                                   store=False)
        [error] = await until(conn)
        await conn.response.create(model="mock/echo", input="fresh start", store=False)
        fresh = checked(await until(conn))
    assert error["type"] == "error" and error["status"] == 400
    assert error["error"]["code"] == "previous_response_not_found"
    assert error["error"]["param"] == "previous_response_id"
    assert text_of(fresh) == "fresh start"


async def test_lanes_run_concurrently_and_tag_their_events(openai_client: AsyncOpenAI, held: Held) -> None:
    limits = ResponsesWebSocketLimits(max_lanes=4, max_events_per_lane=256, max_events=512,
                                      max_bytes_per_lane=1 << 22, max_bytes=1 << 23)
    async with openai_client.responses.connect() as conn, \
            AsyncResponsesWebSocketSession(conn, limits=limits) as session:
        slow, fast = session.lane("slow"), session.lane("fast")
        held.hold()
        await slow.send({"type": "response.create", "model": "mock/slow-echo", "input": "later"})
        await fast.send({"type": "response.create", "model": "mock/echo", "input": "first"})
        done = await fast.get_final_response()  # the other lane is still waiting for its model
        created = await slow.recv()
        await slow.send({"type": "response.cancel", "response_id": created.response.id})  # type: ignore
        stopped = await slow.get_final_response()
    assert done.status == "completed" and done.output_text == "first"
    assert created.type == "response.created" and created.stream_id == "slow"
    assert stopped.status == "cancelled"


async def test_the_sdk_lane_helper_sees_steering_and_the_successor(openai_client: AsyncOpenAI, held: Held) -> None:
    limits = ResponsesWebSocketLimits(max_lanes=2, max_events_per_lane=256, max_events=512,
                                      max_bytes_per_lane=1 << 22, max_bytes=1 << 23)
    held.hold()
    async with openai_client.responses.connect() as conn, \
            AsyncResponsesWebSocketSession(conn, limits=limits) as session:
        lane = session.lane("agent")
        await lane.send({"type": "response.create", "model": "mock/slow", "input": "plan a trip"})
        created = await lane.recv()
        await lane.send({"type": "response.steer", "input": "to Lisbon",  # no stream_id: routed by the target
                         "previous_response_id": created.response.id})  # type: ignore[union-attr]
        kinds = []
        while not kinds or kinds[-1] != "response.incomplete":
            kinds.append((await lane.recv()).type)
        successor = await lane.recv()  # the commit point
        final = await lane.get_final_response()
    assert kinds[0] == "response.steer.accepted" and kinds[-1] == "response.incomplete"
    assert successor.type == "response.created"
    assert final.status == "completed" and final.previous_response_id == created.response.id  # type: ignore
    assert final.output_text == "to Lisbon"


async def test_lane_is_fifo_and_every_event_carries_its_stream_id(openai_client: AsyncOpenAI) -> None:
    async with openai_client.responses.connect() as conn:
        await conn.response.create(model="mock/echo", input="one", stream_id="lane.1")
        await conn.response.create(model="mock/echo", input="two", stream_id="lane.1")
        first, second = await until(conn), await until(conn)
    assert {e["stream_id"] for e in first + second} == {"lane.1"}
    assert [text_of(checked(first)), text_of(checked(second))] == ["one", "two"]


# -- failures keep the connection -----------------------------------------------------------------------

async def test_failed_and_refused_responses_leave_the_connection_usable(openai_client: AsyncOpenAI) -> None:
    async with openai_client.responses.connect() as conn:
        await conn.response.create(model="mock/fail", input="x")
        failed = checked(await until(conn))
        await conn.response.create(model="no-such-model", input="x", stream_id="a")
        [unknown] = await until(conn)
        await conn.response.create(model="mock/echo", input="x", temperature=9)
        [invalid] = await until(conn)
        await conn.response.create(model="mock/echo", input="still here")
        ok = checked(await until(conn))
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    assert unknown["type"] == "error" and unknown["stream_id"] == "a" and unknown["status"] in (400, 404)
    assert invalid["status"] == 400 and invalid["error"]["param"] == "temperature"
    assert text_of(ok) == "still here"


@pytest.mark.parametrize(("message", "code", "param"), [
    (b"{not json", "invalid_json", None),
    (b"[1, 2]", "invalid_json", None),
    (b'{"model": "mock/echo"}', "missing_required_parameter", "type"),
    (b'{"type": "session.update"}', "invalid_value", "type"),
    (b'{"type": "response.create", "model": "mock/echo", "background": true}', "unsupported_parameter",
     "background"),
    (b'{"type": "response.create", "model": "mock/echo", "stream_id": "bad id!"}', "invalid_stream_id",
     "stream_id"),
    (b'{"type": "response.create", "model": "mock/echo", "stream": "yes"}', "invalid_type", "stream"),
    (b'{"type": "response.cancel"}', "missing_required_parameter", "response_id"),
    (b'{"type": "response.cancel", "response_id": "resp_nope"}', "response_not_found", "response_id"),
])
async def test_malformed_events_get_error_events_not_a_dropped_socket(
        openai_client: AsyncOpenAI, message: bytes, code: str, param: str | None) -> None:
    async with openai_client.responses.connect() as conn:
        await conn._connection.send(message)
        [error] = await until(conn)
        await conn.response.create(model="mock/echo", input="after the mistake")
        ok = checked(await until(conn))
    assert error["type"] == "error" and error["error"]["code"] == code and error["error"]["param"] == param
    assert error["error"]["type"] == "invalid_request_error" and error["status"] in (400, 404)
    assert "stream_id" not in error
    assert text_of(ok) == "after the mistake"


async def test_binary_frames_are_client_events_too(openai_client: AsyncOpenAI) -> None:
    async with openai_client.responses.connect() as conn:
        await conn._connection.send(orjson.dumps({"type": "response.create", "model": "mock/echo", "input": "b"}))
        assert text_of(checked(await until(conn))) == "b"


# -- cancel ---------------------------------------------------------------------------------------------

async def test_cancel_ends_a_running_response_as_cancelled(openai_client: AsyncOpenAI, proxy: ServerThread,
                                                           held: Held) -> None:
    held.hold()
    async with openai_client.responses.connect() as conn:
        await conn.response.create(model="mock/slow-echo", input="never said")
        [created] = await until(conn, {"response.created"})
        rid = created["response"]["id"]
        await conn.send({"type": "response.cancel", "response_id": rid})  # type: ignore[typeddict-item]
        [end] = await until(conn)
        await conn.send({"type": "response.cancel", "response_id": rid})  # already ended: nothing happens
        await conn.response.create(model="mock/echo", input="next")
        after = await until(conn)
    assert end["type"] == "response.incomplete" and end["response"]["status"] == "cancelled"
    assert end["response"]["id"] == rid and end["response"]["output"] == []
    assert text_of(checked(after)) == "next"  # no stray event between the two responses
    assert get(proxy.url, f"/responses/{rid}")["status"] == "cancelled"


# -- steering -------------------------------------------------------------------------------------------

async def test_steer_accepted_stops_the_response_and_a_successor_commits_the_input(
        openai_client: AsyncOpenAI, proxy: ServerThread, held: Held) -> None:
    held.hold()
    async with openai_client.responses.connect() as conn:
        await conn.response.create(model="mock/slow", input="think about tea", stream_id="s",
                                   instructions="be brief", metadata={"k": "v"})
        [created] = await until(conn, {"response.created"})
        target = created["response"]["id"]
        await conn.response.steer(input="talk about coffee instead", previous_response_id=target)
        stopped = await until(conn)
        successor = await until(conn)
    accepted = next(e for e in stopped if e["type"] == "response.steer.accepted")
    assert accepted["steer"]["previous_response_id"] == target and accepted["steer"]["id"].startswith("steer_")
    assert accepted["stream_id"] == "s"  # the target's lane
    end = stopped[-1]
    assert end["type"] == "response.incomplete" and end["stream_id"] == "s"
    assert end["response"]["incomplete_details"] == {"reason": "steered"}
    assert end["response"]["status"] == "incomplete" and end["response"]["id"] == target
    # the commit point: the successor's response.created, continuing the steered response with its settings
    final = checked(successor)
    assert successor[0]["type"] == "response.created" and successor[0]["stream_id"] == "s"
    assert final["previous_response_id"] == target and final["id"] != target
    assert final["instructions"] == "be brief" and final["metadata"] == {"k": "v"}
    assert text_of(final) == "talk about coffee instead"
    stored = get(proxy.url, f"/responses/{target}")
    assert stored["status"] == "incomplete" and stored["incomplete_details"] == {"reason": "steered"}
    items = get(proxy.url, f"/responses/{final['id']}/input_items?order=asc")["data"]
    assert [i["content"][0]["text"] for i in items] == ["talk about coffee instead"]


async def test_steering_input_in_submission_order(openai_client: AsyncOpenAI, proxy: ServerThread) -> None:
    """Each submission is acknowledged (and reported pending) once; the continuation gets them in order."""
    async with openai_client.responses.connect() as conn:
        await conn.response.create(model="mock/tool", input="get_weather", tools=[WEATHER])
        first = checked(await until(conn))
        call_id = next(i["call_id"] for i in first["output"] if i["type"] == "function_call")
        await conn.response.steer(input=[{"role": "user", "content": "first"}], previous_response_id=first["id"])
        await conn.response.steer(input=[{"type": "message", "role": "user",
                                          "content": [{"type": "input_text", "text": "second"}]}],
                                  previous_response_id=first["id"])
        notices = [await recv(conn) for _ in range(4)]
        await conn.response.create(model="mock/tool", tools=[WEATHER], previous_response_id=first["id"],
                                   input=[{"type": "function_call_output", "call_id": call_id, "output": "ok"}])
        final = checked(await until(conn))
    kinds = [e["type"] for e in notices]
    assert kinds == ["response.steer.accepted", "response.steer.pending"] * 2
    assert [e["sequence_number"] for e in notices] == sorted(e["sequence_number"] for e in notices)
    assert notices[0]["steer"]["id"] == notices[1]["steer"]["id"] != notices[2]["steer"]["id"]
    assert notices[1]["required_input"] == notices[3]["required_input"]  # the same owed input, reported twice
    items = get(proxy.url, f"/responses/{final['id']}/input_items?order=asc")["data"]
    assert [i["type"] for i in items] == ["function_call_output", "message", "message"]
    assert [i["content"][0]["text"] for i in items[1:]] == ["first", "second"]


async def test_steer_pending_while_tool_output_is_owed_then_prepended_to_the_continuation(
        openai_client: AsyncOpenAI, proxy: ServerThread) -> None:
    async with openai_client.responses.connect() as conn:
        await conn.response.create(model="mock/tool", input="get_weather", tools=[WEATHER], stream_id="t")
        first = checked(await until(conn))
        call = next(i for i in first["output"] if i["type"] == "function_call")
        await conn.response.steer(input="and answer in French", previous_response_id=first["id"])
        accepted, pending = await recv(conn), await recv(conn)
        await conn.response.create(model="mock/tool", tools=[WEATHER], previous_response_id=first["id"],
                                   stream_id="t",
                                   input=[{"type": "function_call_output", "call_id": call["call_id"],
                                           "output": "sunny"}])
        second = checked(await until(conn))
        await conn.response.steer(input="too late", previous_response_id=first["id"])
        [late] = await until(conn, STEER_EVENTS)
    assert accepted["type"] == "response.steer.accepted"
    assert pending["type"] == "response.steer.pending" and pending["reason"] == "waiting_for_required_input"
    assert pending["steer"] == accepted["steer"] and pending["stream_id"] == "t"
    assert pending["required_input"] == [{"type": "function_call_output", "call_id": call["call_id"],
                                          "name": "get_weather"}]
    assert second["status"] == "completed" and second["previous_response_id"] == first["id"]
    items = get(proxy.url, f"/responses/{second['id']}/input_items?order=asc")["data"]
    assert [i["type"] for i in items] == ["function_call_output", "message"]  # the answer first, then steering
    assert items[1]["content"][0]["text"] == "and answer in French"
    assert late["type"] == "response.steer.failed" and late["error"]["code"] == "response_already_completed"


@pytest.mark.parametrize(("steer", "code"), [
    ({"input": "x", "previous_response_id": "resp_unknown"}, "response_not_found"),
    ({"input": [{"role": "assistant", "content": "x"}]}, "invalid_input"),
    ({"input": [{"type": "function_call_output", "call_id": "c", "output": "o"}]}, "invalid_input"),
    ({"input": []}, "invalid_input"),
    ({"input": "x", "stream_id": "other"}, "invalid_input"),
])
async def test_steer_failed_before_acceptance(openai_client: AsyncOpenAI, steer: Json, code: str, held: Held) -> None:
    held.hold()
    async with openai_client.responses.connect() as conn:
        await conn.response.create(model="mock/slow-echo", input="q")
        [created] = await until(conn, {"response.created"})
        event = {"type": "response.steer", "previous_response_id": created["response"]["id"], **steer}
        await conn._connection.send(orjson.dumps(event))
        [failed] = await until(conn, STEER_EVENTS)
        await conn.send({"type": "response.cancel", "response_id": created["response"]["id"]})  # type: ignore
        [end] = await until(conn)
    assert failed["type"] == "response.steer.failed" and failed["error"]["code"] == code
    assert failed["error"]["type"] == "invalid_request_error"
    assert "id" not in failed["steer"]  # refused before an id was allocated
    assert failed["steer"]["input"] == steer["input"]
    assert end["response"]["status"] == "cancelled"  # the target was not touched by the refusal


async def test_steer_after_completion_and_on_a_conversation_fail(openai_client: AsyncOpenAI,
                                                                 proxy: ServerThread, held: Held) -> None:
    conv = httpx.post(proxy.url + "/v1/conversations", headers=AUTH, json={}).json()
    async with openai_client.responses.connect() as conn:
        await conn.response.create(model="mock/echo", input="done")
        done = checked(await until(conn))
        await conn.response.steer(input="late", previous_response_id=done["id"])
        [late] = await until(conn, STEER_EVENTS)
        held.hold()
        await conn.response.create(model="mock/slow-echo", input="q", conversation=conv["id"])
        [created] = await until(conn, {"response.created"})
        await conn.response.steer(input="x", previous_response_id=created["response"]["id"])
        [unsupported] = await until(conn, STEER_EVENTS)
    assert late["error"]["code"] == "response_already_completed" and late["steer"]["input"] == "late"
    assert unsupported["error"]["code"] == "steering_not_supported"


async def test_accepted_input_that_cannot_be_committed_comes_back_with_its_id(openai_client: AsyncOpenAI,
                                                                              held: Held) -> None:
    held.hold()
    async with openai_client.responses.connect() as conn:
        await conn.response.create(model="mock/slow-echo", input="q", stream_id="x")
        [created] = await until(conn, {"response.created"})
        target = created["response"]["id"]
        bad = [{"role": "user", "content": [{"type": "input_image", "image_url": 5}]}]  # the successor refuses it
        await conn.response.steer(input=bad, previous_response_id=target)  # type: ignore[typeddict-item]
        events = await until(conn, {"response.steer.failed"})
        await conn.response.create(model="mock/echo", input="goes on", stream_id="x")
        after = await until(conn)
    accepted, end, failed = events[0], events[-2], events[-1]
    assert accepted["type"] == "response.steer.accepted"
    assert end["type"] == "response.incomplete" and end["response"]["incomplete_details"] == {"reason": "steered"}
    assert failed["error"]["code"] == "successor_creation_failed" and failed["steer"]["id"] == accepted["steer"]["id"]
    assert failed["steer"]["input"] == bad and failed["stream_id"] == "x"
    assert "error" not in {e["type"] for e in events}  # the client sent no create to fail
    assert text_of(checked(after)) == "goes on"


async def test_a_websocket_on_another_path_is_refused_with_404(proxy: ServerThread) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as info:
        async with connect(proxy.url.replace("http://", "ws://") + "/v1/chat/completions", additional_headers=AUTH):
            pass
    assert info.value.response.status_code == 404
    assert orjson.loads(info.value.response.body)["error"]["code"] == "not_found"
    async with connect(proxy.url.replace("http://", "ws://") + "/responses", additional_headers=AUTH) as ws:
        await ws.send(orjson.dumps({"type": "response.create", "model": "mock/echo", "input": "no /v1"}))
        events = [orjson.loads(await ws.recv())]  # both paths serve the mode
        while events[-1]["type"] not in TERMINAL:
            events.append(orjson.loads(await ws.recv()))
    assert text_of(checked(events)) == "no /v1"
