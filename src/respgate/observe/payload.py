"""What a callback receives about a call: LiteLLM's `kwargs` shape and the standard logging record.

`record(call)` is the one flat description of a finished call (the JSONL line, and
`kwargs["standard_logging_object"]`): ids, model and deployment, status, usage, cost, latency, who
asked (key alias, team, user — the key's hash, never the key), the error. `kwargs(call, record)` wraps
it the way LiteLLM's callbacks expect (`model`, `messages`/`input`, `litellm_params.metadata.user_api_key_*`,
`response_cost`, `litellm_call_id`, ...). Both are made off the request path, in the callback worker.
"""

from __future__ import annotations

import datetime
from typing import Any

from ..calls import Call

_REQUEST_FIELDS = ("model", "input", "messages")


def times(call: Call, at: float | None = None) -> tuple[datetime.datetime, datetime.datetime]:
    """(start, end) as datetimes, as LiteLLM passes them; `at` (perf_counter) overrides the end."""
    start = datetime.datetime.fromtimestamp(call.started_at)
    end_pc = at if at is not None else call.ended
    elapsed = 0.0 if end_pc is None else max(0.0, end_pc - call.started)
    return start, start + datetime.timedelta(seconds=elapsed)


def usage_of(call: Call) -> dict[str, int] | None:
    """Responses or Chat Completions usage -> input/output/total/cached/reasoning token counts (ints >= 0)."""
    tokens = call.tokens
    if tokens is None:
        return None
    return {"input_tokens": tokens.input, "output_tokens": tokens.output, "total_tokens": tokens.total,
            "cached_tokens": tokens.cached, "reasoning_tokens": tokens.reasoning}


def is_failure(call: Call) -> bool:
    return call.error is not None or call.status == "failed"


def error_of(call: Call) -> dict[str, Any] | None:
    """The error the client saw (an HTTP error) or the failed Response's error."""
    if call.error is not None:
        e = call.error
        return {"type": type(e).__name__, "code": e.code, "status": e.status, "message": e.message}
    if call.response is not None and call.status == "failed":
        err = call.response.get("error") or {}
        code = err.get("code") if isinstance(err, dict) else None
        message = err.get("message") if isinstance(err, dict) else None
        return {"type": "ResponseFailed", "code": code, "status": None, "message": message}
    return None


def end_user_of(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    for name in ("user", "safety_identifier"):
        value = body.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def record(call: Call) -> dict[str, Any]:
    """The standard logging record of a finished call (one JSONL line)."""
    start, end = times(call)
    p = call.principal
    d = call.deployment
    body = call.body if isinstance(call.body, dict) else {}
    latency = call.latency
    ttfe = call.time_to_first_event
    metadata = body.get("metadata")
    return {
        "request_id": call.request_id,
        "call_type": call.route,
        "stream": call.stream,
        "model": call.model,
        "deployment": d.model_name if d is not None else None,
        "deployment_id": d.id if d is not None else None,
        "provider": d.provider if d is not None else None,
        "upstream_model": d.upstream_model if d is not None else None,
        "response_id": call.response_id or None,
        "status": call.status,
        "usage": usage_of(call),
        "cost": call.cost,
        "latency_ms": None if latency is None else round(latency * 1000, 3),
        "time_to_first_token_ms": None if ttfe is None else round(ttfe * 1000, 3),
        "key_hash": p.token or None,
        "key_alias": p.key_alias,
        "team_id": p.team_id,
        "user_id": p.user_id,
        "end_user": end_user_of(body),
        "metadata": metadata if isinstance(metadata, dict) else None,
        "error": error_of(call),
        "start_time": start.astimezone().isoformat(),
        "end_time": end.astimezone().isoformat(),
    }


def kwargs(call: Call, standard: dict[str, Any] | None) -> dict[str, Any]:
    """LiteLLM's callback `kwargs` for this call (`standard` is None before the call has ended)."""
    body = call.body if isinstance(call.body, dict) else {}
    p = call.principal
    d = call.deployment
    messages = body.get("messages") if "messages" in body else body.get("input")
    requester = body.get("metadata")
    out: dict[str, Any] = {
        "model": call.model,
        "messages": messages,
        "input": body.get("input"),
        "call_type": call.route,
        "stream": call.stream,
        "litellm_call_id": call.request_id,
        "request_id": call.request_id,
        "optional_params": {k: v for k, v in body.items() if k not in _REQUEST_FIELDS},
        "litellm_params": {
            "metadata": {
                "user_api_key_hash": p.token or None,
                "user_api_key_alias": p.key_alias,
                "user_api_key_team_id": p.team_id,
                "user_api_key_user_id": p.user_id,
                "user_api_key_end_user_id": end_user_of(body),
                "requester_metadata": requester if isinstance(requester, dict) else None,
                "model_group": call.model,
            },
            "model_id": d.id if d is not None else None,
            "custom_llm_provider": d.provider if d is not None else None,
            "api_base": d.api_base if d is not None else None,
        },
        "response_cost": call.cost,
        "response_id": call.response_id or None,
    }
    if standard is not None:
        out["standard_logging_object"] = standard
        if call.error is not None:
            out["exception"] = call.error
    return out
