"""Versioned schema migrations, applied at start-up, for the store and the platform's own tables.

Each component (the response store, keys, spend, ...) has an ordered list of `Migration`s; the
`schema_migrations` table records which versions of which component are applied. A database whose
component is at a version newer than this code knows is refused: it was written by a newer
respgate, and running an older one against it could corrupt it. Version 1 of the store is the
schema as it was before versions were kept (all `CREATE ... IF NOT EXISTS`), so databases made
then are adopted as they are.

SQLite applies a component's pending migrations in one transaction (`BEGIN IMMEDIATE`: one writer at
a time); PostgreSQL in one transaction under the caller's advisory lock.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    component TEXT NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (component, version)
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str  # one or more statements


class SchemaTooNewError(RuntimeError):
    """The database was migrated by a newer respgate: refuse to start rather than guess."""


def _check(component: str, migrations: Sequence[Migration], current: int) -> list[Migration]:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"{component}: migrations must be numbered 1, 2, 3, ... in order")
    if current > len(migrations):
        raise SchemaTooNewError(
            f"The database's {component} schema is at version {current}, newer than this respgate knows "
            f"({len(migrations)}). Upgrade respgate, or point it at another database.")
    return [m for m in migrations if m.version > current]


def apply_sqlite(conn: sqlite3.Connection, component: str, migrations: Sequence[Migration]) -> list[int]:
    """Pending migrations of `component`, applied; the versions applied now. `conn` is in autocommit
    mode (isolation_level=None)."""
    conn.execute(_TABLE)
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT MAX(version) FROM schema_migrations WHERE component = ?", (component,)).fetchone()
        pending = _check(component, migrations, int(row[0] or 0))
        for m in pending:
            for statement in _statements(m.sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (component, version, name, applied_at) VALUES (?,?,?,?)",
                         (component, m.version, m.name, time.time()))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return [m.version for m in pending]


async def apply_postgres(conn: Any, component: str, migrations: Sequence[Migration]) -> list[int]:
    """The same on an asyncpg connection, inside the caller's transaction (which holds the lock)."""
    await conn.execute(_TABLE)
    current = await conn.fetchval("SELECT MAX(version) FROM schema_migrations WHERE component = $1", component)
    pending = _check(component, migrations, int(current or 0))
    for m in pending:
        await conn.execute(m.sql)
        await conn.execute("INSERT INTO schema_migrations (component, version, name, applied_at) "
                           "VALUES ($1, $2, $3, $4)", component, m.version, m.name, time.time())
    return [m.version for m in pending]


def _statements(sql: str) -> list[str]:
    """SQLite's execute() takes one statement; ours never hold a ';' inside a literal."""
    return [s.strip() for s in sql.split(";") if s.strip()]
