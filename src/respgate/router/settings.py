"""`router_settings` (LiteLLM's names) read into one frozen `RouterSettings`.

Defaults are LiteLLM's: no retries, 3 failures within a minute cool a deployment down for 5 s,
at most 5 fallback groups, tag filtering and context-window pre-call checks off. Mistakes raise
`ConfigError` naming the key; values are never quoted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from ..errors import ConfigError

STRATEGIES: Final = frozenset({"simple-shuffle", "least-busy", "latency-based-routing", "usage-based-routing",
                               "usage-based-routing-v2", "cost-based-routing"})

# LiteLLM's RetryPolicy field -> our error kind (see policy.py).
RETRY_POLICY_FIELDS: Final = {
    "BadRequestErrorRetries": "bad_request",
    "AuthenticationErrorRetries": "authentication",
    "TimeoutErrorRetries": "timeout",
    "RateLimitErrorRetries": "rate_limit",
    "ContentPolicyViolationErrorRetries": "content_policy",
    "InternalServerErrorRetries": "server",
}

Fallbacks = Mapping[str, tuple[str, ...]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str | None = None
    host: str = "localhost"
    port: int = 6379
    password: str | None = None
    db: int = 0
    namespace: str | None = None  # `cache_kwargs.namespace`: a key prefix, so deployments can share a Redis


@dataclass(frozen=True, slots=True)
class RouterSettings:
    routing_strategy: str = "simple-shuffle"
    num_retries: int = 0
    retry_policy: Mapping[str, int] = field(default_factory=dict)  # error kind -> retries
    # model group -> its own retry policy, which replaces `retry_policy` for that group
    model_group_retry_policy: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    retry_after: float = 0.0  # minimum wait before retrying the same deployment
    max_retry_after: float = 60.0  # an upstream's Retry-After is honoured up to this
    timeout: float | None = None
    stream_timeout: float | None = None  # until the first event of a stream
    allowed_fails: int = 3
    cooldown_time: float = 5.0
    disable_cooldowns: bool = False
    fallbacks: Fallbacks = field(default_factory=dict)
    context_window_fallbacks: Fallbacks = field(default_factory=dict)
    content_policy_fallbacks: Fallbacks = field(default_factory=dict)
    default_fallbacks: tuple[str, ...] = ()
    max_fallbacks: int = 5
    default_max_parallel_requests: int | None = None
    enable_tag_filtering: bool = False
    tag_filtering_match_any: bool = True  # a deployment needs one of the request's tags (else all of them)
    enable_pre_call_checks: bool = False  # skip deployments whose context window the input exceeds
    redis: RedisSettings | None = None
    configured: bool = False  # router_settings (or litellm_settings' router keys) said anything

    def retries_for(self, kind: str, group: str | None = None) -> int:
        policy = self.retry_policy if group is None else self.model_group_retry_policy.get(group, self.retry_policy)
        return policy.get(kind, self.num_retries)


def parse_router_settings(raw: Mapping[str, Any], litellm: Mapping[str, Any] | None = None) -> RouterSettings:
    """`router_settings`, with LiteLLM's `litellm_settings` fallbacks / num_retries as defaults."""
    lite = {k: v for k, v in (litellm or {}).items() if v is not None and k in _FROM_LITELLM}
    merged = {**lite, **{k: v for k, v in raw.items() if v is not None}}
    r = _Reader(merged)
    strategy = r.text("routing_strategy") or "simple-shuffle"
    if strategy not in STRATEGIES:
        raise ConfigError("router_settings.routing_strategy",
                          f"expected one of {', '.join(sorted(STRATEGIES))}")
    return RouterSettings(
        routing_strategy=strategy,
        num_retries=r.integer("num_retries") or 0,
        retry_policy=_retry_policy(merged.get("retry_policy"), "router_settings.retry_policy"),
        model_group_retry_policy=_group_retry_policies(merged.get("model_group_retry_policy")),
        retry_after=r.number("retry_after") or 0.0,
        timeout=r.number("timeout", positive=True),
        stream_timeout=r.number("stream_timeout", positive=True),
        allowed_fails=_default(r.integer("allowed_fails"), 3),
        cooldown_time=_default(r.number("cooldown_time"), 5.0),
        disable_cooldowns=bool(r.flag("disable_cooldowns")),
        fallbacks=_fallbacks(merged.get("fallbacks"), "fallbacks"),
        context_window_fallbacks=_fallbacks(merged.get("context_window_fallbacks"), "context_window_fallbacks"),
        content_policy_fallbacks=_fallbacks(merged.get("content_policy_fallbacks"), "content_policy_fallbacks"),
        default_fallbacks=_names(merged.get("default_fallbacks"), "router_settings.default_fallbacks"),
        max_fallbacks=_default(r.integer("max_fallbacks"), 5),
        default_max_parallel_requests=r.integer("default_max_parallel_requests", minimum=1),
        enable_tag_filtering=bool(r.flag("enable_tag_filtering")),
        tag_filtering_match_any=_default(r.flag("tag_filtering_match_any"), True),
        # LiteLLM reads `enable_pre_call_checks`; its docs also spell it without the s
        enable_pre_call_checks=bool(r.flag("enable_pre_call_checks") or r.flag("enable_pre_call_check")),
        redis=_redis(r, merged.get("cache_kwargs")),
        configured=bool(merged),
    )


_FROM_LITELLM: Final = frozenset({"num_retries", "fallbacks", "context_window_fallbacks",
                                  "content_policy_fallbacks", "default_fallbacks"})


def _default(value: T | None, default: T) -> T:
    return default if value is None else value


def _redis(r: _Reader, cache_kwargs: Any) -> RedisSettings | None:
    url = r.text("redis_url")
    host, port, password = r.text("redis_host"), r.integer("redis_port", minimum=1), r.text("redis_password")
    if url is None and host is None and port is None and password is None:
        return None
    if cache_kwargs is not None and not isinstance(cache_kwargs, Mapping):
        raise ConfigError("router_settings.cache_kwargs", "expected a mapping")
    namespace = (cache_kwargs or {}).get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or not namespace):
        raise ConfigError("router_settings.cache_kwargs.namespace", "expected a non-empty string")
    return RedisSettings(url=url, host=host or "localhost", port=port or 6379, password=password,
                         db=r.integer("redis_db") or 0, namespace=namespace)


def _group_retry_policies(value: Any) -> dict[str, dict[str, int]]:
    """LiteLLM's `model_group_retry_policy`: {model group: RetryPolicy fields}."""
    key = "router_settings.model_group_retry_policy"
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(key, "expected a mapping of model group -> RetryPolicy fields")
    return {str(group): _retry_policy(policy, f"{key}.{group}") for group, policy in value.items()}


def _retry_policy(value: Any, key: str) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(key, "expected a mapping of LiteLLM RetryPolicy fields")
    policy: dict[str, int] = {}
    for name, count in value.items():
        kind = RETRY_POLICY_FIELDS.get(str(name))
        if kind is None:
            raise ConfigError(f"{key}.{name}", f"unknown field (known: {', '.join(RETRY_POLICY_FIELDS)})")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ConfigError(f"{key}.{name}", "expected an integer >= 0")
        policy[kind] = count
    return policy


def _fallbacks(value: Any, name: str) -> dict[str, tuple[str, ...]]:
    """LiteLLM's shape: a list of one-key mappings, `[{"gpt-4o": ["gpt-4o-mini", "claude"]}]`."""
    key = f"router_settings.{name}"
    if value is None:
        return {}
    if not isinstance(value, list):
        raise ConfigError(key, "expected a list of {model group: [fallback groups]} mappings")
    table: dict[str, tuple[str, ...]] = {}
    for i, entry in enumerate(value):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{key}[{i}]", "expected a mapping {model group: [fallback groups]}")
        for group, targets in entry.items():
            table[str(group)] = _names(targets, f"{key}[{i}].{group}")
    return table


def _names(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(key, "expected a list of model group names")
    return tuple(value)


class _Reader:
    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    def text(self, name: str) -> str | None:
        value = self.raw.get(name)
        if value is None or (isinstance(value, str) and value):
            return value
        raise ConfigError(f"router_settings.{name}", "expected a non-empty string")

    def flag(self, name: str) -> bool | None:
        value = self.raw.get(name)
        if value is None or isinstance(value, bool):
            return value
        raise ConfigError(f"router_settings.{name}", "expected true or false")

    def integer(self, name: str, *, minimum: int = 0) -> int | None:
        value = self.raw.get(name)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ConfigError(f"router_settings.{name}", f"expected an integer >= {minimum}")
        return value

    def number(self, name: str, *, positive: bool = False) -> float | None:
        value = self.raw.get(name)
        if value is None:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0 or (positive and value == 0):
            raise ConfigError(f"router_settings.{name}", "expected a number > 0" if positive else
                              "expected a number >= 0")
        return float(value)
