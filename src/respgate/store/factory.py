"""Choose a store from `general_settings.database_url`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from respgate.errors import ConfigError
from respgate.store.base import Store
from respgate.store.memory import MemoryStore
from respgate.store.sqlite import SqliteStore

_KEY = "general_settings.database_url"
_DEFAULT_PATH = "./respgate.db"
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


@dataclass(frozen=True, slots=True)
class DatabaseTarget:
    """Where `database_url` points. The platform's own tables (keys, spend) live in the same database
    as the responses, through their own connections."""

    kind: Literal["sqlite", "postgres", "memory"]
    location: str = ""  # a file path (sqlite) or an asyncpg DSN (postgres)


def database_target(url: str | None) -> DatabaseTarget:
    """None -> $DATABASE_URL (LiteLLM's variable) when set, else SQLite at $RESPGATE_DB or ./respgate.db;
    ``sqlite:///rel.db`` / ``sqlite:////abs.db``
    or a bare path ending .db/.sqlite/.sqlite3 -> SQLite; ``memory://`` (or an in-memory SQLite
    URL) -> memory; ``postgresql://…`` / ``postgres://…`` -> PostgreSQL (asyncpg DSN).
    """
    if url is None:
        url = os.environ.get("DATABASE_URL") or None
    if url is None:
        return DatabaseTarget("sqlite", os.environ.get("RESPGATE_DB") or _DEFAULT_PATH)
    scheme, sep, rest = url.partition("://")
    if not sep:
        if url == ":memory:":
            return DatabaseTarget("memory")
        if url.lower().endswith(_SQLITE_SUFFIXES):
            return DatabaseTarget("sqlite", url)
        raise ConfigError(_KEY, "expected a URL such as sqlite:///respgate.db, or a path ending .db")
    scheme = scheme.lower()
    if scheme == "memory":
        return DatabaseTarget("memory")
    if scheme == "sqlite":
        # sqlite:///rel/path.db -> "/rel/path.db" after the "://"; the one leading slash is the
        # separator, so a fourth slash makes the path absolute.
        path = rest[1:] if rest.startswith("/") else rest
        path = path.split("?", 1)[0]
        return DatabaseTarget("memory") if path in ("", ":memory:") else DatabaseTarget("sqlite", path)
    if scheme in ("postgresql", "postgres"):
        return DatabaseTarget("postgres", url)
    # Name the scheme only: the rest of a URL may hold a password.
    raise ConfigError(_KEY, f"unsupported database scheme {scheme!r}; use sqlite:///, postgresql:// or memory://")


def open_store(url: str | None) -> Store:
    """A store for `url` (see `database_target`; not yet opened: the caller awaits `open()`)."""
    target = database_target(url)
    if target.kind == "memory":
        return MemoryStore()
    if target.kind == "sqlite":
        return SqliteStore(target.location)
    try:  # asyncpg is needed only by those who use PostgreSQL
        from respgate.store.postgres import PostgresStore
    except ImportError:
        raise ConfigError(_KEY, "a postgresql:// URL needs the asyncpg package installed") from None
    return PostgresStore(target.location)
