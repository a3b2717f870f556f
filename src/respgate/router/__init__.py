"""Routing among a model group's deployments: strategies, retries, cooldowns, fallbacks, limits,
session continuity, tags, context-window checks; state in memory or Redis. See core.py for the flow."""

from .core import Router, make_state
from .held import json_tokens
from .options import RequestOptions, lift_options, split_options
from .policy import error_kind
from .redis_state import RedisState, redis_client
from .settings import RedisSettings, RouterSettings, parse_router_settings
from .state import MemoryState, RouterState, Snapshot, Usage

__all__ = [
    "MemoryState",
    "RedisSettings",
    "RedisState",
    "RequestOptions",
    "Router",
    "RouterSettings",
    "RouterState",
    "Snapshot",
    "Usage",
    "error_kind",
    "json_tokens",
    "lift_options",
    "make_state",
    "parse_router_settings",
    "redis_client",
    "split_options",
]
