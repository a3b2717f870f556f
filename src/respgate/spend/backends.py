"""The three places spend-log rows live: memory (the SDK's default; the newest 10,000 rows), SQLite (its
own connection on one worker thread, so disk I/O never blocks the loop) and PostgreSQL (its own small
asyncpg pool). The SQL ones keep their rows in `<prefix>logs` beside the responses, in the same database."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from itertools import chain
from typing import TYPE_CHECKING, Any, TypeVar

from ..store.factory import DatabaseTarget
from ..store.sqlite import WAL_LIMIT, checkpoint
from .rows import COLUMNS, Row
from .store import SpendFilter, SpendLog, aggregate, logs_sql, report_sql, schema, table_name

if TYPE_CHECKING:
    import asyncpg

T = TypeVar("T")
# SQLite's rows carry NaN for NULL. Python's sqlite3 binds a None through its adapter registry (a key
# tuple, a dict lookup, a call: ~1,400 instructions, 8 or so per row), but a float straight to
# sqlite3_bind_double, which stores a NaN as NULL (SQLite has no NaN). The table holds real NULLs.
SQLITE_NULL = float("nan")
_GROUP = 32  # rows per INSERT statement (32 x 31 parameters, far below SQLite's limit)
_ID = COLUMNS.index("id")
_START = COLUMNS.index("start_time")


def open_spend_log(target: DatabaseTarget, prefix: str = "spend_", *, memory_rows: int = 10_000) -> SpendLog:
    if target.kind == "sqlite":
        # A file of its own beside the responses': SQLite has one writer per file, and a batch of spend
        # rows holding it would make the store's on-loop commits wait (measured: -20% throughput at c=32).
        return SqliteSpendLog(sibling_file(target.location, "spend"), prefix)
    if target.kind == "postgres":
        return PostgresSpendLog(target.location, prefix)
    return MemorySpendLog(memory_rows)


def sibling_file(path: str, part: str) -> str:
    """`respgate.db` -> `respgate.spend.db`: the platform's busy tables beside the responses' file."""
    stem, dot, suffix = path.rpartition(".")
    return f"{stem}.{part}.{suffix}" if dot and "/" not in suffix else f"{path}.{part}"


def _day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


class MemorySpendLog:
    """The newest `max_rows` rows, as the tuples they came in (an SDK process must not grow without bound;
    dicts are made only when someone asks)."""

    def __init__(self, max_rows: int = 10_000) -> None:
        self.null = None
        self._rows: deque[Row] = deque(maxlen=max_rows)
        self._ids: set[str] = set()

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def write(self, rows: Sequence[Row]) -> None:
        for row in rows:
            if row[_ID] in self._ids:
                continue
            if len(self._rows) == self._rows.maxlen:
                self._ids.discard(self._rows[0][_ID])
            self._rows.append(row)
            self._ids.add(row[_ID])

    def _matching(self, where: SpendFilter) -> list[dict[str, Any]]:
        return [r for r in (dict(zip(COLUMNS, row, strict=True)) for row in self._rows) if where.matches(r)]

    async def logs(self, where: SpendFilter, limit: int) -> list[dict[str, Any]]:
        found = self._matching(where)
        found.sort(key=lambda r: (r["start_time"], r["id"]), reverse=True)
        return found[:limit]

    async def report(self, where: SpendFilter, group_by: Sequence[str]) -> list[dict[str, Any]]:
        return aggregate(self._matching(where), group_by, _day)

    async def purge(self, before: float) -> int:
        kept = [row for row in self._rows if row[_START] >= before]
        gone = len(self._rows) - len(kept)
        self._rows = deque(kept, maxlen=self._rows.maxlen)
        self._ids = {row[_ID] for row in kept}
        return gone


def _qmark(_: int) -> str:
    return "?"


def _dollar(i: int) -> str:
    return f"${i}"


class SqliteSpendLog:
    """Writes on the event loop, everything else on one worker thread.

    A batch is inserted on the loop's own connection, in transactions of at most `chunk` rows with a
    yield between them (a millisecond or two each). Measured on a gateway pinned to one core, that costs
    a third of what the same inserts cost on a thread, where each row's statement hands the GIL back and
    forth with the loop. The loop never waits on a lock (busy timeout 0: a batch meeting another writer
    goes to the thread, which waits) and never fsyncs: its connection does not checkpoint; the thread
    does, every `checkpoint_rows` rows (truncating the WAL past `wal_limit`, since a passive checkpoint
    never catches up with a writer that keeps appending). Reads and purges run on the thread's connection."""

    _DAY = "strftime('%Y-%m-%d', start_time, 'unixepoch')"

    def __init__(self, path: str, prefix: str = "spend_", busy_timeout: float = 10.0, *, chunk: int = 256,
                 checkpoint_rows: int = 4096, wal_limit: int = WAL_LIMIT) -> None:
        self.null = SQLITE_NULL
        self.path = path
        self.table = table_name(prefix)
        self.busy_timeout = busy_timeout
        self.chunk = chunk
        self.checkpoint_rows = checkpoint_rows
        self.wal_limit = wal_limit
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="respgate-spend")
        self._conn: sqlite3.Connection | None = None  # the thread's
        self._inline: sqlite3.Connection | None = None  # the loop's, for inserts only
        self._since_checkpoint = 0
        values = f"({', '.join('?' * len(COLUMNS))})"
        insert = f"INSERT OR IGNORE INTO {self.table} ({', '.join(COLUMNS)}) VALUES "  # noqa: S608
        self._insert = insert + values
        # Rows go in groups of _GROUP per statement: a fifth less work per row than one statement each.
        self._insert_group = insert + ", ".join([values] * _GROUP)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def job() -> T:
            if self._conn is None:
                self._conn = self._connect()
            return work(self._conn)

        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    def _connect(self, *, inline: bool = False) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=0 if inline else self.busy_timeout, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            if inline:
                conn.execute("PRAGMA wal_autocheckpoint=0")  # a checkpoint fsyncs: the thread does them
            else:
                for statement in schema(self.table, real="REAL"):
                    conn.execute(statement)
        except sqlite3.Error:
            conn.close()
            raise
        conn.row_factory = sqlite3.Row
        return conn

    async def open(self) -> None:
        await self._run(lambda conn: None)

    async def close(self) -> None:
        def shut(conn: sqlite3.Connection) -> None:
            conn.close()
            self._conn = None

        if self._inline is not None:
            self._inline.close()
            self._inline = None
        if self._conn is not None:
            await self._run(shut)
        self._executor.shutdown(wait=True)

    def _insert_all(self, conn: sqlite3.Connection, rows: Sequence[Row]) -> None:
        grouped = len(rows) - len(rows) % _GROUP
        conn.execute("BEGIN IMMEDIATE")
        try:
            if grouped:
                conn.executemany(self._insert_group, [tuple(chain.from_iterable(rows[i:i + _GROUP]))
                                                      for i in range(0, grouped, _GROUP)])
            if grouped < len(rows):
                conn.executemany(self._insert, rows[grouped:])
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    async def write(self, rows: Sequence[Row]) -> None:
        for start in range(0, len(rows), self.chunk):
            part = rows[start:start + self.chunk]
            if start:
                await asyncio.sleep(0)  # let requests through between chunks
            try:
                if self._inline is None:
                    self._inline = self._connect(inline=True)
                self._insert_all(self._inline, part)
            except sqlite3.Error:  # locked by another writer, or failing: the thread waits, then reports
                if self._inline is not None:
                    self._inline.close()
                    self._inline = None
                await self._run(functools.partial(self._insert_all, rows=part))
            self._since_checkpoint += len(part)
        if self._since_checkpoint >= self.checkpoint_rows:
            self._since_checkpoint = 0
            await self._run(functools.partial(checkpoint, path=self.path, wal_limit=self.wal_limit))

    async def logs(self, where: SpendFilter, limit: int) -> list[dict[str, Any]]:
        sql, params = logs_sql(self.table, where, limit, _qmark)
        return await self._run(lambda conn: [dict(r) for r in conn.execute(sql, params)])

    async def report(self, where: SpendFilter, group_by: Sequence[str]) -> list[dict[str, Any]]:
        sql, params = report_sql(self.table, where, group_by, self._DAY, _qmark)
        return await self._run(lambda conn: [dict(r) for r in conn.execute(sql, params)])

    async def purge(self, before: float) -> int:
        sql = f"DELETE FROM {self.table} WHERE start_time < ?"  # noqa: S608
        return await self._run(lambda conn: conn.execute(sql, (before,)).rowcount)


class PostgresSpendLog:
    """Its own small asyncpg pool; a batch is one executemany (pipelined) in one transaction."""

    _DAY = "to_char(to_timestamp(start_time) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    _SCHEMA_LOCK = 0x7370_656E_645F_6C6F  # "spend_lo": serialises concurrent first opens

    def __init__(self, dsn: str, prefix: str = "spend_") -> None:
        self.null = None
        self.dsn = dsn
        self.table = table_name(prefix)
        self._pool: asyncpg.Pool[Any] | None = None
        self._insert = (f"INSERT INTO {self.table} ({', '.join(COLUMNS)}) "  # noqa: S608
                        f"VALUES ({', '.join(f'${i + 1}' for i in range(len(COLUMNS)))}) ON CONFLICT (id) DO NOTHING")

    async def _get_pool(self) -> asyncpg.Pool[Any]:
        if self._pool is None:
            import asyncpg

            pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=2, command_timeout=60,
                                             server_settings={"application_name": "respgate spend"})
            try:
                async with pool.acquire() as conn, conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", self._SCHEMA_LOCK)
                    for statement in schema(self.table, real="DOUBLE PRECISION"):
                        await conn.execute(statement)
            except BaseException:
                pool.terminate()
                raise
            self._pool = pool
        return self._pool

    async def open(self) -> None:
        await self._get_pool()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def write(self, rows: Sequence[Row]) -> None:
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():
            await conn.executemany(self._insert, rows)

    async def logs(self, where: SpendFilter, limit: int) -> list[dict[str, Any]]:
        sql, params = logs_sql(self.table, where, limit, _dollar)
        pool = await self._get_pool()
        return [dict(r) for r in await pool.fetch(sql, *params)]

    async def report(self, where: SpendFilter, group_by: Sequence[str]) -> list[dict[str, Any]]:
        sql, params = report_sql(self.table, where, group_by, self._DAY, _dollar)
        pool = await self._get_pool()
        out = [dict(r) for r in await pool.fetch(sql, *params)]
        for r in out:  # SUM(bigint) is numeric in PostgreSQL: back to plain numbers
            for k, v in r.items():
                if k != "spend" and not isinstance(v, str | int | float | type(None)):
                    r[k] = int(v)
            r["spend"] = float(r["spend"])
        return out

    async def purge(self, before: float) -> int:
        pool = await self._get_pool()
        status = await pool.execute(f"DELETE FROM {self.table} WHERE start_time < $1", before)  # noqa: S608
        return int(status.rsplit(" ", 1)[-1])
