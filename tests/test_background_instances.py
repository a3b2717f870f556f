"""A background run seen from another process: two gateways on one database (two workers on one SQLite
file, or two instances on one PostgreSQL) follow, cancel and delete each other's live runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from grammar import check_stream
from respgate.calls import Principal
from respgate.config import config_from_dicts
from respgate.gateway import Gateway
from respgate.store.base import Store
from respgate.store.postgres import PostgresStore
from respgate.store.sqlite import SqliteStore
from test_store import PG_DSN, pg_schema

ME = Principal("me")
WORDS = " ".join(f"w{i}" for i in range(60))  # at 40 tokens/s: about 1.5 s of stream


def _config():  # type: ignore[no-untyped-def]
    return config_from_dicts([{"model_name": "slow", "litellm_params": {
        "model": "mock/echo", "mock_latency_ms": 20, "mock_tokens_per_second": 40}}])


@pytest.fixture(params=["sqlite", "postgres"])
async def two(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Gateway, Gateway]]:
    async with contextlib.AsyncExitStack() as stack:
        stores: list[Store]
        if request.param == "sqlite":
            stores = [SqliteStore(str(tmp_path / "shared.db")) for _ in range(2)]
        else:
            schema = await stack.enter_async_context(pg_schema())
            stores = [PostgresStore(PG_DSN, schema=schema, instance_name=f"i{n}") for n in range(2)]
        gateways = [Gateway(_config(), s) for s in stores]
        for g in gateways:
            g.background.checkpoint_seconds = 0.1
            await g.start()
            stack.push_async_callback(g.close)
        yield gateways[0], gateways[1]


async def _start(a: Gateway) -> str:
    queued = orjson.loads(await a.create({"model": "slow", "input": WORDS, "background": True}, ME))
    return str(queued["id"])


async def test_another_process_follows_a_live_run_to_its_end(two: tuple[Gateway, Gateway]) -> None:
    a, b = two
    rid = await _start(a)
    assert a.background.get(rid) is not None and b.background.get(rid) is None
    followed = [ev.obj async for ev in await b.retrieve_stream(rid, ME, None)]
    assert followed[-1]["type"] == "response.completed"
    assert check_stream(followed)["output"][0]["content"][0]["text"] == WORDS
    # the same events as the run's own log, stored with its final state
    own = [orjson.loads(raw) for raw in await a.store.events(rid) or []]
    assert followed == own
    resumed = [ev.obj async for ev in await b.retrieve_stream(rid, ME, 5)]
    assert resumed == own[6:]


async def test_another_process_cancels_a_live_run(two: tuple[Gateway, Gateway]) -> None:
    a, b = two
    rid = await _start(a)
    follower = await b.retrieve_stream(rid, ME, None)
    first = await anext(follower)  # the run is going
    assert first.type == "response.created"
    cancelled = await b.cancel(rid, ME)
    assert cancelled["status"] == "cancelled"
    run = a.background.get(rid)
    if run is not None and run.task is not None:
        await asyncio.wait_for(asyncio.wait({run.task}), 5)  # the owner stopped its run
    assert a.background.get(rid) is None
    stored = await a.retrieve(rid, ME)
    assert stored["status"] == "cancelled"
    rest = [ev async for ev in follower]  # the follower's stream ends (no event for a cancel)
    assert all(ev.type != "response.completed" for ev in rest)


async def test_another_process_deletes_a_live_run(two: tuple[Gateway, Gateway]) -> None:
    a, b = two
    rid = await _start(a)
    assert (await b.delete(rid, ME))["deleted"] is True
    run = a.background.get(rid)
    if run is not None and run.task is not None:
        await asyncio.wait_for(asyncio.wait({run.task}), 5)
    assert await a.store.get(rid) is None and await b.store.get(rid) is None  # its end did not bring it back
