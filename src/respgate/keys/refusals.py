"""The answers a virtual key's call gets when refused, in LiteLLM's words and statuses.

Budgets: LiteLLM's BudgetExceededError as its proxy answers it (400, type `budget_exceeded`). Limits:
429 with Retry-After (the end of the minute for rpm / tpm, 1 s for calls in flight) and LiteLLM's
`rate_limit_type` header. Keys: 401 (`token_not_found_in_db`, `expired_key`), model access 401
(`key_model_access_denied`, `team_…`, `user_…`) naming the `model` parameter.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from ..errors import AuthenticationError, InvalidRequestError, RateLimitError, RespgateError
from .records import Entity
from .tokens import key_name


def unknown_key(key: str, token: str) -> RespgateError:
    return AuthenticationError(
        f"Authentication Error, Invalid proxy server token passed. Received API Key = {key_name(key)}, "
        f"Key Hash (Token) ={token}. Unable to find token in cache or `keys_entities`.",
        code="invalid_api_key", type="token_not_found_in_db")


def expired_key(expires: float, now: float) -> RespgateError:
    return AuthenticationError(
        f"Authentication Error - Expired Key. Key Expiry time {utc(expires)} and current time {utc(now)}",
        code="expired_key", type="expired_key")


def model_denied(kind: str, models: tuple[str, ...], model: str) -> RespgateError:
    return AuthenticationError(
        f"{kind} not allowed to access model. This {kind} can only access models={list(models)}. "
        f"Tried to access {model}", param="model", code=f"{kind}_model_access_denied",
        type=f"{kind}_model_access_denied")


def utc(ts: float) -> str:
    return str(datetime.fromtimestamp(ts, UTC))


_NAMES: dict[str, str] = {"key": "Key", "team": "Team", "user": "User", "customer": "End User"}
_LIMIT_TYPES = {"rpm": "requests", "tpm": "tokens", "parallel": "max_parallel_requests"}
_DESCRIPTORS = {"key": "api_key", "team": "team", "user": "user", "customer": "end_user"}


def budget_error(e: Entity, spend: float) -> RespgateError:
    """LiteLLM's BudgetExceededError as its proxy answers it: 400, type `budget_exceeded`."""
    budget = e.max_budget
    if e.kind == "key":
        message = f"Budget has been exceeded! Current cost: {spend}, Max budget: {budget}"
    elif e.kind == "team":
        message = f"Budget has been exceeded! Team={e.id} Current cost: {spend}, Max budget: {budget}"
    else:
        message = f"ExceededBudget: {_NAMES[e.kind]}={e.id} over budget. Spend={spend}, Budget={budget}"
    return InvalidRequestError(message, code="budget_exceeded", type="budget_exceeded")


def limit_error(e: Entity, what: str, current: float, now: float) -> RespgateError:
    if what == "budget":
        return budget_error(e, current)
    limit = {"rpm": e.rpm_limit, "tpm": e.tpm_limit, "parallel": e.max_parallel}[what]
    if what == "parallel":
        retry_after, resets = 1, now + 1
    else:
        resets = (math.floor(now / 60) + 1) * 60
        retry_after = max(1, math.ceil(resets - now))
    kind = _LIMIT_TYPES[what]
    message = (f"Rate limit exceeded for {_DESCRIPTORS[e.kind]}: {e.id}. "
               f"Limit type: {kind}. Current limit: {limit}, Remaining: 0. "
               f"Limit resets at: {datetime.fromtimestamp(resets, UTC):%Y-%m-%d %H:%M:%S} UTC")
    del current
    return RateLimitError(message, headers={"retry-after": str(retry_after), "rate_limit_type": kind},
                          code="max_parallel_requests_exceeded" if what == "parallel" else f"{kind}_limit_exceeded")
