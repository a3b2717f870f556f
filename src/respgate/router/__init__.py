"""Routing among a model group's deployments: strategies, retries, cooldowns, fallbacks, limits,
session continuity; state in memory or Redis. See core.py for the flow."""

from .core import Router, json_tokens, make_state
from .policy import error_kind
from .redis_state import RedisState, redis_client
from .settings import RedisSettings, RouterSettings, parse_router_settings
from .state import MemoryState, RouterState, Snapshot, Usage

__all__ = [
    "MemoryState",
    "RedisSettings",
    "RedisState",
    "Router",
    "RouterSettings",
    "RouterState",
    "Snapshot",
    "Usage",
    "error_kind",
    "json_tokens",
    "make_state",
    "parse_router_settings",
    "redis_client",
]
