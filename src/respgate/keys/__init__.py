"""Virtual keys, teams, internal users and end users (LiteLLM's admin API), and their limits.

`build` makes the `KeyManager` when a master key is configured (only the master key, or an admin
key, creates virtual keys). Settings, in LiteLLM's names:

- `general_settings.user_api_key_cache_ttl` (seconds, default 5): how long a verified key is trusted
  without re-reading it; a key deleted, blocked or changed on another instance stops working (or
  changes) within this time, on this instance at once.
- `general_settings.proxy_batch_write_at` (seconds, default 1): how often spend is written.
- `router_settings.redis_host` / `redis_port` / `redis_password` / `redis_url`: limits and budgets
  shared by every instance (see shared.py).
- a team whose `metadata` has `"share_responses": true` owns its keys' responses, chains and
  conversations together: every key of the team can read (and delete) them.
"""

from __future__ import annotations

from typing import Any

from ..config import Config
from ..errors import ConfigError, InvalidRequestError
from ..store.factory import DatabaseTarget
from .durations import duration_seconds
from .manager import Grant, KeyManager, end_user_of
from .storage import MemoryStorage, Storage

__all__ = ["Grant", "KeyManager", "build", "end_user_of"]


def build(config: Config, database: DatabaseTarget) -> KeyManager | None:
    if not config.general.master_key:
        return None
    from ..router.redis_state import redis_client
    from ..router.settings import parse_router_settings
    from .admin_people import Admin
    from .shared import SharedLimits

    extra = config.general.extra
    ttl = _seconds(extra.get("user_api_key_cache_ttl"), "general_settings.user_api_key_cache_ttl", 5.0)
    flush = _seconds(extra.get("proxy_batch_write_at"), "general_settings.proxy_batch_write_at", 1.0)
    redis = parse_router_settings(config.router_settings).redis
    shared = SharedLimits(redis_client(redis)) if redis is not None else None
    groups: dict[str, frozenset[str]] = {}
    for d in config.deployments:
        names = d.model_info.get("access_groups")
        if isinstance(names, list):
            groups[d.model_name] = groups.get(d.model_name, frozenset()) | {n for n in names if isinstance(n, str)}
    manager = KeyManager(_storage(database), cache_ttl=ttl, shared=shared, access_groups=groups,
                         flush_interval=flush)
    manager.admin = Admin(manager, model_names=frozenset(d.model_name for d in config.deployments))
    return manager


def _storage(database: DatabaseTarget) -> Storage:
    if database.kind == "sqlite":
        from .storage_sql import SqliteStorage

        return SqliteStorage(database.location)
    if database.kind == "postgres":
        from .storage_sql import PostgresStorage

        return PostgresStorage(database.location)
    return MemoryStorage()


def _seconds(value: Any, key: str, default: float) -> float:
    """Seconds, or a LiteLLM duration ("30s", "5m")."""
    if value is None:
        return default
    try:
        return duration_seconds(value, key)
    except InvalidRequestError:
        raise ConfigError(key, "expected a positive number of seconds or a duration such as '30s'") from None
