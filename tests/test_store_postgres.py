"""What only the PostgreSQL store promises: shared state between instances, the restart sweep that
spares live instances, group commit, and riding out a server that goes away.

Like the contract tests in test_store.py, these need the PostgreSQL of $RESPGATE_TEST_PG_DSN and
fail (never skip) when it is unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from respgate.errors import ServiceUnavailableError
from respgate.store.postgres import PostgresStore
from test_store import PG_DSN, pg_schema, record


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async with pg_schema() as name:
        yield name


@pytest.fixture
async def stores(schema: str) -> AsyncIterator[Callable[..., PostgresStore]]:
    """`make(**options)` -> a PostgresStore on the test schema; all closed after the test."""
    made: list[PostgresStore] = []

    def make(dsn: str = PG_DSN, **options: object) -> PostgresStore:
        store = PostgresStore(dsn, schema=schema, **options)  # type: ignore[arg-type]
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


async def opened(store: PostgresStore) -> PostgresStore:
    await store.open()
    return store


async def test_two_instances_share_state(stores: Callable[..., PostgresStore]) -> None:
    a, b = await opened(stores()), await opened(stores())
    assert a.instance_id != b.instance_id
    await a.save(record("resp_a", items=2))
    await b.save(record("resp_b", previous="resp_a", items=1))
    assert [r.id for r in await a.chain("resp_b")] == ["resp_a", "resp_b"]
    got = await b.get("resp_a")
    assert got is not None and [item["id"] for item in got.input_items] == ["resp_a_item0", "resp_a_item1"]
    assert await b.delete("resp_a") is True
    assert await a.get("resp_a") is None


async def test_concurrent_first_opens_create_the_schema_once(stores: Callable[..., PostgresStore]) -> None:
    many = [stores() for _ in range(6)]
    await asyncio.gather(*(store.open() for store in many))
    await many[0].save(record("resp_1"))
    assert all([await store.get("resp_1") is not None for store in many])


async def test_concurrent_saves_share_transactions(stores: Callable[..., PostgresStore]) -> None:
    store = await opened(stores())
    before = store.commits
    await asyncio.gather(*(store.save(record(f"resp_{i}", items=2)) for i in range(500)))
    assert store.commits - before < 500
    got = await store.get("resp_499")
    assert got is not None and len(got.input_items) == 2


async def test_writes_in_one_batch_apply_in_call_order(stores: Callable[..., PostgresStore]) -> None:
    store = await opened(stores())
    await store.save(record("resp_gone"))
    results = await asyncio.gather(
        store.save(record("resp_1", status="in_progress", items=3)),
        store.save(record("resp_1", status="completed", items=1)),
        store.delete("resp_gone"),
        store.save(record("resp_gone", items=1)),
    )
    assert results[2] is True
    got = await store.get("resp_1")
    assert got is not None and got.status == "completed" and len(got.input_items) == 1
    assert await store.get("resp_gone") is not None  # saved again after the delete


async def test_a_refused_record_does_not_fail_its_batch(stores: Callable[..., PostgresStore]) -> None:
    store = await opened(stores())
    bad = record("resp_bad")
    bad.owner = "nul\x00byte"  # PostgreSQL text cannot hold NUL
    results = await asyncio.gather(store.save(bad), store.save(record("resp_good")), return_exceptions=True)
    assert isinstance(results[0], ServiceUnavailableError)
    assert results[1] is None
    assert await store.get("resp_good") is not None
    assert await store.get("resp_bad") is None


# -- the restart sweep ---------------------------------------------------------------------------


async def test_sweep_spares_a_live_instance_and_fails_a_closed_one(stores: Callable[..., PostgresStore]) -> None:
    a = await opened(stores())
    await a.save(record("resp_running", status="in_progress"))
    b = await opened(stores())
    assert await b.mark_unfinished_failed() == 0
    running = await b.get("resp_running")
    assert running is not None and running.status == "in_progress"
    await a.close()  # a gives up its heartbeat: what it left running is orphaned
    assert await b.mark_unfinished_failed() == 1
    failed = await b.get("resp_running")
    assert failed is not None and failed.status == "failed" and failed.response["status"] == "failed"


async def test_sweep_fails_rows_of_an_instance_with_a_stale_heartbeat(
    stores: Callable[..., PostgresStore], schema: str
) -> None:
    a = await opened(stores())
    await a.save(record("resp_running", status="queued"))
    b = await opened(stores(dead_after=30.0))
    admin = await asyncpg.connect(PG_DSN)
    try:
        await admin.execute(
            f'UPDATE "{schema}".heartbeat SET last_seen = now() - interval \'31 seconds\' WHERE instance_id = $1',
            a.instance_id,
        )
    finally:
        await admin.close()
    assert await b.mark_unfinished_failed() == 1


async def test_a_restarted_instance_fails_its_predecessors_rows_at_once(
    stores: Callable[..., PostgresStore],
) -> None:
    crashed = await opened(stores(instance_name="proxy-0"))  # its heartbeat is still fresh
    await crashed.save(record("resp_crashed", status="in_progress"))
    neighbour = await opened(stores(instance_name="proxy-1"))
    await neighbour.save(record("resp_neighbour", status="in_progress"))
    restarted = await opened(stores(instance_name="proxy-0"))
    assert await restarted.mark_unfinished_failed() == 1
    crashed_row, neighbour_row = await restarted.get("resp_crashed"), await restarted.get("resp_neighbour")
    assert crashed_row is not None and crashed_row.status == "failed"
    assert neighbour_row is not None and neighbour_row.status == "in_progress"


async def test_the_heartbeat_keeps_sweeping_after_start(stores: Callable[..., PostgresStore], schema: str) -> None:
    a = await opened(stores(heartbeat_interval=3600.0, dead_after=10_000.0))  # never beats again
    sweeper = await opened(stores(heartbeat_interval=0.05, dead_after=30.0))
    assert await sweeper.mark_unfinished_failed() == 0  # arms the periodic sweep
    await a.save(record("resp_running", status="in_progress"))
    admin = await asyncpg.connect(PG_DSN)
    try:
        await admin.execute(f'DELETE FROM "{schema}".heartbeat WHERE instance_id = $1', a.instance_id)  # a died
    finally:
        await admin.close()
    for _ in range(400):  # polls until the sweep ran; the bound is only there to end a broken test
        got = await sweeper.get("resp_running")
        assert got is not None
        if got.status == "failed":
            break
        await asyncio.sleep(0.025)
    assert got.status == "failed"


# -- the server going away -----------------------------------------------------------------------


class Forwarder:
    """A TCP relay on 127.0.0.1 to the test PostgreSQL that can be cut and restored, like a server
    restart or a network fault seen from the store."""

    def __init__(self) -> None:
        target = urlsplit(PG_DSN)
        self.target = (target.hostname or "127.0.0.1", target.port or 5432)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        userinfo = target.netloc.rpartition("@")[0]
        self.dsn = urlunsplit(target._replace(netloc=f"{userinfo}:secret@127.0.0.1:{self.port}"))
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        self._writers |= {client_writer, server_writer}
        await asyncio.gather(_pipe(client_reader, server_writer), _pipe(server_reader, client_writer))
        self._writers -= {client_writer, server_writer}


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def test_unreachable_server_is_unavailable_then_recovers(stores: Callable[..., PostgresStore]) -> None:
    relay = Forwarder()
    store = await opened(stores(relay.dsn, connect_timeout=2.0))  # nothing listens yet: open only logs
    with pytest.raises(ServiceUnavailableError) as info:
        await store.save(record("resp_1"))
    assert "secret" not in info.value.message and str(relay.port) not in info.value.message
    await relay.start()
    try:
        await store.save(record("resp_1"))
        await relay.stop()  # the server goes away under an open pool
        with pytest.raises(ServiceUnavailableError):
            await store.get("resp_1")
        with pytest.raises(ServiceUnavailableError):
            await store.save(record("resp_2"))
        await relay.start()
        assert await store.get("resp_1") is not None
        await store.save(record("resp_2"))
    finally:
        if relay._server is not None:
            await store.close()
            await relay.stop()


async def test_terminated_connections_are_replaced_transparently(stores: Callable[..., PostgresStore]) -> None:
    store = await opened(stores(min_size=2, max_size=2))
    await store.save(record("resp_1"))
    admin = await asyncpg.connect(PG_DSN)
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            f"respgate {store.instance_id}",
        )
    finally:
        await admin.close()
    assert killed >= 1
    assert await store.get("resp_1") is not None
    await store.save(record("resp_2"))
    assert await store.get("resp_2") is not None


async def test_closed_store_is_unavailable(stores: Callable[..., PostgresStore]) -> None:
    store = await opened(stores())
    await store.close()
    with pytest.raises(ServiceUnavailableError):
        await store.save(record("resp_1"))
    with pytest.raises(ServiceUnavailableError):
        await store.get("resp_1")
