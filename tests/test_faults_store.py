"""The database goes away -- locked by another process, out of space, down, its connections killed -- and
comes back: a request that needs it gets a 503 in OpenAI's shape saying so (a stream: before its first
event, once a save has failed), /health/liveliness still answers, and once the cause is gone the proxy
serves again without a restart. Every response a client was told about is still there, whole.

SQLite: another process holds the write lock; a full disk is the server's file-size limit (RLIMIT_FSIZE,
set on the running `respgate serve` with prlimit, so writes fail as on a full disk). PostgreSQL: the
store reaches the server through a `TcpGate` that goes down (connections reset, new ones refused) and
comes back; and `pg_terminate_backend` on the store's connections.
"""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from conftest import MASTER_KEY
from fakes.faulty_upstream import TcpGate
from grammar import check_stream
from procs import ProxyProcesses
from respgate.store.sqlite import SqliteStore
from sse import parse_sse
from test_durability import assert_rows_whole
from test_faults_upstream import WatchedProxy
from test_store import PG_DSN, fresh_pg_schema

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
TIMEOUT = 20.0
MODELS = """
model_list:
  - model_name: mock/echo
    litellm_params: {model: mock/echo}
"""
PG_HOST, PG_PORT = "127.0.0.1", 5432


@dataclass
class Ledger:
    """What clients were told: response id -> the body they received."""

    told: dict[str, bytes] = field(default_factory=dict)
    n: int = 0

    def create(self, url: str) -> httpx.Response:
        self.n += 1
        r = httpx.post(url + "/v1/responses", headers=AUTH, timeout=TIMEOUT,
                       json={"model": "mock/echo", "input": f"json {self.n}"})
        if r.status_code == 200:
            self.told[r.json()["id"]] = r.content
        return r

    def stream(self, url: str) -> httpx.Response:
        self.n += 1
        r = httpx.post(url + "/v1/responses", headers=AUTH, timeout=TIMEOUT,
                       json={"model": "mock/echo", "input": f"stream {self.n}", "stream": True})
        if r.status_code == 200:
            final = parse_sse(r.text)[-1]
            if final["type"] == "response.completed":
                self.told[final["response"]["id"]] = orjson.dumps(final["response"])
        return r

    def served(self, url: str) -> None:
        """Both kinds of request succeed."""
        assert self.create(url).status_code == 200
        told = len(self.told)
        assert self.stream(url).status_code == 200 and len(self.told) == told + 1

    def assert_all_there(self, url: str) -> None:
        for rid, body in self.told.items():
            got = httpx.get(f"{url}/v1/responses/{rid}", headers=AUTH, timeout=TIMEOUT)
            assert got.status_code == 200, (rid, got.text)
            assert orjson.loads(got.content) == orjson.loads(body), rid


def assert_unavailable(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/json"), "a stream must fail before its first event"
    error = r.json()["error"]
    assert error["code"] == "service_unavailable" and error["type"] == "server_error", error
    assert "store is unavailable" in error["message"], error
    assert "postgres" not in r.text.lower() and MASTER_KEY not in r.text  # never the DSN


def assert_down_but_alive(url: str, ledger: Ledger, *, reads_work: bool) -> None:
    """The first request to meet the failing store learns it from its save: a stream from its last event
    (whole, `response.failed`, never cut), a JSON request from its 503. Every later one, stream or not,
    checks the store before starting and gets its 503 before any upstream work."""
    first = ledger.stream(url)
    assert first.status_code == 200, first.text
    events = parse_sse(first.text)
    final = check_stream(events)
    assert events[-1]["type"] == "response.failed", events[-1]
    assert final["error"]["code"] == "service_unavailable" and "store is unavailable" in final["error"]["message"]
    assert_unavailable(ledger.stream(url))
    assert_unavailable(ledger.create(url))
    some = next(iter(ledger.told))
    chained = httpx.post(url + "/v1/responses", headers=AUTH, timeout=TIMEOUT,
                         json={"model": "mock/echo", "input": "more", "previous_response_id": some, "stream": True})
    assert_unavailable(chained)
    live = httpx.get(url + "/health/liveliness", timeout=TIMEOUT)
    assert live.status_code == 200, live.text
    got = httpx.get(f"{url}/v1/responses/{some}", headers=AUTH, timeout=TIMEOUT)
    if reads_work:  # SQLite in WAL mode: readers never wait on the writer
        assert got.status_code == 200, got.text
    else:
        assert_unavailable(got)


# ---------------------------------------------------------------- SQLite

_HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")  # the write lock: in WAL mode readers go on, writers wait
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


@contextmanager
def write_lock_held_by_another_process(db: Path) -> Iterator[None]:
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        assert holder.wait(TIMEOUT) == 0
        assert holder.stdout is not None
        holder.stdout.close()


def test_sqlite_locked_by_another_process(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    # A short busy timeout so the test does not wait the default 5 s per refused write.
    proxy = WatchedProxy(MODELS, tmp_path, database_url=f"sqlite:///{db}", store=SqliteStore(str(db), busy_timeout=0.2))
    try:
        ledger = Ledger()
        ledger.served(proxy.url)
        with write_lock_held_by_another_process(db):
            assert_down_but_alive(proxy.url, ledger, reads_work=True)
        ledger.served(proxy.url)  # the very next requests: no restart, no wait
        ledger.assert_all_there(proxy.url)
    finally:
        proxy.stop()
    assert assert_rows_whole(db) == len(ledger.told)


def test_sqlite_on_a_full_disk(tmp_path: Path) -> None:
    """Writes fail at the file system (the file-size limit makes every write past byte 1 fail, as
    ENOSPC would); the limit is lifted on the running server, which then writes again."""
    db = tmp_path / "store.db"
    config = tmp_path / "config.yaml"
    config.write_text(MODELS + f"general_settings:\n  master_key: {MASTER_KEY}\n  database_url: sqlite:///{db}\n")
    ledger = Ledger()
    with ProxyProcesses() as procs:
        server = procs.spawn(config)
        ledger.served(server.url)
        limits = resource.prlimit(server.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(server.pid, resource.RLIMIT_FSIZE, (1, limits[1]))
        try:
            assert_down_but_alive(server.url, ledger, reads_work=True)
        finally:
            resource.prlimit(server.pid, resource.RLIMIT_FSIZE, limits)
        ledger.served(server.url)
        ledger.assert_all_there(server.url)
        server.kill9()
    assert assert_rows_whole(db) == len(ledger.told)  # nothing half-written by the failed writes


# Root writes to any file whatever its mode; without these capabilities it obeys the mode like anyone.
AS_UNPRIVILEGED = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner")


def test_sqlite_file_read_only(tmp_path: Path) -> None:
    """The database file made read-only between two runs: the server still starts, reads what is there
    and refuses writes with a 503 (a stream too, before its first event). SQLite keeps a file it opened
    read-only so for the whole process (every connection to it shares that state), so once the file is
    writable again a restart brings the writes back; nothing a client was told about is lost."""
    db = tmp_path / "store.db"
    config = tmp_path / "config.yaml"
    config.write_text(MODELS + f"general_settings:\n  master_key: {MASTER_KEY}\n  database_url: sqlite:///{db}\n")
    ledger = Ledger()
    with ProxyProcesses() as procs:
        ledger.served(procs.spawn(config).url)
    files = [f for f in tmp_path.iterdir() if f.name.startswith("store.")]
    assert db in files
    try:
        for f in files:
            f.chmod(0o444)
        with ProxyProcesses() as procs:
            server = procs.spawn(config, wrapper=AS_UNPRIVILEGED)
            assert_down_but_alive(server.url, ledger, reads_work=True)
            ledger.assert_all_there(server.url)
            assert "attempt to write a readonly database" in server.stderr_text()
    finally:
        for f in files:
            f.chmod(0o644)
    with ProxyProcesses() as procs:
        server = procs.spawn(config, wrapper=AS_UNPRIVILEGED)
        ledger.served(server.url)
        ledger.assert_all_there(server.url)
    assert assert_rows_whole(db) == len(ledger.told)


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture
def schema() -> Iterator[str]:
    with fresh_pg_schema("rg_faults") as name:
        yield name


@pytest.fixture
def gate() -> Iterator[TcpGate]:
    with TcpGate((PG_HOST, PG_PORT)) as g:
        yield g


def pg_url(port: int, schema: str) -> str:
    dsn = PG_DSN.replace(f"{PG_HOST}:{PG_PORT}", f"{PG_HOST}:{port}")
    return f"{dsn}?search_path={schema}"


def rows_whole(schema: str) -> int:
    async def read() -> list[Any]:
        conn = await asyncpg.connect(PG_DSN, timeout=5, server_settings={"search_path": schema})
        try:
            return list(await conn.fetch("SELECT id, status, response FROM responses"))
        finally:
            await conn.close()

    rows = asyncio.run(read())
    for rid, status, text in rows:
        response = orjson.loads(text)
        assert response["id"] == rid and response["status"] == status == "completed", (rid, status)
    return len(rows)


def test_postgres_down_then_back(tmp_path: Path, gate: TcpGate, schema: str) -> None:
    proxy = WatchedProxy(MODELS, tmp_path, database_url=pg_url(gate.port, schema))
    try:
        ledger = Ledger()
        ledger.served(proxy.url)
        gate.down()
        assert_down_but_alive(proxy.url, ledger, reads_work=False)
        gate.up()
        ledger.served(proxy.url)
        ledger.assert_all_there(proxy.url)
    finally:
        gate.up()  # the proxy says goodbye to the database as it stops
        proxy.stop()
    assert rows_whole(schema) == len(ledger.told)


def test_postgres_connections_terminated_by_the_server(tmp_path: Path, schema: str) -> None:
    """An administrator (or a failover) kills the store's connections: the next request is served on a
    fresh one, without a single 503."""
    proxy = WatchedProxy(MODELS, tmp_path, database_url=f"{PG_DSN}?search_path={schema}")
    try:
        ledger = Ledger()
        ledger.served(proxy.url)
        store = proxy.proxy.gateway.store

        async def terminate() -> int:
            conn = await asyncpg.connect(PG_DSN, timeout=5)
            try:
                return int(await conn.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
                    f"respgate {store.instance_id}"))  # type: ignore[attr-defined]
            finally:
                await conn.close()

        assert asyncio.run(terminate()) >= 1
        ledger.served(proxy.url)
        ledger.assert_all_there(proxy.url)
    finally:
        proxy.stop()
    assert rows_whole(schema) == len(ledger.told)
