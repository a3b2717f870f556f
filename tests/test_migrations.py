"""Versioned schema migrations: recorded, applied once, adopted from before versions, refused when newer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest

from respgate.store import postgres as postgres_store
from respgate.store import sqlite as sqlite_store
from respgate.store.migrations import Migration, SchemaTooNewError, apply_postgres, apply_sqlite
from respgate.store.postgres import PostgresStore
from respgate.store.sqlite import SqliteStore
from test_store import PG_DSN, pg_schema, record

STORE_VERSIONS = [("store", m.version) for m in sqlite_store.MIGRATIONS]
FUTURE = len(sqlite_store.MIGRATIONS) + 1


def _versions(path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT component, version FROM schema_migrations ORDER BY version").fetchall()


async def test_a_new_sqlite_database_records_the_store_schema(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "a.db"))
    await store.open()
    await store.save(record("resp_1"))
    await store.close()
    assert _versions(tmp_path / "a.db") == STORE_VERSIONS
    again = SqliteStore(str(tmp_path / "a.db"))  # opening again applies nothing twice
    await again.open()
    assert (await again.get("resp_1")) is not None
    await again.close()
    assert _versions(tmp_path / "a.db") == STORE_VERSIONS


async def test_a_database_from_before_versions_is_adopted_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # what an unversioned respgate left behind
        conn.executescript(sqlite_store._SCHEMA + sqlite_store.CONVERSATION_SCHEMA)
    store = SqliteStore(str(path))
    await store.open()
    await store.save(record("resp_old"))
    await store.close()
    assert _versions(path) == STORE_VERSIONS


def test_later_migrations_apply_in_order_once(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    first = [Migration(1, "t", "CREATE TABLE t (a INTEGER)")]
    assert apply_sqlite(conn, "demo", first) == [1]
    more = [*first, Migration(2, "t.b", "ALTER TABLE t ADD COLUMN b TEXT; CREATE INDEX t_b ON t (b)")]
    assert apply_sqlite(conn, "demo", more) == [2]
    assert apply_sqlite(conn, "demo", more) == []
    conn.execute("INSERT INTO t (a, b) VALUES (1, 'x')")
    broken = [*more, Migration(3, "bad", "ALTER TABLE t ADD COLUMN c TEXT; THIS IS NOT SQL")]
    with pytest.raises(sqlite3.OperationalError):
        apply_sqlite(conn, "demo", broken)
    # the failed migration left nothing behind: not its first statement, not its version
    assert [r[1] for r in conn.execute("PRAGMA table_info(t)")] == ["a", "b"]
    assert apply_sqlite(conn, "demo", more) == []
    conn.close()


async def test_a_database_from_a_newer_respgate_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    store = SqliteStore(str(path))
    await store.open()
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES ('store', ?, 'from the future', 0)", (FUTURE,))
    newer = SqliteStore(str(path))
    with pytest.raises(SchemaTooNewError, match=f"version {FUTURE}"):
        await newer.open()
    await newer.close()


async def test_postgres_records_and_applies_migrations() -> None:
    async with pg_schema() as schema:
        store = PostgresStore(PG_DSN, schema=schema)
        await store.open()
        await store.close()
        conn = await asyncpg.connect(PG_DSN)
        try:
            await conn.execute(f'SET search_path TO "{schema}"')
            rows = await conn.fetch("SELECT component, version FROM schema_migrations ORDER BY version")
            assert [(r["component"], r["version"]) for r in rows] == [
                ("store", m.version) for m in postgres_store.MIGRATIONS]
            async with conn.transaction():
                steps = [Migration(1, "t", "CREATE TABLE demo_t (a INT)"),
                         Migration(2, "t.b", "ALTER TABLE demo_t ADD COLUMN b TEXT")]
                assert await apply_postgres(conn, "demo", steps) == [1, 2]
            async with conn.transaction():
                assert await apply_postgres(conn, "demo", steps) == []
                with pytest.raises(SchemaTooNewError):
                    await apply_postgres(conn, "demo", steps[:1])
        finally:
            await conn.close()
