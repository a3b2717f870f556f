"""What a failed attempt means for the router: its kind, whether to retry, whether to fall back,
and how long to wait.

Kinds follow LiteLLM's RetryPolicy fields. Only rate limits, timeouts and server/connection
failures are retried by default; a client's mistake (400, 404, 422) is never retried or failed
over, since every deployment would refuse it the same way. Context-window and content-policy
refusals are client-side too, but have their own fallback lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..errors import RespgateError
from .settings import RouterSettings

RETRYABLE: Final = frozenset({"rate_limit", "timeout", "server"})
# Kinds a deployment is to blame for: they count towards its cooldown and allow general fallbacks.
DEPLOYMENT_FAULTS: Final = frozenset({"rate_limit", "timeout", "server", "authentication"})

_CONTEXT_CODES: Final = frozenset({"context_length_exceeded", "string_above_max_length"})
_CONTEXT_WORDS: Final = ("context length", "context window", "maximum context", "too many tokens",
                         "prompt is too long", "input is too long")
_POLICY_CODES: Final = frozenset({"content_policy_violation", "content_filter", "invalid_prompt"})
_POLICY_WORDS: Final = ("content policy", "content management policy", "content_filter", "safety system")

BACKOFF_BASE: Final = 0.5
BACKOFF_CAP: Final = 8.0


def error_kind(err: RespgateError) -> str:
    status, code, text = err.status, err.code or "", err.message.lower()
    if code == "upstream_auth_failed" or status in (401, 403):
        return "authentication"
    if status == 429:
        return "rate_limit"
    if status in (408, 504) or code == "upstream_timeout":
        return "timeout"
    if status >= 500:
        return "server"
    if code in _CONTEXT_CODES or any(w in text for w in _CONTEXT_WORDS):
        return "context_window"
    if code in _POLICY_CODES or any(w in text for w in _POLICY_WORDS):
        return "content_policy"
    return "bad_request"


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: str
    retries: int  # how many retries this kind allows in one model group
    blames_deployment: bool


def judge(err: RespgateError, settings: RouterSettings, group: str | None = None) -> Verdict:
    """What `err` means in model group `group` (whose own `model_group_retry_policy` may apply)."""
    kind = error_kind(err)
    # A client error is never retried, whatever a retry_policy says: the answer would not change.
    retries = settings.retries_for(kind, group) if kind in RETRYABLE else 0
    return Verdict(kind, retries, kind in DEPLOYMENT_FAULTS)


def retry_after_seconds(err: RespgateError) -> float | None:
    """The upstream's `Retry-After` (delta seconds) or `retry-after-ms`, when it sent one."""
    headers = {k.lower(): v for k, v in err.headers.items()}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw) * scale
        except ValueError:
            continue  # an HTTP date: rare from LLM APIs; fall back to backoff
        if value >= 0:
            return value
    return None


def backoff(attempt: int, err: RespgateError, settings: RouterSettings, jitter: float) -> float:
    """Seconds before retry number `attempt` (0-based): the upstream's Retry-After up to the cap, else
    exponential backoff with jitter in [0.75, 1]; never below `retry_after`."""
    hinted = retry_after_seconds(err)
    if hinted is not None:
        wait = min(hinted, settings.max_retry_after)
    else:
        wait = min(BACKOFF_BASE * 2 ** attempt, BACKOFF_CAP) * (1.0 - 0.25 * jitter)
    return max(wait, settings.retry_after)
