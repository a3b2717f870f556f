"""Background mode for every provider: the gateway runs the response, clients poll, follow, resume and cancel.

Through the proxy with the official openai SDK, against the mock (paced so a run takes a while), the
chat bridge (FakeChat) and the native passthrough (FakeOpenAI); the restart after `kill -9` against
the real `respgate serve`; shutdown and the stored events on the gateway and the stores directly.
Waits are bounded polls; nothing asserts on how long anything took.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import openai
import orjson
import pytest
from openai import AsyncOpenAI, OpenAI
from openai.types.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conftest import MASTER_KEY, ProxyFactory
from fakes.chat_upstream import FakeChat
from fakes.openai_upstream import FakeOpenAI
from fakes.server import ServerThread
from grammar import check_stream
from procs import ProxyProcesses
from respgate.calls import Principal
from respgate.config import load_config
from respgate.gateway import Gateway
from respgate.sdk import Client
from respgate.store.base import ResponseRecord, Store
from respgate.store.memory import MemoryStore
from respgate.store.postgres import PostgresStore
from respgate.store.sqlite import SqliteStore
from test_store import PG_DSN, pg_schema

T = TypeVar("T")
CHAT_KEY = "sk-chat-upstream-secret"
UPSTREAM_KEY = "sk-upstream-secret-987654"
LONG = " ".join(f"word{i}" for i in range(400))  # 400 deltas: at 40/s a run lasts long enough to catch
UNFINISHED = ("queued", "in_progress")


def models(chat_url: str = "http://127.0.0.1:9", openai_url: str = "http://127.0.0.1:9") -> str:
    return f"""
model_list:
  - model_name: slow
    litellm_params: {{model: mock/echo, mock_latency_ms: 50, mock_tokens_per_second: 40}}
  - model_name: brisk
    litellm_params: {{model: mock/echo, mock_tokens_per_second: 400}}
  - model_name: chat
    litellm_params: {{model: deepseek/deepseek-chat, api_base: "{chat_url}/v1", api_key: "{CHAT_KEY}"}}
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_base: "{openai_url}/v1", api_key: "{UPSTREAM_KEY}"}}
"""


def wait_for(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float = 20) -> T:
    deadline = time.monotonic() + timeout
    value = fetch()
    while not done(value):
        assert time.monotonic() < deadline, f"still {value!r}"
        time.sleep(0.02)
        value = fetch()
    return value


def finished(client: OpenAI, rid: str) -> Response:
    return wait_for(lambda: client.responses.retrieve(rid), lambda r: r.status not in UNFINISHED)


def stored_events(client: OpenAI, rid: str, after: int | None = None) -> list[dict[str, Any]]:
    if after is None:
        return [e.to_dict() for e in client.responses.retrieve(rid, stream=True)]
    return [e.to_dict() for e in client.responses.retrieve(rid, stream=True, starting_after=after)]


class DisconnectWatch:
    """An ASGI wrapper counting requests whose client hung up before the response was complete."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.aborted = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_read = asyncio.Event()
        complete = False

        async def receive_body() -> Message:
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body"):
                body_read.set()
            return message

        async def send_marking(message: Message) -> None:
            nonlocal complete
            if message["type"] == "http.response.body" and not message.get("more_body"):
                complete = True
            await send(message)

        async def watch() -> None:
            await body_read.wait()
            if (await receive())["type"] == "http.disconnect" and not complete:
                self.aborted += 1

        watcher = asyncio.create_task(watch())
        try:
            await self.app(scope, receive_body, send_marking)
        finally:
            watcher.cancel()


@pytest.fixture
def chat() -> Iterator[tuple[FakeChat, DisconnectWatch, str]]:
    fake = FakeChat(api_key=CHAT_KEY)
    watch = DisconnectWatch(fake.app)
    with ServerThread(watch) as server:
        yield fake, watch, server.url


@pytest.fixture
def native() -> Iterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI(api_key=UPSTREAM_KEY)
    with ServerThread(fake.app) as server:
        yield fake, server.url


@pytest.fixture
def client(start_proxy: ProxyFactory, chat: tuple[FakeChat, DisconnectWatch, str],
           native: tuple[FakeOpenAI, str]) -> Iterator[OpenAI]:
    proxy = start_proxy(models(chat[2], native[1]))
    with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=30) as c:
        yield c


# ---------------------------------------------------------------- create, poll, complete


@pytest.mark.parametrize("model", ["slow", "chat", "gpt-4o"])
def test_background_create_is_queued_then_completes(client: OpenAI, model: str,
                                                    chat: tuple[FakeChat, DisconnectWatch, str],
                                                    native: tuple[FakeOpenAI, str]) -> None:
    chat[0].delay_next(0.3)
    native[0].background_seconds = 0.3
    queued = client.responses.create(model=model, input="in the background please", background=True)
    assert (queued.status, queued.background, queued.output) == ("queued", True, [])
    assert client.responses.retrieve(queued.id).status in ("queued", "in_progress", "completed")
    done = finished(client, queued.id)
    assert done.status == "completed", done.error
    assert done.output_text.endswith("in the background please")
    assert done.id == queued.id and done.background is True


def test_background_requires_store(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="slow", input="x", background=True, store=False)
    assert info.value.body["param"] == "background"  # type: ignore[index]
    assert "store" in info.value.message


def test_upstream_failure_ends_the_background_response_failed(client: OpenAI,
                                                              chat: tuple[FakeChat, DisconnectWatch, str]) -> None:
    chat[0].fail_next(500)
    queued = client.responses.create(model="chat", input="doomed", background=True)
    assert queued.status == "queued"  # the upstream is only called by the run
    done = finished(client, queued.id)
    assert done.status == "failed" and done.error is not None
    events = stored_events(client, queued.id)
    assert check_stream(events)["status"] == "failed"


# ---------------------------------------------------------------- streams: live, resumed, replayed


def test_resume_from_n_live_and_after_the_end(client: OpenAI) -> None:
    words = " ".join(f"w{i}" for i in range(60))
    with client.responses.create(model="slow", input=words, background=True, stream=True) as stream:
        head = []
        for ev in stream:
            head.append(ev.to_dict())
            if ev.type == "response.output_text.delta" and len(head) > 8:
                break
    rid = head[0]["response"]["id"]
    n = head[-1]["sequence_number"]
    assert client.responses.retrieve(rid).status in UNFINISHED  # resumed while it still runs
    tail = stored_events(client, rid, after=n)
    whole = head + tail
    assert [e["sequence_number"] for e in whole] == list(range(len(whole)))
    final = check_stream(whole)
    assert final["output"][0]["content"][0]["text"] == words
    # After the end the same numbering: the stored events are the ones streamed.
    assert stored_events(client, rid, after=n) == tail
    assert stored_events(client, rid) == whole
    assert stored_events(client, rid, after=len(whole) - 1) == []


def test_creating_client_may_leave_the_stream(client: OpenAI) -> None:
    with client.responses.create(model="slow", input=LONG[:600], background=True, stream=True) as stream:
        first = [ev.to_dict() for _, ev in zip(range(3), stream, strict=False)]
    rid = first[0]["response"]["id"]
    done = finished(client, rid)
    assert done.status == "completed" and done.output_text == LONG[:600]


# ---------------------------------------------------------------- cancel


def test_cancel_stops_a_running_mock_response(client: OpenAI) -> None:
    queued = client.responses.create(model="slow", input=LONG, background=True)
    seen = []
    with client.responses.retrieve(queued.id, stream=True) as stream:
        for ev in stream:
            seen.append(ev)
            if ev.type == "response.output_text.delta":
                break
    cancelled = client.responses.cancel(queued.id)
    assert cancelled.status == "cancelled" and cancelled.id == queued.id
    events = stored_events(client, queued.id)
    assert events[: len(seen)] == [e.to_dict() for e in seen]
    assert not any(e["type"] in ("response.completed", "response.failed") for e in events)
    time.sleep(0.3)  # were it still running, more deltas would land by now
    assert client.responses.retrieve(queued.id).status == "cancelled"
    assert stored_events(client, queued.id) == events
    again = client.responses.cancel(queued.id)  # a finished response comes back unchanged
    assert again.to_dict() == cancelled.to_dict()


def test_cancel_closes_the_bridged_upstream_call(client: OpenAI, chat: tuple[FakeChat, DisconnectWatch, str]) -> None:
    fake, watch, _ = chat
    fake.delay_next(3)
    queued = client.responses.create(model="chat", input="never answered", background=True)
    wait_for(lambda: len(fake.requests), lambda n: n == 1)
    assert client.responses.cancel(queued.id).status == "cancelled"
    wait_for(lambda: watch.aborted, lambda n: n == 1)
    assert client.responses.retrieve(queued.id).status == "cancelled"


def test_cancel_of_a_finished_response_returns_it_unchanged(client: OpenAI) -> None:
    queued = client.responses.create(model="brisk", input="quick one", background=True)
    done = finished(client, queued.id)
    assert client.responses.cancel(queued.id).to_dict() == done.to_dict()


# ---------------------------------------------------------------- many at once


async def test_hundred_concurrent_background_responses(start_proxy: ProxyFactory) -> None:
    proxy = start_proxy(models())
    async with AsyncOpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=60) as c:
        texts = [f"job {i} " + " ".join(f"t{i}x{k}" for k in range(10)) for i in range(100)]
        queued = await asyncio.gather(*(c.responses.create(model="brisk", input=t, background=True) for t in texts))
        assert {q.status for q in queued} == {"queued"} and len({q.id for q in queued}) == 100

        async def outcome(rid: str) -> Response:
            deadline = time.monotonic() + 60
            while True:
                r = await c.responses.retrieve(rid)
                if r.status not in UNFINISHED:
                    return r
                assert time.monotonic() < deadline, r.status
                await asyncio.sleep(0.05)

        done = await asyncio.gather(*(outcome(q.id) for q in queued))
    assert [(d.status, d.output_text) for d in done] == [("completed", t) for t in texts]


# ---------------------------------------------------------------- restart, shutdown


def test_kill9_during_a_run_leaves_it_failed_after_restart(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(models() + f"\ngeneral_settings:\n  database_url: sqlite:///{tmp_path / 'store.db'}\n"
                                 f"  master_key: {MASTER_KEY}\n")
    with ProxyProcesses() as procs:
        server = procs.spawn(config)
        with OpenAI(base_url=server.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=30) as c:
            queued = c.responses.create(model="slow", input=LONG, background=True)
            wait_for(lambda: c.responses.retrieve(queued.id).status, lambda s: s == "in_progress")
        server.kill9()
        server = procs.spawn(config)
        with OpenAI(base_url=server.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=30) as c:
            got = c.responses.retrieve(queued.id)
            assert got.status == "failed" and got.error is not None
            assert "restarted" in got.error.message
            assert check_stream(stored_events(c, queued.id))["status"] == "failed"


async def test_shutdown_stores_running_responses_as_failed(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(models())
    db = str(tmp_path / "store.db")
    gateway = Gateway(load_config(str(path)), SqliteStore(db))
    await gateway.start()
    owner = Principal("me")
    queued = orjson.loads(await gateway.create({"model": "slow", "input": LONG, "background": True}, owner))
    while (await gateway.retrieve(queued["id"], owner))["status"] != "in_progress":
        await asyncio.sleep(0.02)
    await gateway.close()
    assert len(gateway.background) == 0

    store = SqliteStore(db)
    await store.open()
    try:
        record = await store.get(queued["id"])
        events = await store.events(queued["id"])
    finally:
        await store.close()
    assert record is not None and record.status == "failed"
    assert record.response["error"]["message"].startswith("The gateway shut down")
    assert events is not None
    parsed = [orjson.loads(e) for e in events]
    assert check_stream(parsed) == record.response


# ---------------------------------------------------------------- the SDK, through the same gateway


def test_sdk_background_poll_and_cancel(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(models())
    client = Client(config=load_config(str(path)))
    try:
        queued = client.responses(model="brisk", input="sdk in the background", background=True)
        assert queued.status == "queued"
        done = wait_for(lambda: client.get_responses(queued.id), lambda r: r.status not in UNFINISHED)
        assert (done.status, done.output_text) == ("completed", "sdk in the background")

        running = client.responses(model="slow", input=LONG, background=True)
        wait_for(lambda: client.get_responses(running.id).status, lambda s: s == "in_progress")
        assert client.cancel_responses(running.id).status == "cancelled"
        assert client.get_responses(running.id).status == "cancelled"
    finally:
        client.close()


# ---------------------------------------------------------------- the stores keep a background stream


@pytest.fixture(params=["sqlite", "memory", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with contextlib.AsyncExitStack() as stack:
        s: Store
        if request.param == "sqlite":
            s = SqliteStore(str(tmp_path / "rg.db"))
        elif request.param == "memory":
            s = MemoryStore()
        else:
            s = PostgresStore(PG_DSN, schema=await stack.enter_async_context(pg_schema()))
        await s.open()
        yield s
        await s.close()


async def test_store_keeps_events_with_the_record(store: Store) -> None:
    rec = ResponseRecord(id="resp_bg", owner="o", model="m", deployment_id="d", provider="mock", status="completed",
                         created_at=1.0, previous_response_id=None, response={"id": "resp_bg"}, background=True)
    events = [b'{"type":"a","sequence_number":0,"text":"line\\nbreak"}', b'{\n "type": "b"}', b'{"type":"c"}']
    assert await store.events("resp_bg") is None
    await store.save(rec, events)
    got = await store.events("resp_bg")
    assert got is not None and [orjson.loads(e) for e in got] == [orjson.loads(e) for e in events]
    await store.save(rec)  # a save without events keeps them
    assert await store.events("resp_bg") == got
    await store.save(rec, [])
    assert await store.events("resp_bg") == []
    await store.delete("resp_bg")
    assert await store.events("resp_bg") is None



async def test_delete_stops_a_running_response_for_good(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(models())
    gateway = Gateway(load_config(str(path)), MemoryStore())
    await gateway.start()
    try:
        owner = Principal("me")
        queued = orjson.loads(await gateway.create({"model": "slow", "input": LONG, "background": True}, owner))
        while (await gateway.retrieve(queued["id"], owner))["status"] != "in_progress":
            await asyncio.sleep(0.02)
        await gateway.delete(queued["id"], owner)
        assert len(gateway.background) == 0  # no run left to store it again when it ends
        assert await gateway.store.get(queued["id"]) is None
    finally:
        await gateway.close()
