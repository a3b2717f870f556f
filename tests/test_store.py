"""The Store contract, run against SQLite, memory and PostgreSQL; then what only SQLite promises.

PostgreSQL tests need the server of $RESPGATE_TEST_PG_DSN (default: the local one CI starts); when it
is unreachable they fail, never skip. Each test gets its own schema, dropped afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from respgate.errors import ConfigError, InvalidRequestError, ServiceUnavailableError
from respgate.store.base import ResponseRecord, Store
from respgate.store.factory import open_store
from respgate.store.memory import MemoryStore
from respgate.store.postgres import PostgresStore
from respgate.store.sqlite import SqliteStore

PG_DSN = os.environ.get("RESPGATE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def fresh_pg_schema(prefix: str) -> Iterator[str]:
    """A new, empty schema on the test PostgreSQL (for a server process to point its search_path at),
    dropped with everything in it afterwards. For synchronous tests; async ones use `pg_schema`."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(PG_DSN, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE SCHEMA "{name}"'))
    try:
        yield name
    finally:
        asyncio.run(run(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


def record(
    response_id: str,
    *,
    previous: str | None = None,
    status: str = "completed",
    items: int = 0,
    response: dict[str, Any] | None = None,
) -> ResponseRecord:
    return ResponseRecord(
        id=response_id,
        owner="key-hash",
        model="gpt-4o",
        deployment_id="dep-1",
        provider="openai",
        status=status,
        created_at=1_700_000_000.25,
        previous_response_id=previous,
        response=response or {"id": response_id, "object": "response", "status": status, "output": []},
        input_items=[
            {"id": f"{response_id}_item{i}", "type": "message", "role": "user", "content": f"turn {i}"}
            for i in range(items)
        ],
    )


@contextlib.asynccontextmanager
async def pg_schema() -> AsyncIterator[str]:
    """The name of a fresh schema on the test PostgreSQL (created by the store), dropped afterwards."""
    try:
        admin = await asyncpg.connect(PG_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL is not reachable ({type(exc).__name__}: {exc}). Start it (scripts/test.sh does) "
            "or point RESPGATE_TEST_PG_DSN at one.",
            pytrace=False,
        )
    schema = f"rg_test_{uuid.uuid4().hex[:12]}"
    try:
        yield schema
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


@pytest.fixture(params=["sqlite", "memory", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with contextlib.AsyncExitStack() as stack:
        s: Store
        if request.param == "sqlite":
            s = SqliteStore(str(tmp_path / "nested" / "dir" / "rg.db"))
        elif request.param == "memory":
            s = MemoryStore()
        else:
            s = PostgresStore(PG_DSN, schema=await stack.enter_async_context(pg_schema()))
        await s.open()
        yield s
        await s.close()


async def test_round_trip_keeps_json_exactly(store: Store) -> None:
    response = {
        "z_first": 1,
        "id": "resp_1",
        "nothing": None,
        "text": "héllo ✓ 日本 \U0001f600",
        "floats": [0.1, 1e-7, 123456789.123456789, -0.0, 1.7976931348623157e308],
        "nested": {"b": [True, False, {}], "a": []},
    }
    saved = record("resp_1", response=response, items=2)
    saved.background = True
    await store.save(saved)
    got = await store.get("resp_1")
    assert got is not None
    assert orjson.dumps(got.response) == orjson.dumps(response)
    assert list(got.response) == list(response)
    assert got == saved


async def test_get_unknown_is_none(store: Store) -> None:
    assert await store.get("resp_missing") is None


async def test_save_overwrites(store: Store) -> None:
    await store.save(record("resp_1", status="in_progress", items=3))
    await store.save(record("resp_1", status="completed", items=1))
    got = await store.get("resp_1")
    assert got is not None
    assert got.status == "completed"
    assert [item["id"] for item in got.input_items] == ["resp_1_item0"]


async def test_saved_record_is_a_snapshot(store: Store) -> None:
    saved = record("resp_1")
    await store.save(saved)
    saved.response["status"] = "mutated"
    got = await store.get("resp_1")
    assert got is not None
    assert got.response["status"] == "completed"


async def test_delete_removes_record_and_items(store: Store) -> None:
    await store.save(record("resp_1", items=2))
    assert await store.delete("resp_1") is True
    assert await store.get("resp_1") is None
    assert await store.input_items("resp_1") == ([], False)
    assert await store.delete("resp_1") is False


async def test_chain_is_oldest_first(store: Store) -> None:
    await store.save(record("resp_a", items=1))
    await store.save(record("resp_b", previous="resp_a", items=1))
    await store.save(record("resp_c", previous="resp_b", items=2))
    chain = await store.chain("resp_c")
    assert [r.id for r in chain] == ["resp_a", "resp_b", "resp_c"]
    assert [len(r.input_items) for r in chain] == [1, 1, 2]
    assert [r.id for r in await store.chain("resp_c", limit=2)] == ["resp_b", "resp_c"]
    assert [r.id for r in await store.chain("resp_a")] == ["resp_a"]
    assert await store.chain("resp_missing") == []


async def test_chain_stops_at_a_deleted_ancestor(store: Store) -> None:
    await store.save(record("resp_a"))
    await store.save(record("resp_b", previous="resp_a"))
    await store.save(record("resp_c", previous="resp_b"))
    await store.delete("resp_b")
    assert [r.id for r in await store.chain("resp_c")] == ["resp_c"]


def ids(page: tuple[list[dict[str, Any]], bool]) -> tuple[list[int], bool]:
    """Item numbers of a page of `resp_1`'s items, for readable assertions."""
    items, has_more = page
    return [int(item["id"].removeprefix("resp_1_item")) for item in items], has_more


async def test_input_items_order_and_limit(store: Store) -> None:
    await store.save(record("resp_1", items=5))
    assert ids(await store.input_items("resp_1")) == ([4, 3, 2, 1, 0], False)
    assert ids(await store.input_items("resp_1", order="asc")) == ([0, 1, 2, 3, 4], False)
    assert ids(await store.input_items("resp_1", limit=2)) == ([4, 3], True)
    assert ids(await store.input_items("resp_1", limit=5, order="asc")) == ([0, 1, 2, 3, 4], False)


async def test_input_items_cursors(store: Store) -> None:
    await store.save(record("resp_1", items=6))
    page = store.input_items
    assert ids(await page("resp_1", after="resp_1_item1", limit=2, order="asc")) == ([2, 3], True)
    assert ids(await page("resp_1", after="resp_1_item3", limit=2, order="asc")) == ([4, 5], False)
    assert ids(await page("resp_1", after="resp_1_item4", limit=2)) == ([3, 2], True)
    assert ids(await page("resp_1", after="resp_1_item1", limit=2)) == ([0], False)
    # `before` alone: the items just ahead of the cursor, in list order.
    assert ids(await page("resp_1", before="resp_1_item4", limit=2, order="asc")) == ([2, 3], True)
    assert ids(await page("resp_1", before="resp_1_item1", limit=2, order="asc")) == ([0], False)
    assert ids(await page("resp_1", before="resp_1_item1", limit=2)) == ([3, 2], True)
    assert ids(await page("resp_1", before="resp_1_item4", limit=2)) == ([5], False)
    assert ids(await page("resp_1", after="resp_1_item0", before="resp_1_item4", order="asc")) == (
        [1, 2, 3],
        False,
    )
    assert await page("resp_1", after="resp_1_nope") == ([], False)
    assert await page("resp_missing") == ([], False)


@pytest.mark.parametrize("limit", [0, 101])
async def test_input_items_limit_is_checked(store: Store, limit: int) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await store.input_items("resp_1", limit=limit)
    assert info.value.param == "limit"


async def test_concurrent_saves_are_all_visible(store: Store) -> None:
    await asyncio.gather(*(store.save(record(f"resp_{i}", items=1)) for i in range(500)))
    for i in range(500):
        got = await store.get(f"resp_{i}")
        assert got is not None and got.input_items[0]["id"] == f"resp_{i}_item0"


async def test_mark_unfinished_failed(store: Store) -> None:
    await store.save(record("resp_q", status="queued"))
    await store.save(record("resp_p", status="in_progress"))
    await store.save(record("resp_done", status="completed"))
    assert await store.mark_unfinished_failed() == 2
    for response_id in ("resp_q", "resp_p"):
        got = await store.get(response_id)
        assert got is not None
        assert got.status == "failed"
        assert got.response["status"] == "failed"
        assert got.response["error"] == {
            "code": "server_error",
            "message": "The gateway restarted while this response was running.",
        }
    done = await store.get("resp_done")
    assert done is not None and done.status == "completed" and "error" not in done.response
    assert await store.mark_unfinished_failed() == 0


async def test_mark_unfinished_failed_keeps_what_an_upstream_runs(store: Store) -> None:
    upstream_held = record("resp_up", status="in_progress")
    upstream_held.provider = "openai"
    await store.save(upstream_held)
    local = record("resp_local", status="queued")
    local.provider = "mock"
    await store.save(local)
    assert await store.mark_unfinished_failed(keep_providers=frozenset({"openai", "azure"})) == 1
    kept = await store.get("resp_up")
    assert kept is not None and kept.status == "in_progress"
    failed = await store.get("resp_local")
    assert failed is not None and failed.status == "failed"


# -- SQLite only ---------------------------------------------------------------------------------


async def test_sqlite_groups_concurrent_saves_into_few_commits(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "rg.db"))
    await store.open()
    before = store.commits
    await asyncio.gather(*(store.save(record(f"resp_{i}")) for i in range(500)))
    assert store.commits - before < 500
    await store.close()


async def test_sqlite_persists_across_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "rg.db")
    first = SqliteStore(path)
    await first.open()
    await first.save(record("resp_1", items=2))
    await first.close()
    second = SqliteStore(path)
    await second.open()
    got = await second.get("resp_1")
    assert got is not None and len(got.input_items) == 2
    await second.close()


_KILLED_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from respgate.store.base import ResponseRecord
    from respgate.store.sqlite import SqliteStore

    async def main() -> None:
        store = SqliteStore(sys.argv[1])
        await store.open()
        n = 0
        while True:
            batch = [f"resp_{n + i}" for i in range(20)]
            n += 20
            await asyncio.gather(*(store.save(ResponseRecord(
                id=rid, owner="", model="m", deployment_id="d", provider="mock", status="completed",
                created_at=0.0, previous_response_id=None, response={"id": rid},
                input_items=[{"id": "item", "type": "message"}])) for rid in batch))
            print("saved", *batch, flush=True)

    asyncio.run(main())
    """
)


async def test_sqlite_survives_kill_9(tmp_path: Path) -> None:
    path = str(tmp_path / "rg.db")
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, path], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    promised: list[str] = []
    while len(promised) < 400:
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line, "the writer process exited early"
        promised += line.split()[1:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # Lines printed just before the kill are the ones a lost write would hide in.
    for line in proc.stdout.read().splitlines():
        if line.startswith("saved"):
            promised += line.split()[1:]
    proc.stdout.close()
    store = SqliteStore(path)
    await store.open()
    missing = [rid for rid in promised if await store.get(rid) is None]
    assert missing == []
    await store.close()


async def test_sqlite_locked_database_is_unavailable_then_recovers(tmp_path: Path) -> None:
    path = str(tmp_path / "rg.db")
    store = SqliteStore(path, busy_timeout=0.05)
    await store.open()
    await store.save(record("resp_1"))
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    with pytest.raises(ServiceUnavailableError) as info:
        await store.save(record("resp_2"))
    assert path not in info.value.message
    locker.execute("ROLLBACK")
    locker.close()
    await store.save(record("resp_2"))  # the writer thread lived on
    assert await store.get("resp_2") is not None
    await store.close()


async def test_sqlite_unopenable_path_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    store = SqliteStore(str(blocker / "rg.db"), busy_timeout=0.05)
    await store.open()
    with pytest.raises(ServiceUnavailableError):
        await store.save(record("resp_1"))
    with pytest.raises(ServiceUnavailableError):
        await store.get("resp_1")
    await store.close()


async def test_sqlite_unopenable_path_is_unavailable_then_recovers(tmp_path: Path) -> None:
    # A file where the database's directory should be: unwritable whoever runs the test (root too).
    blocker = tmp_path / "db-dir"
    blocker.write_text("not a directory")
    store = SqliteStore(str(blocker / "rg.db"), busy_timeout=0.05)
    await store.open()
    with pytest.raises(ServiceUnavailableError):
        await store.save(record("resp_1"))
    blocker.unlink()
    blocker.mkdir()
    await store.save(record("resp_1"))
    assert await store.get("resp_1") is not None
    await store.close()


async def test_sqlite_save_after_close_is_unavailable(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "rg.db"))
    await store.open()
    await store.close()
    with pytest.raises(ServiceUnavailableError):
        await store.save(record("resp_1"))


# -- factory -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///relative/path.db", "relative/path.db"),
        ("sqlite:////abs/path.db", "/abs/path.db"),
        ("data/rg.sqlite", "data/rg.sqlite"),
        ("/var/lib/rg.db", "/var/lib/rg.db"),
    ],
)
def test_factory_sqlite_urls(url: str, path: str) -> None:
    store = open_store(url)
    assert isinstance(store, SqliteStore)
    assert store.path == path


def test_factory_default_uses_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESPGATE_DB", "/tmp/elsewhere.db")
    store = open_store(None)
    assert isinstance(store, SqliteStore) and store.path == "/tmp/elsewhere.db"
    monkeypatch.delenv("RESPGATE_DB")
    store = open_store(None)
    assert isinstance(store, SqliteStore) and store.path == "respgate.db"


def test_factory_memory() -> None:
    assert isinstance(open_store("memory://"), MemoryStore)


@pytest.mark.parametrize("url", ["postgresql://u:secret@h/db", "postgres://u:secret@h:5433/db"])
def test_factory_postgres_urls_keep_the_password_private(url: str) -> None:
    store = open_store(url)  # not opened: nothing connects
    assert isinstance(store, PostgresStore)
    assert "secret" not in repr(store)


@pytest.mark.parametrize("url", ["mysql://u:secret@h/db", "nonsense"])
def test_factory_rejects_other_urls(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_store(url)
    assert info.value.key == "general_settings.database_url"
    assert "secret" not in str(info.value)


async def test_sqlite_wal_stays_bounded_under_steady_writes(tmp_path: Path) -> None:
    """Saves never pausing (one per loop iteration, a read between them) must not starve the WAL's
    checkpoints: a passive checkpoint never catches up with a writer that keeps appending, so the WAL would
    grow for ever (a 10-minute soak left 2 GB beside a 380 MB database). Past `wal_limit` the writer
    thread truncates it."""
    path = tmp_path / "rg.db"
    store = SqliteStore(str(path), wal_limit=256 * 1024)
    await store.open()
    text = "x" * 2000
    wal = path.with_name("rg.db-wal")
    largest = 0
    try:
        for i in range(3000):
            await store.save(record(f"resp_{i}", response={"id": f"resp_{i}", "text": text}))
            assert await store.get(f"resp_{i // 2}") is not None
            largest = max(largest, wal.stat().st_size)
    finally:
        await store.close()
    # Checked every 256 commits, so the WAL passes its limit by up to that many commits (about 8 MB of these
    # records); without the truncation it reached 88 MB here, growing with every save.
    assert largest < 16 * 1024 * 1024, f"the WAL grew to {largest} bytes"
