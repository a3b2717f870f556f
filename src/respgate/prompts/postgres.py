"""The prompt store on PostgreSQL: a small asyncpg pool of its own, shared by every proxy instance.

The pool is made at the first use, so a database that is down at start-up only fails the prompt
calls that need it (503), like the response store. `schema` (tests) puts the table in a schema of its
own. A new version takes a lock on its prompt id (`pg_advisory_xact_lock`), so two instances never
hand out the same number.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import orjson

from ..errors import ServiceUnavailableError
from .store import PromptVersion, row_version

Json = dict[str, Any]
T = TypeVar("T")

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_TABLE_LOCK = 0x7072_6F6D_7074_73  # "prompts": serialises concurrent CREATE TABLE
_CREATE = ("CREATE TABLE IF NOT EXISTS prompts_versions (prompt_id TEXT NOT NULL, version INTEGER NOT NULL, "
           "litellm_params TEXT NOT NULL, prompt_info TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, "
           "PRIMARY KEY (prompt_id, version))")
_SELECT = "SELECT prompt_id, version, litellm_params, prompt_info, created_at FROM prompts_versions "
_UNAVAILABLE = "The prompt store (PostgreSQL) is unavailable."


class PostgresPromptStore:
    def __init__(self, dsn: str, *, schema: str | None = None, max_size: int = 2, timeout: float = 5.0) -> None:
        if schema is not None and not _IDENTIFIER.fullmatch(schema):
            raise ValueError("schema must be a lower-case SQL identifier")
        self._dsn = dsn  # never logged: it may hold a password
        self.schema = schema
        self.max_size = max_size
        self.timeout = timeout
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def open(self) -> None:
        with contextlib.suppress(ServiceUnavailableError):  # retried at the first call that needs it
            await self._get_pool()

    async def close(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                async with asyncio.timeout(self.timeout):
                    await pool.close()
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pool.terminate()

    async def _get_pool(self) -> asyncpg.Pool[asyncpg.Record]:
        if self._pool is not None:
            return self._pool
        async with self._lock:
            if self._pool is None:
                if self._closed:
                    raise ServiceUnavailableError(_UNAVAILABLE)
                settings = {"search_path": self.schema} if self.schema else {}
                try:
                    pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=self.max_size,
                                                     timeout=self.timeout, command_timeout=self.timeout,
                                                     server_settings=settings)
                    async with pool.acquire() as conn, conn.transaction():
                        await conn.execute("SELECT pg_advisory_xact_lock($1)", _TABLE_LOCK)
                        if self.schema:
                            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                        await conn.execute(_CREATE)
                except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    raise ServiceUnavailableError(_UNAVAILABLE) from None
                self._pool = pool
        return self._pool

    async def _run(self, work: Callable[[Any], Awaitable[T]]) -> T:
        pool = await self._get_pool()
        try:
            async with pool.acquire() as conn:
                return await work(conn)
        except (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
            await pool.expire_connections()
            raise ServiceUnavailableError(_UNAVAILABLE) from None

    async def add(self, prompt_id: str, litellm_params: Json, prompt_info: Json) -> PromptVersion:
        async def work(conn: Any) -> PromptVersion:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"prompts:{prompt_id}")
                newest = await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM prompts_versions "
                                             "WHERE prompt_id = $1", prompt_id)
                made = PromptVersion.make(prompt_id, int(newest) + 1, litellm_params, prompt_info, time.time())
                await conn.execute("INSERT INTO prompts_versions (prompt_id, version, litellm_params, prompt_info, "
                                   "created_at) VALUES ($1, $2, $3, $4, $5)", prompt_id, made.version,
                                   orjson.dumps(litellm_params).decode(), orjson.dumps(prompt_info).decode(),
                                   made.created_at)
                return made
        return await self._run(work)

    async def get(self, prompt_id: str, version: int | None) -> PromptVersion | None:
        if version is None:
            row = await self._run(lambda conn: conn.fetchrow(
                _SELECT + "WHERE prompt_id = $1 ORDER BY version DESC LIMIT 1", prompt_id))
        else:
            row = await self._run(lambda conn: conn.fetchrow(
                _SELECT + "WHERE prompt_id = $1 AND version = $2", prompt_id, version))
        return row_version(row) if row is not None else None

    async def versions(self, prompt_id: str) -> list[PromptVersion]:
        rows = await self._run(lambda conn: conn.fetch(
            _SELECT + "WHERE prompt_id = $1 ORDER BY version DESC", prompt_id))
        return [row_version(r) for r in rows]

    async def latest(self) -> list[PromptVersion]:
        rows = await self._run(lambda conn: conn.fetch(
            "SELECT DISTINCT ON (prompt_id) prompt_id, version, litellm_params, prompt_info, created_at "
            "FROM prompts_versions ORDER BY prompt_id, version DESC"))
        return [row_version(r) for r in rows]

    async def delete(self, prompt_id: str) -> int:
        status = await self._run(lambda conn: conn.execute("DELETE FROM prompts_versions WHERE prompt_id = $1",
                                                           prompt_id))
        return int(str(status).rsplit(" ", 1)[-1])
