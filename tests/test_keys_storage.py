"""The key store's contract on every backend (memory, SQLite, PostgreSQL): entities by id, filters and
pages, spend added per budget period, compare-and-set resets, key moves; keys stored hashed only."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from respgate.keys.records import make_entity
from respgate.keys.storage import MemoryStorage, Storage, get
from respgate.keys.storage_sql import PostgresStorage, SqliteStorage
from respgate.keys.tokens import hash_token
from test_keys_helpers import ADMIN, PG_DSN, manager


@asynccontextmanager
async def fresh_schema() -> AsyncIterator[str]:
    """A schema of its own, dropped afterwards (other tests share the server)."""
    schema = f"keys_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_DSN)
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    async with fresh_schema() as schema:
        yield schema


def pg_dsn(schema: str) -> str:
    return f"{PG_DSN}?search_path={schema}"


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    async with AsyncExitStack() as stack:
        store: Storage
        if request.param == "memory":
            store = MemoryStorage()
        elif request.param == "sqlite":
            store = SqliteStorage(str(tmp_path / "keys.db"))
        else:
            store = PostgresStorage(pg_dsn(await stack.enter_async_context(fresh_schema())))
        await store.open()
        yield store
        await store.close()


def entity(kind: str, id: str, created: float, **fields: object) -> object:
    return make_entity(kind, id, dict(fields), 0.0, None, created)  # type: ignore[arg-type]


async def test_entities_round_trip_with_filters_and_pages(storage: Storage) -> None:
    for i in range(5):
        assert await storage.insert(entity("key", f"k{i}", 100.0 + i, team_id="t1" if i % 2 else "t2",
                                           key_alias=f"alias-{i}", models=["a"]))  # type: ignore[arg-type]
    assert not await storage.insert(entity("key", "k0", 1.0))  # type: ignore[arg-type]
    found, total = await storage.find("key", team_id="t1")
    assert [e.id for e in found] == ["k1", "k3"] and total == 2
    page, total = await storage.find("key", offset=1, limit=2)
    assert [e.id for e in page] == ["k1", "k2"] and total == 5
    many = await storage.get_many("key", [f"absent-{i}" for i in range(1200)] + ["k1", "k2"])
    assert sorted(e.id for e in many) == ["k1", "k2"]
    by_alias, _ = await storage.find("key", alias="alias-4")
    assert [e.id for e in by_alias] == ["k4"] and by_alias[0].models == ("a",)
    assert sorted(await storage.delete_where("key", team_id="t2")) == ["k0", "k2", "k4"]
    assert sorted(await storage.delete("key", ["k1", "k3", "nope"])) == ["k1", "k3"]
    assert await storage.find("key") == ([], 0)


async def test_spend_is_added_per_period_and_resets_are_compare_and_set(storage: Storage) -> None:
    e = make_entity("team", "t", {"budget_duration": "1h", "max_budget": 5.0}, 0.0, 3600.0, 1.0)
    assert await storage.insert(e)
    await storage.add_spend([("team", "t", 3600.0, 1.5), ("team", "t", 3600.0, 0.25), ("team", "t", 7.0, 9.0)])
    stored = await get(storage, "team", "t")
    assert stored is not None and stored.spend == 1.75 and stored.period == 3600.0 and stored.max_budget == 5.0
    assert await storage.reset_budget("team", "t", 3600.0, 7200.0)
    assert not await storage.reset_budget("team", "t", 3600.0, 7200.0)  # another instance already did
    await storage.add_spend([("team", "t", 3600.0, 1.0)])  # late, for the old period: dropped
    stored = await get(storage, "team", "t")
    assert stored is not None and stored.spend == 0.0 and stored.budget_reset_at == 7200.0
    stored.fields["team_alias"] = "renamed"
    stored.spend = 99.0
    assert await storage.update(stored)  # fields only: the spend column is not overwritten
    again = await get(storage, "team", "t")
    assert again is not None and again.alias == "renamed" and again.spend == 0.0
    assert await storage.update(stored, spend=True)
    again = await get(storage, "team", "t")
    assert again is not None and again.spend == 99.0


async def test_a_key_moves_to_a_new_id_with_its_spend(storage: Storage) -> None:
    assert await storage.insert(make_entity("key", "old", {"key_alias": "a"}, 4.5, None, 1.0))
    moved = make_entity("key", "new", {"key_alias": "a"}, 0.0, None, 1.0)
    assert await storage.replace("old", moved)
    assert await get(storage, "key", "old") is None
    new = await get(storage, "key", "new")
    assert new is not None and new.spend == 4.5
    assert not await storage.replace("old", moved)


async def test_sqlite_table_holds_hashes_never_plain_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    m = manager(SqliteStorage(str(path)))
    await m.storage.open()
    assert m.admin is not None
    keys = [(await m.admin.generate_key({"key_alias": f"k{i}"}, ADMIN))["key"] for i in range(3)]
    key = keys[0]
    regenerated = (await m.admin.regenerate_key(key, {}))["key"]
    await m.storage.close()
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT * FROM keys_entities").fetchall()
    dump = repr(rows)
    assert all(k not in dump for k in [*keys, regenerated])
    assert hash_token(regenerated) in dump and hash_token(keys[1]) in dump


async def test_postgres_table_holds_hashes_never_plain_keys(pg_schema: str) -> None:
    m = manager(PostgresStorage(pg_dsn(pg_schema)))
    await m.storage.open()
    assert m.admin is not None
    key = (await m.admin.generate_key({"key_alias": "pg"}, ADMIN))["key"]
    await m.storage.close()
    conn = await asyncpg.connect(pg_dsn(pg_schema))
    try:
        rows = await conn.fetch("SELECT * FROM keys_entities")
    finally:
        await conn.close()
    dump = repr([dict(r) for r in rows])
    assert key not in dump and hash_token(key) in dump
