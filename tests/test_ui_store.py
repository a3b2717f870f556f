"""`Store.list_responses` (the admin UI's list), the same on memory, SQLite and PostgreSQL: filters,
keyset pages newest first, id-prefix and substring search, time ranges; and the migration that adds its
indexes (used by SQLite's plans)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from respgate.errors import InvalidRequestError
from respgate.store.base import ResponseQuery, ResponseRecord, Store
from respgate.store.listing import list_sql, prefix_bounds, time_bound
from respgate.store.memory import MemoryStore
from respgate.store.postgres import PostgresStore
from respgate.store.sqlite import MIGRATIONS, SqliteStore
from test_store import PG_DSN, pg_schema

T0 = 1_800_000_000.0


def rid(t: float, tail: str) -> str:
    """An id as ids.py makes them: the creation time in µs as 13 hex digits, then the routing."""
    return time_bound(t) + tail


def rec(i: int, *, owner: str = "alice", model: str = "gpt-4o", status: str = "completed",
        provider: str = "openai", previous: str | None = None) -> ResponseRecord:
    t = T0 + i * 60.0
    response_id = rid(t, f"RGVwOnVw{i:04d}")
    return ResponseRecord(id=response_id, owner=owner, model=model, deployment_id=f"dep-{model}", provider=provider,
                          status=status, created_at=t, previous_response_id=previous,
                          response={"id": response_id, "status": status, "output": [],
                                    "usage": {"input_tokens": i, "output_tokens": 2 * i, "total_tokens": 3 * i}})


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with contextlib.AsyncExitStack() as stack:
        s: Store
        if request.param == "memory":
            s = MemoryStore()
        elif request.param == "sqlite":
            s = SqliteStore(str(tmp_path / "ui.db"))
        else:
            schema = await stack.enter_async_context(pg_schema())
            s = PostgresStore(PG_DSN, schema=schema)
        await s.open()
        stack.push_async_callback(s.close)
        yield s


async def seeded(store: Store) -> list[ResponseRecord]:
    records = []
    for i in range(30):
        records.append(rec(i, owner="alice" if i % 3 else "bob", model="gpt-4o" if i % 2 else "claude",
                           status="failed" if i % 10 == 7 else "completed", provider="openai" if i % 2 else "anthropic",
                           previous=records[-1].id if i % 5 else None))
    for r in records:
        await store.save(r)
    return records


async def ids(store: Store, **query: object) -> list[str]:
    found, _ = await store.list_responses(ResponseQuery(**query))  # type: ignore[arg-type]
    return [s.id for s in found]


async def test_filters_pages_and_search_agree_on_every_store(store: Store) -> None:
    records = await seeded(store)
    newest_first = [r.id for r in reversed(records)]
    assert await ids(store, limit=200) == newest_first
    page, more = await store.list_responses(ResponseQuery(limit=5))
    assert [s.id for s in page] == newest_first[:5] and more
    assert page[0].usage == {"input_tokens": 29, "output_tokens": 58, "total_tokens": 87}
    assert page[0].previous_response_id == records[28].id and page[0].owner == "alice"
    # keyset pages: each continues below the last id, and the last says no more follow
    seen: list[str] = []
    after = None
    while True:
        page, more = await store.list_responses(ResponseQuery(limit=7, after=after))
        seen += [s.id for s in page]
        if not more:
            break
        after = page[-1].id
    assert seen == newest_first
    assert await ids(store, owner="bob") == [r.id for r in reversed(records) if r.owner == "bob"]
    assert await ids(store, model="claude", owner="alice") == [
        r.id for r in reversed(records) if r.model == "claude" and r.owner == "alice"]
    assert await ids(store, status="failed") == [records[27].id, records[17].id, records[7].id]
    assert len(await ids(store, status="completed", limit=200)) == 27
    assert await ids(store, created_after=T0 + 10 * 60, created_before=T0 + 13 * 60) == [
        records[12].id, records[11].id, records[10].id]
    assert await ids(store, search=records[4].id) == [records[4].id]
    assert await ids(store, search=records[4].id[:15]) == [r.id for r in reversed(records) if r.id.startswith(
        records[4].id[:15])]
    assert await ids(store, search="CLAU", limit=2) == [records[28].id, records[26].id]  # case-insensitive
    assert await ids(store, search="gpt-4", owner="bob", limit=2) == [r.id for r in reversed(records)
                                                                      if r.model == "gpt-4o" and r.owner == "bob"][:2]
    assert await ids(store, search="anthropic") == []  # the model's name only
    assert await ids(store, search="resp_ffff") == []
    assert await ids(store, search="no such thing") == []


async def test_a_bad_limit_is_refused(store: Store) -> None:
    for limit in (0, 201):
        with pytest.raises(InvalidRequestError) as e:
            await store.list_responses(ResponseQuery(limit=limit))
        assert e.value.param == "limit"


def test_bounds_only_compare_hex_digits() -> None:
    assert time_bound(T0) == "resp_" + format(int(T0 * 1_000_000), "013x")
    assert prefix_bounds("resp_0665") == ("resp_0665", "resp_0666")
    assert prefix_bounds("resp_066f") == ("resp_066f", "resp_0670")
    assert prefix_bounds("resp_fff") == ("resp_fff", None)
    assert prefix_bounds("resp_") == (None, None)
    assert prefix_bounds("resp_0665" + "a" * 20 + "XYZ") == ("resp_0665aaaaaaaaa", "resp_0665aaaaaaaab")
    sql, params = list_sql(ResponseQuery(search="resp_0665", after="resp_0665z"), "postgres")
    assert "$1" in sql and params[-1] == 51 and "resp_0665z" in params


async def test_sqlite_lists_through_the_new_indexes(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "plan.db"))
    await store.open()
    await seeded(store)
    await store.close()
    conn = sqlite3.connect(tmp_path / "plan.db")
    try:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations WHERE component = 'store'")]
        assert versions == list(range(1, len(MIGRATIONS) + 1)) and len(versions) >= 2  # v2: these indexes

        def plan(query: ResponseQuery) -> str:
            sql, params = list_sql(query, "sqlite")
            return " ".join(str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))

        assert "responses_by_owner" in plan(ResponseQuery(owner="bob"))
        assert "responses_by_model" in plan(ResponseQuery(model="claude"))
        assert "responses_unsettled" in plan(ResponseQuery(status="failed"))
        for query in (ResponseQuery(), ResponseQuery(owner="bob"), ResponseQuery(status="failed"),
                      ResponseQuery(search="resp_0665", after="resp_0666")):
            assert "TEMP B-TREE" not in plan(query)  # never a sort: the page is read in index order
        assert "SCAN r" not in plan(ResponseQuery(search="clau"))  # model names: seeks, not a scan
    finally:
        conn.close()


async def test_postgres_has_the_new_indexes() -> None:
    async with pg_schema() as schema:
        store = PostgresStore(PG_DSN, schema=schema)
        await store.open()
        await store.save(rec(1))
        await store.close()
        conn = await asyncpg.connect(PG_DSN)
        try:
            names = {r["indexname"] for r in await conn.fetch(
                "SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'responses'", schema)}
            assert {"responses_by_owner", "responses_by_model", "responses_unsettled"} <= names
            versions = await conn.fetch(f'SELECT version FROM "{schema}".schema_migrations WHERE component = $1',
                                        "store")
            assert sorted(r["version"] for r in versions) == [1, 2]
        finally:
            await conn.close()
