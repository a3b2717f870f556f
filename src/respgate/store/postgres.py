"""The shared store: PostgreSQL through asyncpg, for several proxy instances on one database.

Writes (save, delete) go through a group commit: every write made while a commit is in flight
joins the next transaction, which stores the whole batch with one `unnest` statement per table.
`save()` returns only after its transaction committed, so a response a client was told about is
durable; under load a thousand concurrent saves cost a handful of round trips instead of a
thousand transactions. Writes of one process apply in call order; within a batch the last save
of an id wins (as if the saves had committed one by one).

Reads are single statements (a record's input items are aggregated in a subquery), so each read
sees one snapshot without an explicit transaction.

Instances and the restart sweep: each store picks a fresh `instance_id` (UUID) when created,
stamps it on every row it writes, and refreshes its row in `heartbeat` every
`heartbeat_interval` seconds (server clock, so hosts' clocks do not matter); `close()` removes
it. A `queued`/`in_progress` row is orphaned when its instance has no heartbeat newer than
`dead_after` seconds. `mark_unfinished_failed()` -- called once at start-up, when this instance
runs nothing yet -- fails this instance's own unfinished rows and every orphan; it also arms a
periodic sweep (each heartbeat) that fails orphans only, so an instance that dies later, or
whose heartbeat was still fresh at our start, is cleaned up within `dead_after` plus one
interval. With `instance_name` set (a stable name per deployment slot, e.g. a StatefulSet pod
name), a starting instance declares older instances of the same name dead at once, so a
restarted proxy fails its predecessor's rows without waiting for the timeout. Two live
processes must never share a name.

Failures: a lost connection (server restart, `pg_terminate_backend`, network) expires the pool's
connections and retries the statement once on a fresh one (writes are idempotent upserts);
otherwise the caller gets `ServiceUnavailableError` with a short message (never the DSN, which
may hold a password). The pool is created lazily when `open()` could not connect, so the store
recovers by itself when the server comes back.

The pool is bound to the event loop that first uses it: use the store from one loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import asyncpg
import orjson
from asyncpg.exceptions import InternalClientError, OperatorInterventionError, PostgresConnectionError

from respgate.errors import ServiceUnavailableError
from respgate.store import listing
from respgate.store.base import ResponseQuery, ResponseRecord, ResponseSummary
from respgate.store.migrations import Migration, apply_postgres
from respgate.store.postgres_conversations import CONVERSATION_SCHEMA, PostgresConversations
from respgate.store.sqlite import RESTARTED_ERROR, check_page_args, join_events, split_events

log = logging.getLogger(__name__)

T = TypeVar("T")
if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Conn = PoolConnectionProxy[asyncpg.Record]  # not subscriptable at run time

_UNAVAILABLE = "The response store is unavailable; try again later."
_CLOSED = "The response store is closed."
# The connection, not the statement, failed: worth one retry on a fresh connection.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, timed out (TimeoutError is an OSError)
    PostgresConnectionError,
    OperatorInterventionError,  # admin shutdown, server starting up
    asyncpg.InterfaceError,  # "connection is closed"
    # A FATAL (say pg_terminate_backend) that arrived while the connection sat idle in the pool
    # leaves asyncpg's protocol out of step at the next statement.
    InternalClientError,
)
_SCHEMA_LOCK = 0x7265_7370_6761_7465  # "respgate": serialises concurrent schema creation
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    model TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    previous_response_id TEXT,
    background BOOLEAN NOT NULL DEFAULT FALSE,
    -- TEXT, not JSONB: JSONB reorders keys and drops duplicate keys, and a client must get the
    -- Response back byte-for-byte in its original key order. PostgreSQL never looks inside.
    response TEXT NOT NULL,
    instance_id UUID NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS responses_unfinished ON responses (instance_id)
    WHERE status IN ('queued', 'in_progress');
CREATE TABLE IF NOT EXISTS input_items (
    response_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    item_id TEXT,
    item TEXT NOT NULL,  -- TEXT for the same reason as responses.response
    PRIMARY KEY (response_id, seq)
);
CREATE INDEX IF NOT EXISTS input_items_by_item_id ON input_items (response_id, item_id);
CREATE TABLE IF NOT EXISTS response_events (
    response_id TEXT PRIMARY KEY,
    events TEXT NOT NULL  -- the serialised events joined by newlines (see sqlite.join_events)
);
CREATE TABLE IF NOT EXISTS heartbeat (
    instance_id UUID PRIMARY KEY,
    instance_name TEXT,
    last_seen TIMESTAMPTZ NOT NULL
);
"""

# The store's schema, version by version (store/migrations.py). Never edit a released one: add the next.
MIGRATIONS = (
    Migration(1, "responses, input items, events, conversations, heartbeats", _SCHEMA + CONVERSATION_SCHEMA),
    Migration(2, "indexes for listing responses (admin UI)", listing.INDEXES),
)

_UPSERT = """
INSERT INTO responses (id, owner, model, deployment_id, provider, status, created_at,
                       previous_response_id, background, response, instance_id, updated_at)
SELECT r.*, $11::uuid, now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::float8[], $8::text[], $9::bool[], $10::text[]) AS r
ON CONFLICT (id) DO UPDATE SET
    owner = EXCLUDED.owner, model = EXCLUDED.model, deployment_id = EXCLUDED.deployment_id,
    provider = EXCLUDED.provider, status = EXCLUDED.status, created_at = EXCLUDED.created_at,
    previous_response_id = EXCLUDED.previous_response_id, background = EXCLUDED.background,
    response = EXCLUDED.response, instance_id = EXCLUDED.instance_id, updated_at = EXCLUDED.updated_at
"""
_DELETE_ITEMS = "DELETE FROM input_items WHERE response_id = ANY($1::text[])"
_INSERT_ITEMS = (
    "INSERT INTO input_items (response_id, seq, item_id, item)"
    " SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[])"
)
_DELETE = "DELETE FROM responses WHERE id = $1 RETURNING 1"
_UPSERT_EVENTS = """
INSERT INTO response_events (response_id, events) SELECT * FROM unnest($1::text[], $2::text[])
ON CONFLICT (response_id) DO UPDATE SET events = EXCLUDED.events
"""

# A record's items come back as one JSON array assembled from the stored texts, in seq order.
_COLUMNS = (
    "r.id, r.owner, r.model, r.deployment_id, r.provider, r.status, r.created_at,"
    " r.previous_response_id, r.background, r.response,"
    " (SELECT string_agg(i.item, ',' ORDER BY i.seq) FROM input_items i WHERE i.response_id = r.id)"
)
_GET = f"SELECT {_COLUMNS} FROM responses r WHERE r.id = $1"  # noqa: S608
# Walks previous_response_id from the record up; depth bounds both the page and any cycle.
_CHAIN = (
    "WITH RECURSIVE chain(id, depth) AS ("  # noqa: S608
    " SELECT id, 0 FROM responses WHERE id = $1"
    " UNION ALL"
    " SELECT r.previous_response_id, c.depth + 1 FROM responses r JOIN chain c ON r.id = c.id"
    " WHERE r.previous_response_id IS NOT NULL AND c.depth + 1 < $2"
    f") SELECT {_COLUMNS} FROM chain c JOIN responses r ON r.id = c.id ORDER BY c.depth DESC"
)

_HEARTBEAT = (
    "INSERT INTO heartbeat (instance_id, instance_name, last_seen) VALUES ($1, $2, now())"
    " ON CONFLICT (instance_id) DO UPDATE SET last_seen = now()"
)
# Unfinished rows whose owner is dead: no fresh heartbeat; this instance's own only when $4.
_ORPHANS = """
SELECT r.id, r.response FROM responses r
WHERE r.status IN ('queued', 'in_progress') AND r.provider <> ALL($1::text[])
  AND CASE WHEN r.instance_id = $2 THEN $4::bool
      ELSE NOT EXISTS (SELECT 1 FROM heartbeat h WHERE h.instance_id = r.instance_id
                       AND h.last_seen > now() - make_interval(secs => $3))
      END
FOR UPDATE OF r SKIP LOCKED
"""
_MARK_FAILED = (
    "UPDATE responses r SET status = 'failed', response = u.response, updated_at = now()"
    " FROM unnest($1::text[], $2::text[]) AS u(id, response) WHERE r.id = u.id"
)
# A stale heartbeat means the same as none; dropping it keeps the table small.
_FORGET_DEAD = "DELETE FROM heartbeat WHERE last_seen < now() - make_interval(secs => $1) AND instance_id <> $2"


class _RefusedData(ServiceUnavailableError):
    """The server refused a value (not the connection): the rest of a batch may still commit."""


@dataclass(slots=True)
class _Save:
    row: tuple[str, str, str, str, str, str, float, str | None, bool, str]
    items: list[tuple[int, str | None, str]]
    future: asyncio.Future[Any]
    events: str | None = None  # None: leave the stored events as they are


@dataclass(slots=True)
class _Delete:
    response_id: str
    future: asyncio.Future[Any]


_Write = _Save | _Delete


class PostgresStore(PostgresConversations):
    """`Store` on PostgreSQL. `commits` counts committed write batches."""

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        schema: str | None = None,
        instance_name: str | None = None,
        heartbeat_interval: float = 5.0,
        dead_after: float = 30.0,
        connect_timeout: float = 5.0,
        command_timeout: float = 30.0,
    ) -> None:
        if schema is not None and not _IDENTIFIER.fullmatch(schema):
            raise ValueError("schema must be a lower-case SQL identifier")
        if dead_after <= 2 * heartbeat_interval:
            raise ValueError("dead_after must exceed two heartbeat intervals")
        self._dsn = dsn  # private and never logged: it may hold a password
        self.min_size = min_size
        self.max_size = max_size
        self.schema = schema
        self.instance_id = uuid.uuid4()
        self.instance_name = instance_name
        self.heartbeat_interval = heartbeat_interval
        self.dead_after = dead_after
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout  # a stalled server becomes a 503, not a hung request
        self.commits = 0
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._pool_lock = asyncio.Lock()
        self._opened = False
        self._closed = False
        self._pending: list[_Write] = []
        self._flusher: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._sweep_keep: frozenset[str] | None = None  # set by the first explicit sweep

    def __repr__(self) -> str:
        return f"PostgresStore(instance_id={self.instance_id})"

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, create the schema, start the heartbeat. An unreachable server is logged, not
        fatal: calls fail with 503 until it answers, and the heartbeat keeps trying to connect."""
        if self._opened:
            return
        self._opened = True
        try:
            await self._run(lambda conn: _noop())
        except ServiceUnavailableError:
            log.warning("PostgreSQL response store is unreachable; requests needing it fail until it answers")
        self._heartbeat = asyncio.create_task(self._beat(), name="respgate-store-heartbeat")

    async def close(self) -> None:
        """Commit what is queued, stop the heartbeat, and give up this instance's heartbeat row
        (so other instances may fail whatever it left unfinished)."""
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None:
            await self._flusher
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            async with asyncio.timeout(self.connect_timeout):
                await pool.execute("DELETE FROM heartbeat WHERE instance_id = $1", self.instance_id)
                await pool.close()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("PostgreSQL response store did not close cleanly: %s", type(exc).__name__)
            pool.terminate()

    async def _get_pool(self) -> asyncpg.Pool[asyncpg.Record]:
        if self._pool is not None:
            return self._pool
        async with self._pool_lock:
            if self._pool is None:
                if self._closed:
                    raise ServiceUnavailableError(_CLOSED)
                settings = {"application_name": f"respgate {self.instance_id}"}
                if self.schema is not None:
                    settings["search_path"] = self.schema
                pool = await asyncpg.create_pool(
                    self._dsn, min_size=self.min_size, max_size=self.max_size,
                    timeout=self.connect_timeout, command_timeout=self.command_timeout,
                    server_settings=settings,
                )
                try:
                    async with pool.acquire() as conn:
                        await self._prepare(conn)
                except BaseException:
                    pool.terminate()
                    raise
                self._pool = pool
        return self._pool

    async def _prepare(self, conn: Conn) -> None:
        """Tables and this instance's heartbeat. The advisory lock makes concurrent first opens
        safe: CREATE ... IF NOT EXISTS alone races on the catalog."""
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
            if self.schema is not None:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await apply_postgres(conn, "store", MIGRATIONS)
            if self.instance_name is not None:  # our predecessors in this slot are dead
                await conn.execute(
                    "DELETE FROM heartbeat WHERE instance_name = $1 AND instance_id <> $2",
                    self.instance_name, self.instance_id,
                )
            await conn.execute(_HEARTBEAT, self.instance_id, self.instance_name)

    async def _run(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        """`work` on a pooled connection; a lost connection is retried once on a fresh one."""
        for attempt in (1, 2):
            pool = self._pool
            try:
                pool = await self._get_pool()
                async with pool.acquire() as conn:
                    return await work(conn)
            except _CONNECTION_ERRORS as exc:
                if pool is not None:
                    await pool.expire_connections()  # the server restarted: every idle one is dead
                if attempt == 2:
                    log.warning("PostgreSQL response store unreachable: %s", type(exc).__name__)
                    raise ServiceUnavailableError(_UNAVAILABLE) from None
            except asyncpg.DataError as exc:
                log.warning("PostgreSQL refused a value: %s: %s", type(exc).__name__, exc)
                raise _RefusedData(_UNAVAILABLE) from None
            except asyncpg.PostgresError as exc:
                log.warning("PostgreSQL response store error: %s: %s", type(exc).__name__, exc)
                raise ServiceUnavailableError(_UNAVAILABLE) from None
        raise AssertionError("unreachable")

    def _check_open(self) -> None:
        if self._closed:
            raise ServiceUnavailableError(_CLOSED)

    # -- writes ------------------------------------------------------------------------------

    async def save(self, record: ResponseRecord, events: Sequence[bytes] | None = None) -> None:
        # Serialised here, so the caller may mutate its dicts afterwards and bad JSON fails early.
        row = (
            record.id, record.owner, record.model, record.deployment_id, record.provider,
            record.status, record.created_at, record.previous_response_id, record.background,
            orjson.dumps(record.response).decode(),
        )
        items = [(seq, _item_id(item), orjson.dumps(item).decode()) for seq, item in enumerate(record.input_items)]
        text = join_events(events).decode() if events is not None else None
        await self._enqueue(lambda future: _Save(row, items, future, text))

    async def check_writable(self) -> None:
        self._check_open()
        await self._run(lambda conn: conn.execute(_HEARTBEAT, self.instance_id, self.instance_name))

    async def delete(self, response_id: str) -> bool:
        result: bool = await self._enqueue(lambda future: _Delete(response_id, future))
        return result

    async def _enqueue(self, make: Callable[[asyncio.Future[Any]], _Write]) -> Any:
        self._check_open()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append(make(future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        """Group commit: each batch is everything queued while the previous one committed."""
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await self._commit(batch)
        finally:
            self._flusher = None

    async def _commit(self, batch: list[_Write]) -> None:
        try:
            values = await self._run(lambda conn: self._apply(conn, batch))
        except _RefusedData:
            if len(batch) == 1:
                _settle(batch[0].future, error=ServiceUnavailableError(_UNAVAILABLE))
                return
            # One record the server refuses (say a NUL in a name) must not fail its neighbours.
            for write in batch:
                await self._commit([write])
            return
        except ServiceUnavailableError as exc:
            for write in batch:
                _settle(write.future, error=ServiceUnavailableError(exc.message))
            return
        except Exception as exc:  # a bug in one batch must not leave callers waiting
            log.exception("PostgreSQL response store write raised")
            for write in batch:
                _settle(write.future, error=exc)
            return
        self.commits += 1
        for write, value in zip(batch, values, strict=True):
            _settle(write.future, value=value)

    async def _apply(self, conn: Conn, batch: list[_Write]) -> list[Any]:
        values: list[Any] = []
        saves: dict[str, _Save] = {}  # a run of saves; the last one of an id wins
        async with conn.transaction():
            for write in batch:
                if isinstance(write, _Save):
                    earlier = saves.pop(write.row[0], None)
                    if write.events is None and earlier is not None and earlier.events is not None:
                        write.events = earlier.events  # the later save left the events to the earlier one
                    saves[write.row[0]] = write
                    values.append(None)
                    continue
                await self._store_saves(conn, list(saves.values()))
                saves.clear()
                await conn.execute(_DELETE_ITEMS, [write.response_id])
                await conn.execute("DELETE FROM response_events WHERE response_id = $1", write.response_id)
                values.append(await conn.fetchval(_DELETE, write.response_id) is not None)
            await self._store_saves(conn, list(saves.values()))
        return values

    async def _store_saves(self, conn: Conn, saves: list[_Save]) -> None:
        if not saves:
            return
        columns = [list(column) for column in zip(*(save.row for save in saves), strict=True)]
        await conn.execute(_UPSERT, *columns, self.instance_id)
        await conn.execute(_DELETE_ITEMS, columns[0])
        items = [(save.row[0], *item) for save in saves for item in save.items]
        if items:
            await conn.execute(_INSERT_ITEMS, *(list(column) for column in zip(*items, strict=True)))
        with_events = [save for save in saves if save.events is not None]
        if with_events:
            await conn.execute(_UPSERT_EVENTS, [save.row[0] for save in with_events],
                               [save.events for save in with_events])

    # -- the restart sweep -------------------------------------------------------------------

    async def mark_unfinished_failed(self, keep_providers: frozenset[str] = frozenset()) -> int:
        """Fail this instance's unfinished rows and every orphan (see the module docstring), and
        keep sweeping orphans on each heartbeat from now on."""
        self._check_open()
        self._sweep_keep = keep_providers
        return await self._run(lambda conn: self._sweep(conn, keep_providers, own=True))

    async def _sweep(self, conn: Conn, keep_providers: frozenset[str], *, own: bool) -> int:
        async with conn.transaction():
            rows = await conn.fetch(_ORPHANS, sorted(keep_providers), self.instance_id, self.dead_after, own)
            failed: list[str] = []
            for row in rows:
                response = orjson.loads(row[1])
                response["status"] = "failed"
                response["error"] = dict(RESTARTED_ERROR)
                failed.append(orjson.dumps(response).decode())
            if rows:
                await conn.execute(_MARK_FAILED, [row[0] for row in rows], failed)
            await conn.execute(_FORGET_DEAD, self.dead_after, self.instance_id)
        if rows:
            log.warning("marked %d response(s) of stopped gateway instances failed", len(rows))
        return len(rows)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                await self._run(lambda conn: conn.execute(_HEARTBEAT, self.instance_id, self.instance_name))
                if self._sweep_keep is not None:
                    await self._run(functools.partial(self._sweep, keep_providers=self._sweep_keep, own=False))
            except ServiceUnavailableError:
                pass  # already logged; the next beat reconnects
            except Exception:
                log.exception("PostgreSQL response store heartbeat raised")

    # -- reads -------------------------------------------------------------------------------

    async def get(self, response_id: str) -> ResponseRecord | None:
        self._check_open()
        row = await self._run(lambda conn: conn.fetchrow(_GET, response_id))
        return _record(row) if row is not None else None

    async def events(self, response_id: str) -> list[bytes] | None:
        self._check_open()
        text = await self._run(
            lambda conn: conn.fetchval("SELECT events FROM response_events WHERE response_id = $1", response_id))
        return split_events(text.encode()) if text is not None else None

    async def chain(self, response_id: str, limit: int = 1000) -> list[ResponseRecord]:
        self._check_open()
        rows = await self._run(lambda conn: conn.fetch(_CHAIN, response_id, max(limit, 1)))
        return [_record(row) for row in rows]

    async def list_responses(self, query: ResponseQuery) -> tuple[list[ResponseSummary], bool]:
        listing.check(query)
        self._check_open()
        sql, params = listing.list_sql(query, "postgres")
        rows = await self._run(lambda conn: conn.fetch(sql, *params))
        return listing.page(rows, query.limit)

    async def input_items(
        self,
        response_id: str,
        *,
        limit: int = 20,
        after: str | None = None,
        before: str | None = None,
        order: Literal["asc", "desc"] = "desc",
    ) -> tuple[list[dict[str, Any]], bool]:
        """OpenAI's list page: from just past `after` walking in `order`, or else the `limit` items
        just ahead of `before`; either way bounded by the other cursor. An unknown cursor's seq
        is NULL, so the page comes back empty, as from the other stores."""
        check_page_args(limit, order)
        self._check_open()
        asc = order == "asc"
        conds = ["response_id = $1"]
        params: list[str | int] = [response_id]
        for cursor, op in ((after, ">" if asc else "<"), (before, "<" if asc else ">")):
            if cursor is not None:
                params.append(cursor)
                conds.append(  # only our own operators and placeholders go into the text
                    f"seq {op} (SELECT min(seq) FROM input_items"  # noqa: S608
                    f" WHERE response_id = $1 AND item_id = ${len(params)})"
                )
        # Walking back from `before` alone: read toward the list's start, then show in list order.
        backward = before is not None and after is None
        direction = "ASC" if asc != backward else "DESC"
        params.append(limit + 1)
        sql = (
            f"SELECT item FROM input_items WHERE {' AND '.join(conds)}"  # noqa: S608
            f" ORDER BY seq {direction} LIMIT ${len(params)}"
        )
        rows = await self._run(lambda conn: conn.fetch(sql, *params))
        page = [orjson.loads(row[0]) for row in rows[:limit]]
        if backward:
            page.reverse()
        return page, len(rows) > limit


async def _noop() -> None:
    return None


def _record(row: asyncpg.Record) -> ResponseRecord:
    items = row[10]
    return ResponseRecord(
        id=row[0],
        owner=row[1],
        model=row[2],
        deployment_id=row[3],
        provider=row[4],
        status=row[5],
        created_at=row[6],
        previous_response_id=row[7],
        background=row[8],
        response=orjson.loads(row[9]),
        input_items=orjson.loads(f"[{items}]") if items is not None else [],
    )


def _item_id(item: dict[str, Any]) -> str | None:
    item_id = item.get("id")
    return item_id if isinstance(item_id, str) else None


def _settle(future: asyncio.Future[Any], *, value: Any = None, error: BaseException | None = None) -> None:
    if future.done():  # the caller was cancelled; the write stands anyway
        return
    if error is None:
        future.set_result(value)
    else:
        future.set_exception(error)
