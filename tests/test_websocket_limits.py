"""WebSocket mode's limits: messages per second, queued bytes, lanes, responses in flight, pending steers,
message size, idle timeout, the connection's age (with the SDK reconnecting), and a client that stops
reading; and the real `respgate serve` accepting the socket."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from openai import AsyncOpenAI
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from conftest import MASTER_KEY, MOCK_MODELS, ProxyFactory
from fakes.server import ServerThread
from procs import ProxyProcesses
from test_websocket import SLOW, STEER_EVENTS, WEATHER, Held, checked, recv, text_of, until

HEADERS = {"Authorization": f"Bearer {MASTER_KEY}"}


def general(**settings: Any) -> str:
    return "".join(f"  {k}: {v}\n" for k, v in settings.items())


def ws_url(server: ServerThread | Any) -> str:
    return server.url.replace("http://", "ws://") + "/v1/responses"


async def eventually(condition: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@pytest.fixture
def serve(start_proxy: ProxyFactory) -> Callable[..., ServerThread]:
    def run(**settings: Any) -> ServerThread:
        return start_proxy(MOCK_MODELS + SLOW, general=general(**settings))
    return run


@pytest.fixture
async def sdk() -> AsyncIterator[Callable[[ServerThread], AsyncOpenAI]]:
    clients: list[AsyncOpenAI] = []

    def make(server: ServerThread) -> AsyncOpenAI:
        clients.append(AsyncOpenAI(base_url=server.url + "/v1", api_key=MASTER_KEY, max_retries=0))
        return clients[-1]

    yield make
    for c in clients:
        await c.close()


async def test_messages_over_the_rate_are_answered_with_429_and_not_processed(
        serve: Callable[..., ServerThread], sdk: Callable[[ServerThread], AsyncOpenAI]) -> None:
    server = serve(websocket_max_messages_per_second=5)  # bursts of 10
    async with sdk(server).responses.connect() as conn:
        for _ in range(40):  # each answered by one error: a missing field when served, 429 when refused
            await conn.send({"type": "response.cancel"})  # type: ignore[typeddict-item]
        answers = [(await recv(conn))["error"]["code"] for _ in range(40)]
        # the connection stays; once the bucket refills, messages are served again
        while True:
            await conn.response.create(model="mock/echo", input="served")
            ev = await recv(conn)
            if ev["type"] == "response.created":
                break
            assert ev["status"] == 429 and ev["error"]["code"] == "rate_limit_exceeded" and "stream_id" not in ev
            await asyncio.sleep(0.05)
        rest = await until(conn)
    assert set(answers) == {"missing_required_parameter", "rate_limit_exceeded"}
    assert answers.count("rate_limit_exceeded") >= 20  # 40 at once, at most 10 + what refilled meanwhile
    assert text_of(checked([ev, *rest])) == "served"


async def test_queued_bytes_lanes_and_in_flight_are_bounded(
        serve: Callable[..., ServerThread], sdk: Callable[[ServerThread], AsyncOpenAI]) -> None:
    server = serve(websocket_max_queued_bytes=3000, websocket_max_lanes=2, websocket_max_in_flight=1)
    held = Held(server)
    held.hold()
    padding = "x" * 1000
    async with sdk(server).responses.connect() as conn:
        await conn.response.create(model="mock/slow-echo", input="first", stream_id="a")
        [created] = await until(conn, {"response.created"})
        # in flight: 1, so lane b waits; its bytes count while it waits
        await conn.response.create(model="mock/echo", input="b " + padding, stream_id="b")
        await conn.response.create(model="mock/echo", input="a " + padding, stream_id="a")
        await conn.response.create(model="mock/echo", input="over " + padding, stream_id="a")
        [full] = await until(conn)
        await conn.response.create(model="mock/echo", input="x", stream_id="c")
        [lanes] = await until(conn)
        await conn.send({"type": "response.cancel", "response_id": created["response"]["id"]})  # type: ignore
        first = await until(conn)
        later = [await until(conn), await until(conn)]
    assert full["type"] == "error" and full["status"] == 429 and full["stream_id"] == "a"
    assert full["error"]["code"] == "websocket_queue_limit_reached"
    assert lanes["error"]["code"] == "websocket_stream_limit_reached" and lanes["error"]["param"] == "stream_id"
    assert first[-1]["response"]["status"] == "cancelled"
    assert sorted(text_of(checked(events))[:2] for events in later) == ["a ", "b "]


async def test_pending_steers_per_response_are_bounded(
        serve: Callable[..., ServerThread], sdk: Callable[[ServerThread], AsyncOpenAI]) -> None:
    server = serve(websocket_max_pending_steers=1)
    async with sdk(server).responses.connect() as conn:
        await conn.response.create(model="mock/tool", input="get_weather", tools=[WEATHER])
        first = checked(await until(conn))
        await conn.response.steer(input="one", previous_response_id=first["id"])
        await conn.response.steer(input="two", previous_response_id=first["id"])
        notices = [await recv(conn) for _ in range(3)]
    assert [n["type"] for n in notices] == ["response.steer.accepted", "response.steer.pending",
                                            "response.steer.failed"]
    assert notices[2]["error"]["code"] == "too_many_pending_steers" and notices[2]["steer"]["input"] == "two"
    assert {n["type"] for n in notices} <= STEER_EVENTS


async def test_a_message_over_the_body_limit_is_refused(
        serve: Callable[..., ServerThread], sdk: Callable[[ServerThread], AsyncOpenAI]) -> None:
    server = serve(max_request_body_bytes=2000)
    async with sdk(server).responses.connect() as conn:
        await conn.response.create(model="mock/echo", input="y" * 3000)
        [error] = await until(conn)
        await conn.response.create(model="mock/echo", input="small")
        ok = checked(await until(conn))
    assert error["status"] == 413 and error["error"]["code"] == "request_too_large"
    assert text_of(ok) == "small"


async def test_an_idle_connection_is_closed_normally(serve: Callable[..., ServerThread]) -> None:
    server = serve(websocket_idle_timeout_seconds=0.2)
    async with connect(ws_url(server), additional_headers=HEADERS) as ws:
        await ws.send(orjson.dumps({"type": "response.create", "model": "mock/echo", "input": "then idle"}))
        events = [orjson.loads(m) async for m in ws]  # until the server closes
    assert events[-1]["type"] == "response.completed"
    assert ws.close_code == 1000 and ws.close_reason == "idle timeout"


async def test_the_connection_age_limit_closes_with_1001_and_the_sdk_reconnects(
        serve: Callable[..., ServerThread], sdk: Callable[[ServerThread], AsyncOpenAI]) -> None:
    server = serve(websocket_max_connection_seconds=0.3)
    codes: list[int] = []

    def on_reconnecting(event: Any) -> None:
        codes.append(event.close_code)

    async with sdk(server).responses.connect(on_reconnecting=on_reconnecting, initial_delay=0.01) as conn:
        events = aiter(conn)
        await conn.response.create(model="mock/recall", input="before")
        first = None
        while first is None:
            ev = await anext(events)
            first = ev.response if ev.type == "response.completed" else None
        following = asyncio.ensure_future(anext(events))  # the SDK reconnects inside its event iterator
        await eventually(lambda: bool(codes))
        await conn.response.create(model="mock/recall", input="after", previous_response_id=first.id)
        got = [await following]
        while got[-1].type != "response.completed":
            got.append(await anext(events))
        await events.aclose()  # type: ignore[attr-defined]
    assert codes == [1001]
    assert got[-1].response.output_text == "before | after"  # the stored chain, on the new connection


async def test_a_client_that_stops_reading_is_closed_with_1008(serve: Callable[..., ServerThread],
                                                              caplog: pytest.LogCaptureFixture) -> None:
    server = serve(websocket_send_timeout_seconds=0.3)
    words = " ".join(f"w{i}" for i in range(60_000))  # one delta per word: ~14 MB of events
    caplog.set_level(logging.WARNING, logger="respgate.proxy.websocket")
    # A small receive buffer, fixed (no autotuning): the client's kernel stops taking data early.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.connect(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
    async with connect(ws_url(server), sock=sock, additional_headers=HEADERS, max_queue=1, max_size=None,
                       compression=None) as ws:  # deflate would shrink these repetitive events to nothing
        await ws.send(orjson.dumps({"type": "response.create", "model": "mock/echo", "input": words}))
        await eventually(lambda: "closing with 1008" in caplog.text, timeout=30)  # we read nothing meanwhile
        with pytest.raises(ConnectionClosed):
            while True:
                await ws.recv()
    assert ws.close_code == 1008 and ws.close_reason == "client is not reading"


@pytest.mark.slow
def test_the_cli_server_accepts_the_websocket(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(MOCK_MODELS + f"general_settings:\n  master_key: {MASTER_KEY}\n"
                      f"  database_url: sqlite:///{tmp_path}/store.db\n")

    async def talk(url: str) -> list[Any]:
        async with AsyncOpenAI(base_url=url + "/v1", api_key=MASTER_KEY, max_retries=0) as client, \
                client.responses.connect() as conn:
            await conn.response.create(model="mock/echo", input="from the real server")
            return await until(conn)

    with ProxyProcesses() as procs:
        server = procs.spawn(config)
        events = asyncio.run(talk(server.url))
    assert text_of(checked(events)) == "from the real server"


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("websocket_idle_timeout_seconds", "soon", "expected a number"),
    ("websocket_max_lanes", 1.5, "expected an integer"),
    ("websocket_max_in_flight", 0, "must be greater than 0"),
    ("websocket_max_messages_per_second", True, "expected a number"),
])
def test_bad_limits_name_their_key(key: str, value: Any, problem: str) -> None:
    from respgate.config import GeneralSettings
    from respgate.errors import ConfigError
    from respgate.wsmode import Limits

    with pytest.raises(ConfigError, match=f"general_settings.{key}: {problem}"):
        Limits.from_general(GeneralSettings(extra={key: value}))
    defaults = Limits.from_general(GeneralSettings())
    assert (defaults.max_in_flight, defaults.max_lanes, defaults.idle_timeout) == (16, 32, 600.0)
