"""Where prompts created through the admin API live: one row per version, in the responses' database.

`PromptStore` is four reads and two writes. Versions are immutable (a change is a new version, as
in LiteLLM and OpenAI), so the registry can cache them; delete removes every version of a prompt.
Backends: memory (dicts), SQLite (its own connection used from a worker thread: only the admin API
and cache misses touch it) and PostgreSQL (postgres.py). Table: `prompts_versions`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from .template import Template, parse_template

Json = dict[str, Any]



@dataclass(frozen=True, slots=True)
class PromptVersion:
    prompt_id: str
    version: int
    litellm_params: Json
    prompt_info: Json  # LiteLLM's: {"prompt_type": "config" | "db", ...}
    created_at: float
    template: Template

    @classmethod
    def make(cls, prompt_id: str, version: int, litellm_params: Json, prompt_info: Json,
             created_at: float) -> PromptVersion:
        return cls(prompt_id, version, litellm_params, prompt_info, created_at,
                   parse_template(prompt_id, litellm_params))

    @property
    def is_config(self) -> bool:
        return self.prompt_info.get("prompt_type") == "config"


class PromptStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def add(self, prompt_id: str, litellm_params: Json, prompt_info: Json) -> PromptVersion:
        """A new version: one more than the newest, 1 for a new prompt."""
        ...

    async def get(self, prompt_id: str, version: int | None) -> PromptVersion | None:
        """That version, or the newest when `version` is None."""
        ...

    async def versions(self, prompt_id: str) -> list[PromptVersion]:
        """Newest first."""
        ...

    async def latest(self) -> list[PromptVersion]:
        """The newest version of every prompt, by id."""
        ...

    async def delete(self, prompt_id: str) -> int:
        """Every version; how many there were."""
        ...


class MemoryPromptStore:
    def __init__(self) -> None:
        self._prompts: dict[str, list[PromptVersion]] = {}

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def add(self, prompt_id: str, litellm_params: Json, prompt_info: Json) -> PromptVersion:
        versions = self._prompts.setdefault(prompt_id, [])
        made = PromptVersion.make(prompt_id, versions[-1].version + 1 if versions else 1, litellm_params,
                                  prompt_info, time.time())
        versions.append(made)
        return made

    async def get(self, prompt_id: str, version: int | None) -> PromptVersion | None:
        versions = self._prompts.get(prompt_id) or []
        if version is None:
            return versions[-1] if versions else None
        return next((v for v in versions if v.version == version), None)

    async def versions(self, prompt_id: str) -> list[PromptVersion]:
        return list(reversed(self._prompts.get(prompt_id) or []))

    async def latest(self) -> list[PromptVersion]:
        return [versions[-1] for _, versions in sorted(self._prompts.items()) if versions]

    async def delete(self, prompt_id: str) -> int:
        return len(self._prompts.pop(prompt_id, []))


_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS prompts_versions (
    prompt_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    litellm_params TEXT NOT NULL,
    prompt_info TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (prompt_id, version)
)
"""
_SELECT = "SELECT prompt_id, version, litellm_params, prompt_info, created_at FROM prompts_versions "


def row_version(row: Any) -> PromptVersion:
    return PromptVersion.make(str(row[0]), int(row[1]), orjson.loads(row[2]), orjson.loads(row[3]), float(row[4]))


class SqlitePromptStore:
    """One connection of its own, used from worker threads one statement at a time (the lock)."""

    def __init__(self, path: str, *, busy_timeout: float = 5.0) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def open(self) -> None:
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # The response store checkpoints this file; a commit here would otherwise checkpoint (and fsync)
            # the whole WAL the store wrote, each time.
            conn.execute("PRAGMA wal_autocheckpoint=0")
            conn.execute(_SQLITE_SCHEMA)
        except sqlite3.Error:
            conn.close()
            raise
        self._conn = conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.to_thread(self._locked, conn.close)

    def _locked(self, fn: Any, *args: Any) -> Any:
        with self._lock:
            return fn(*args)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(self._locked, fn, *args)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the prompt store is not open")
        return self._conn

    async def add(self, prompt_id: str, litellm_params: Json, prompt_info: Json) -> PromptVersion:
        made: PromptVersion = await self._run(self._add, prompt_id, litellm_params, prompt_info)
        return made

    def _add(self, prompt_id: str, litellm_params: Json, prompt_info: Json) -> PromptVersion:
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")  # the next version number is decided inside the write lock
        try:
            (newest,) = conn.execute("SELECT COALESCE(MAX(version), 0) FROM prompts_versions WHERE prompt_id = ?",
                                     (prompt_id,)).fetchone()
            made = PromptVersion.make(prompt_id, int(newest) + 1, litellm_params, prompt_info, time.time())
            conn.execute("INSERT INTO prompts_versions (prompt_id, version, litellm_params, prompt_info, created_at) "
                         "VALUES (?, ?, ?, ?, ?)",
                         (prompt_id, made.version, orjson.dumps(litellm_params).decode(),
                          orjson.dumps(prompt_info).decode(), made.created_at))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return made

    async def get(self, prompt_id: str, version: int | None) -> PromptVersion | None:
        if version is None:
            sql = _SELECT + "WHERE prompt_id = ? ORDER BY version DESC LIMIT 1"
            args: tuple[Any, ...] = (prompt_id,)
        else:
            sql = _SELECT + "WHERE prompt_id = ? AND version = ?"
            args = (prompt_id, version)
        row = await self._run(lambda: self._db().execute(sql, args).fetchone())
        return row_version(row) if row is not None else None

    async def versions(self, prompt_id: str) -> list[PromptVersion]:
        sql = _SELECT + "WHERE prompt_id = ? ORDER BY version DESC"
        rows = await self._run(lambda: self._db().execute(sql, (prompt_id,)).fetchall())
        return [row_version(r) for r in rows]

    async def latest(self) -> list[PromptVersion]:
        sql = ("SELECT prompt_id, version, litellm_params, prompt_info, created_at FROM prompts_versions p "
               "WHERE version = (SELECT MAX(version) FROM prompts_versions q WHERE q.prompt_id = p.prompt_id) "
               "ORDER BY prompt_id")
        rows = await self._run(lambda: self._db().execute(sql).fetchall())
        return [row_version(r) for r in rows]

    async def delete(self, prompt_id: str) -> int:
        sql = "DELETE FROM prompts_versions WHERE prompt_id = ?"
        count: int = await self._run(lambda: self._db().execute(sql, (prompt_id,)).rowcount)
        return count
