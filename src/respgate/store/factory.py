"""Choose a store from `general_settings.database_url`."""

from __future__ import annotations

import os

from respgate.errors import ConfigError
from respgate.store.base import Store
from respgate.store.memory import MemoryStore
from respgate.store.sqlite import SqliteStore

_KEY = "general_settings.database_url"
_DEFAULT_PATH = "./respgate.db"
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def open_store(url: str | None) -> Store:
    """A store for `url` (not yet opened: the caller awaits `open()`).

    None -> $DATABASE_URL (LiteLLM's variable) when set, else SQLite at $RESPGATE_DB or ./respgate.db;
    ``sqlite:///rel.db`` / ``sqlite:////abs.db``
    or a bare path ending .db/.sqlite/.sqlite3 -> SQLite; ``memory://`` (or an in-memory SQLite
    URL) -> MemoryStore; ``postgresql://…`` / ``postgres://…`` -> PostgresStore (asyncpg DSN).
    """
    if url is None:
        url = os.environ.get("DATABASE_URL") or None
    if url is None:
        return SqliteStore(os.environ.get("RESPGATE_DB") or _DEFAULT_PATH)
    scheme, sep, rest = url.partition("://")
    if not sep:
        if url == ":memory:":
            return MemoryStore()
        if url.lower().endswith(_SQLITE_SUFFIXES):
            return SqliteStore(url)
        raise ConfigError(_KEY, "expected a URL such as sqlite:///respgate.db, or a path ending .db")
    scheme = scheme.lower()
    if scheme == "memory":
        return MemoryStore()
    if scheme == "sqlite":
        # sqlite:///rel/path.db -> "/rel/path.db" after the "://"; the one leading slash is the
        # separator, so a fourth slash makes the path absolute.
        path = rest[1:] if rest.startswith("/") else rest
        path = path.split("?", 1)[0]
        if path in ("", ":memory:"):
            return MemoryStore()
        return SqliteStore(path)
    if scheme in ("postgresql", "postgres"):
        try:  # asyncpg is needed only by those who use PostgreSQL
            from respgate.store.postgres import PostgresStore
        except ImportError:
            raise ConfigError(_KEY, "a postgresql:// URL needs the asyncpg package installed") from None
        return PostgresStore(url)
    # Name the scheme only: the rest of a URL may hold a password.
    raise ConfigError(_KEY, f"unsupported database scheme {scheme!r}; use sqlite:///, postgresql:// or memory://")
