"""`keys_entities` in SQLite (its own connection, used from worker threads) or PostgreSQL (its own
small asyncpg pool). See storage.py for the contract.

A database failure reaches admin callers as 503 (never with the DSN, which may hold a password);
the manager keeps unflushed spend in memory and tries again. SQL text is built only from constants
(column names, placeholders); every value is a bound parameter (hence the S608 exemptions).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from ..errors import ServiceUnavailableError
from .records import Entity, Kind
from .storage import SpendDelta, columns, from_row

log = logging.getLogger("respgate.keys")
T = TypeVar("T")

_UNAVAILABLE = "The key store is unavailable; try again later."
_CHUNK = 500
_SCHEMA_LOCK = 0x6B65_7973_7467_6174  # serialises concurrent CREATE TABLE on PostgreSQL
_TABLE = """
CREATE TABLE IF NOT EXISTS keys_entities (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    alias TEXT,
    team_id TEXT,
    user_id TEXT,
    data TEXT NOT NULL,
    spend DOUBLE PRECISION NOT NULL DEFAULT 0,
    budget_reset_at DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (kind, id)
)"""
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS keys_entities_team ON keys_entities (kind, team_id)",
    "CREATE INDEX IF NOT EXISTS keys_entities_user ON keys_entities (kind, user_id)",
    "CREATE INDEX IF NOT EXISTS keys_entities_alias ON keys_entities (kind, alias)",
)
_COLUMNS = "kind, id, alias, team_id, user_id, data, spend, budget_reset_at, created_at"
_READ = "SELECT kind, id, data, spend, budget_reset_at, created_at FROM keys_entities"
_ADD_SPEND = ("UPDATE keys_entities SET spend = spend + ? WHERE kind = ? AND id = ? "
              "AND COALESCE(budget_reset_at, 0) = ?")
_RESET = ("UPDATE keys_entities SET spend = 0, budget_reset_at = ? WHERE kind = ? AND id = ? "
          "AND COALESCE(budget_reset_at, 0) = ?")
_UPDATE = "UPDATE keys_entities SET alias = ?, team_id = ?, user_id = ?, data = ? WHERE kind = ? AND id = ?"
_UPDATE_SPEND = ("UPDATE keys_entities SET alias = ?, team_id = ?, user_id = ?, data = ?, spend = ?, "
                 "budget_reset_at = ? WHERE kind = ? AND id = ?")
_INSERT = f"INSERT INTO keys_entities ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"  # noqa: S608


def _filters(kind: Kind, team_id: str | None, user_id: str | None, alias: str | None) -> tuple[str, list[Any]]:
    where: list[str] = ["kind = ?"]
    args: list[Any] = [kind]
    for name, value in (("team_id", team_id), ("user_id", user_id), ("alias", alias)):
        if value is not None:
            where.append(f"{name} = ?")
            args.append(value)
    return " WHERE " + " AND ".join(where), args


def _update_args(e: Entity, spend: bool) -> tuple[str, list[Any]]:
    _, _, alias, team, user, data, total, reset, _ = columns(e)
    if spend:
        return _UPDATE_SPEND, [alias, team, user, data, total, reset, e.kind, e.id]
    return _UPDATE, [alias, team, user, data, e.kind, e.id]


class SqliteStorage:
    """One connection (WAL, busy timeout) used from worker threads, one statement at a time."""

    def __init__(self, path: str, *, busy_timeout: float = 5.0) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def open(self) -> None:
        await asyncio.to_thread(self._connect)

    def _connect(self) -> None:
        conn = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        # The response store checkpoints this file; a commit here would otherwise checkpoint (and fsync)
        # the whole WAL the store wrote, each time.
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute(_TABLE)
        for index in _INDEXES:
            conn.execute(index)
        self._conn = conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with self._lock:
                conn.close()

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            if self._conn is None:
                raise ServiceUnavailableError(_UNAVAILABLE)
            with self._lock:
                return work(self._conn)

        try:
            return await asyncio.to_thread(locked)
        except sqlite3.Error as e:
            log.warning("key store (SQLite) failed: %s", type(e).__name__)
            raise ServiceUnavailableError(_UNAVAILABLE) from None

    async def get_many(self, kind: Kind, ids: Sequence[str]) -> list[Entity]:
        def read(c: sqlite3.Connection) -> list[Any]:
            rows = []
            for i in range(0, len(ids), _CHUNK):  # SQLite caps the number of bound parameters
                chunk = ids[i:i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows += c.execute(f"{_READ} WHERE kind = ? AND id IN ({marks})", [kind, *chunk]).fetchall()
            return rows

        return [from_row(r) for r in await self._run(read)] if ids else []

    async def find(self, kind: Kind, *, team_id: str | None = None, user_id: str | None = None,
                   alias: str | None = None, offset: int = 0, limit: int | None = None) -> tuple[list[Entity], int]:
        where, args = _filters(kind, team_id, user_id, alias)

        def read(c: sqlite3.Connection) -> tuple[list[Any], int]:
            total = c.execute("SELECT COUNT(*) FROM keys_entities" + where, args).fetchone()[0]  # noqa: S608
            rows = c.execute(f"{_READ}{where} ORDER BY created_at, id LIMIT ? OFFSET ?",
                             [*args, -1 if limit is None else limit, offset]).fetchall()
            return rows, int(total)

        rows, total = await self._run(read)
        return [from_row(r) for r in rows], total

    async def insert(self, entity: Entity) -> bool:
        row = columns(entity)
        return await self._run(lambda c: c.execute(_INSERT, row).rowcount == 1)

    async def update(self, entity: Entity, *, spend: bool = False) -> bool:
        sql, args = _update_args(entity, spend)
        return await self._run(lambda c: c.execute(sql, args).rowcount == 1)

    async def replace(self, old_id: str, entity: Entity) -> bool:
        def move(c: sqlite3.Connection) -> bool:
            c.execute("BEGIN IMMEDIATE")
            try:
                old = c.execute("SELECT spend, budget_reset_at FROM keys_entities WHERE kind = ? AND id = ?",
                                (entity.kind, old_id)).fetchone()
                if old is not None:
                    c.execute("DELETE FROM keys_entities WHERE kind = ? AND id = ?", (entity.kind, old_id))
                    row = list(columns(entity))
                    row[6], row[7] = old
                    c.execute(_INSERT, row)
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            return old is not None

        return await self._run(move)

    async def delete(self, kind: Kind, ids: Sequence[str]) -> list[str]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = await self._run(lambda c: c.execute(
            f"DELETE FROM keys_entities WHERE kind = ? AND id IN ({marks}) RETURNING id", [kind, *ids]).fetchall())  # noqa: S608
        return [r[0] for r in rows]

    async def delete_where(self, kind: Kind, *, team_id: str | None = None, user_id: str | None = None) -> list[str]:
        column, value = ("team_id", team_id) if team_id is not None else ("user_id", user_id)
        rows = await self._run(lambda c: c.execute(
            f"DELETE FROM keys_entities WHERE kind = ? AND {column} = ? RETURNING id", (kind, value)).fetchall())  # noqa: S608
        return [r[0] for r in rows]

    async def add_spend(self, deltas: Sequence[SpendDelta]) -> None:
        args = [(amount, kind, id, marker) for kind, id, marker, amount in deltas]

        def write(c: sqlite3.Connection) -> None:
            c.execute("BEGIN IMMEDIATE")
            try:
                c.executemany(_ADD_SPEND, args)
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

        await self._run(write)

    async def reset_budget(self, kind: Kind, id: str, old_marker: float, new_reset_at: float) -> bool:
        return await self._run(lambda c: c.execute(_RESET, (new_reset_at, kind, id, old_marker)).rowcount == 1)


def _pg(sql: str) -> str:
    """`?` placeholders -> asyncpg's `$n`."""
    parts = sql.split("?")
    return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))


_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OSError, asyncpg.PostgresConnectionError,
                                                       asyncpg.InterfaceError, asyncpg.InternalClientError)
_CLOSE_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, *_CONNECTION_ERRORS)
_OPEN_ERRORS: tuple[type[BaseException], ...] = (*_CONNECTION_ERRORS, asyncpg.PostgresError)


class PostgresStorage:
    """A small asyncpg pool of its own; created lazily so the key store recovers when the server does."""

    def __init__(self, dsn: str, *, max_size: int = 4, timeout: float = 5.0) -> None:
        self._dsn = dsn
        self._max_size = max_size
        self._timeout = timeout
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._pool_lock = asyncio.Lock()

    async def open(self) -> None:
        try:
            await self._get_pool()
        except ServiceUnavailableError:
            log.warning("key store (PostgreSQL) is unreachable; key lookups fail until it answers")

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                async with asyncio.timeout(self._timeout):
                    await pool.close()
            except _CLOSE_ERRORS:
                pool.terminate()

    async def _get_pool(self) -> asyncpg.Pool[asyncpg.Record]:
        if self._pool is not None:
            return self._pool
        async with self._pool_lock:
            if self._pool is None:
                try:
                    pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=self._max_size,
                                                     timeout=self._timeout, command_timeout=self._timeout)
                    async with pool.acquire() as conn, conn.transaction():
                        await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
                        await conn.execute(_TABLE)
                        for index in _INDEXES:
                            await conn.execute(index)
                except _OPEN_ERRORS as e:
                    log.warning("key store (PostgreSQL) failed to open: %s", type(e).__name__)
                    raise ServiceUnavailableError(_UNAVAILABLE) from None
                self._pool = pool
        return self._pool

    async def _run(self, work: Callable[[Any], Any]) -> Any:
        for attempt in (1, 2):
            pool = await self._get_pool()
            try:
                async with pool.acquire() as conn:
                    return await work(conn)
            except _CONNECTION_ERRORS as e:
                await pool.expire_connections()
                if attempt == 2:
                    log.warning("key store (PostgreSQL) failed: %s", type(e).__name__)
                    raise ServiceUnavailableError(_UNAVAILABLE) from None
            except asyncpg.PostgresError as e:
                log.warning("key store (PostgreSQL) failed: %s", type(e).__name__)
                raise ServiceUnavailableError(_UNAVAILABLE) from None
        raise AssertionError("unreachable")

    async def get_many(self, kind: Kind, ids: Sequence[str]) -> list[Entity]:
        if not ids:
            return []
        rows = await self._run(lambda c: c.fetch(f"{_READ} WHERE kind = $1 AND id = ANY($2::text[])",
                                                 kind, list(ids)))
        return [from_row(tuple(r)) for r in rows]

    async def find(self, kind: Kind, *, team_id: str | None = None, user_id: str | None = None,
                   alias: str | None = None, offset: int = 0, limit: int | None = None) -> tuple[list[Entity], int]:
        where, args = _filters(kind, team_id, user_id, alias)

        async def read(c: Any) -> tuple[list[Any], int]:
            total = await c.fetchval(_pg("SELECT COUNT(*) FROM keys_entities" + where), *args)  # noqa: S608
            rows = await c.fetch(_pg(f"{_READ}{where} ORDER BY created_at, id LIMIT ? OFFSET ?"),
                                 *args, limit, offset)
            return rows, int(total)

        rows, total = await self._run(read)
        return [from_row(tuple(r)) for r in rows], total

    async def insert(self, entity: Entity) -> bool:
        status = await self._run(lambda c: c.execute(_pg(_INSERT), *columns(entity)))
        return bool(status.endswith(" 1"))

    async def update(self, entity: Entity, *, spend: bool = False) -> bool:
        sql, args = _update_args(entity, spend)
        status = await self._run(lambda c: c.execute(_pg(sql), *args))
        return bool(status.endswith(" 1"))

    async def replace(self, old_id: str, entity: Entity) -> bool:
        async def move(c: Any) -> bool:
            async with c.transaction():
                old = await c.fetchrow("DELETE FROM keys_entities WHERE kind = $1 AND id = $2 "
                                       "RETURNING spend, budget_reset_at", entity.kind, old_id)
                if old is None:
                    return False
                row = list(columns(entity))
                row[6], row[7] = old["spend"], old["budget_reset_at"]
                await c.execute(_pg(_INSERT), *row)
                return True

        return bool(await self._run(move))

    async def delete(self, kind: Kind, ids: Sequence[str]) -> list[str]:
        if not ids:
            return []
        rows = await self._run(lambda c: c.fetch(
            "DELETE FROM keys_entities WHERE kind = $1 AND id = ANY($2::text[]) RETURNING id", kind, list(ids)))
        return [r["id"] for r in rows]

    async def delete_where(self, kind: Kind, *, team_id: str | None = None, user_id: str | None = None) -> list[str]:
        column, value = ("team_id", team_id) if team_id is not None else ("user_id", user_id)
        rows = await self._run(lambda c: c.fetch(
            f"DELETE FROM keys_entities WHERE kind = $1 AND {column} = $2 RETURNING id", kind, value))  # noqa: S608
        return [r["id"] for r in rows]

    async def add_spend(self, deltas: Sequence[SpendDelta]) -> None:
        args = [(amount, kind, id, marker) for kind, id, marker, amount in deltas]

        async def write(c: Any) -> None:
            async with c.transaction():
                await c.executemany(_pg(_ADD_SPEND), args)

        await self._run(write)

    async def reset_budget(self, kind: Kind, id: str, old_marker: float, new_reset_at: float) -> bool:
        status = await self._run(lambda c: c.execute(_pg(_RESET), new_reset_at, kind, id, old_marker))
        return bool(status.endswith(" 1"))
