"""One spend-log row per call: what it holds, how a `Call` becomes one, and how one reads in LiteLLM's shape.

A row is a plain tuple in `COLUMNS` order (cheap to make on the request path, written as is by every
backend). `api_key` is the key's hash (`Principal.token`), never the key. An absent value is the
backend's `null` (None, or NaN for SQLite: see backends.py), so a row needs no second pass to be written.
"""

from __future__ import annotations

import itertools
import os
import time
from datetime import UTC, datetime
from typing import Any

from ..calls import Call, Tokens

COLUMNS: tuple[str, ...] = (
    "id", "request_id", "response_id", "api_key", "key_alias", "team_id", "user_id", "end_user",
    "model_group", "deployment_id", "provider", "model",
    "input_tokens", "cached_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens", "total_tokens",
    "spend", "start_time", "end_time", "latency_ms", "ttft_ms",
    "status", "response_status", "error_type", "error_code", "http_status", "route", "call_type", "stream",
)
INT_COLUMNS = frozenset({"input_tokens", "cached_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens",
                         "total_tokens", "http_status", "stream"})
REAL_COLUMNS = frozenset({"spend", "start_time", "end_time", "latency_ms", "ttft_ms"})
Row = tuple[Any, ...]

# LiteLLM's call_type for each of our routes
_CALL_TYPES = {"responses": "aresponses", "chat.completions": "acompletion",
               "responses.compact": "acompact_responses", "responses.input_tokens": "ainput_tokens"}

# Row ids are unique across instances and grow (B-tree appends, not inserts at random pages): this
# process's start time and a random instance tag, then its own count, in decimal from 10**12 so that it
# keeps 13 digits (and sorts) without a format spec: str() of an int is the cheapest text there is.
_ID_PREFIX = f"{time.time_ns():016x}{os.urandom(4).hex()}"
_SEQUENCE = itertools.count(10**12)
_NO_TOKENS = Tokens(0, 0, 0, 0, 0, 0)


def new_row_id() -> str:
    return _ID_PREFIX + str(next(_SEQUENCE))


def end_user_of(body: Any) -> str | None:
    """The end user a request is for, as LiteLLM reads it: `user`, else `safety_identifier` (its
    Responses successor), else `metadata.user_id` / `metadata.end_user_id`."""
    if not isinstance(body, dict) or ("user" not in body and "safety_identifier" not in body
                                      and "metadata" not in body):
        return None
    for value in (body.get("user"), body.get("safety_identifier")):
        if isinstance(value, str) and value:
            return value
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        for name in ("user_id", "end_user_id"):
            value = metadata.get(name)
            if isinstance(value, str) and value:
                return value
    return None


def row_of(call: Call, tokens: Tokens | None, *, track_end_user: bool = True, null: Any = None) -> Row:
    """The call's row; `null` stands for each absent value (empty strings are absent too)."""
    principal = call.principal
    d = call.deployment
    deployment_id, provider, model = (d.id, d.provider, d.upstream_model) if d is not None else (null, null, null)
    input_tokens, output_tokens, _, cached, written, reasoning = tokens if tokens is not None else _NO_TOKENS
    started, ended, first = call.started, call.ended, call.first_event
    latency = (ended if ended is not None else time.perf_counter()) - started
    started_at, route = call.started_at, call.route
    status, response_status, error_type, error_code, http_status = _outcome(call, null)
    return (
        new_row_id(), call.request_id, call.response_id or null, principal.token or null,
        principal.key_alias or null, principal.team_id or null, principal.user_id or null,
        (end_user_of(call.body) or null) if track_end_user else null, call.model, deployment_id, provider, model,
        input_tokens, cached, written, output_tokens, reasoning, input_tokens + output_tokens,
        call.cost or 0.0, started_at, started_at + latency, latency * 1000.0,
        (first - started) * 1000.0 if first is not None else null,
        status, response_status, error_type, error_code, http_status, route, _CALL_TYPES.get(route, route),
        int(call.stream),
    )


def _outcome(call: Call, null: Any) -> tuple[str, Any, Any, Any, Any]:
    """(success|failure, the Response's status, error type, error code, HTTP status); `null` where absent."""
    error = call.error
    if error is not None:
        return "failure", null, error.type or null, error.code or null, error.status
    response = call.response
    status = response.get("status") if response is not None else None
    if status == "completed":
        return "success", status, null, null, 200
    if not isinstance(status, str) or not status:
        return "success", null, null, null, 200
    if status == "failed" and response is not None:
        err = response.get("error")
        code = err.get("code") if isinstance(err, dict) else None
        return "failure", status, "response_failed", code if isinstance(code, str) and code else null, 200
    return "success", status, null, null, 200


# -- reading ----------------------------------------------------------------------------------------

def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def as_log(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row in LiteLLM's `/spend/logs` shape (its field names first), with ours after."""
    start, end, ttft = row["start_time"], row["end_time"], row["ttft_ms"]
    completion_start = start + ttft / 1000.0 if ttft is not None and start is not None else end
    error_information = None
    if row["status"] == "failure":
        error_information = {"error_code": str(row["http_status"] or ""), "error_class": row["error_type"],
                             "error_message": row["error_code"]}
    return {
        "request_id": row["request_id"], "call_type": row["call_type"], "api_key": row["api_key"] or "",
        "spend": row["spend"], "total_tokens": row["total_tokens"], "prompt_tokens": row["input_tokens"],
        "completion_tokens": row["output_tokens"], "startTime": iso(start), "endTime": iso(end),
        "completionStartTime": iso(completion_start), "model": row["model"] or "", "model_id": row["deployment_id"],
        "model_group": row["model_group"], "custom_llm_provider": row["provider"], "user": row["user_id"] or "",
        "team_id": row["team_id"], "end_user": row["end_user"] or "", "status": row["status"],
        "metadata": {"user_api_key": row["api_key"], "user_api_key_alias": row["key_alias"],
                     "user_api_key_team_id": row["team_id"], "user_api_key_user_id": row["user_id"],
                     "status": row["status"], "error_information": error_information},
        "response_id": row["response_id"], "key_alias": row["key_alias"],
        "input_tokens": row["input_tokens"], "cached_tokens": row["cached_tokens"],
        "cache_write_tokens": row["cache_write_tokens"], "output_tokens": row["output_tokens"],
        "reasoning_tokens": row["reasoning_tokens"], "latency_ms": row["latency_ms"],
        "time_to_first_token_ms": ttft, "response_status": row["response_status"],
        "error_type": row["error_type"], "error_code": row["error_code"], "http_status": row["http_status"],
        "route": row["route"], "stream": bool(row["stream"]),
    }
