"""The Response skeleton that echoes a request, as OpenAI's API returns it before any output exists.

Every built response (mock, bridged, translated providers) starts from this shell, so the fields,
their key order and their null-or-default choices are decided once. Keys follow OpenAI's order
(id, object, created_at, status, then alphabetical, with usage, user and metadata last);
`conversation` and `prompt` appear only when the request used them. `frequency_penalty` and
`presence_penalty` are included because OpenAI returns them and the Open Responses
ResponseResource schema requires them.
"""

from __future__ import annotations

import time
from typing import Any

#: What the request's `service_tier` becomes in the response ("the tier actually used").
_SERVICE_TIER_ECHO = {None: "default", "auto": "default", "fast": "priority"}


def response_shell(
    body: dict[str, Any],
    *,
    response_id: str,
    model: str,
    created_at: float | None = None,
) -> dict[str, Any]:
    """A Response dict with status "in_progress", no output and no usage, echoing `body`."""
    get = body.get
    shell: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time() if created_at is None else created_at),
        "status": "in_progress",
        "background": bool(get("background") or False),
        "completed_at": None,
    }
    conversation = _conversation(get("conversation"))
    if conversation is not None:
        shell["conversation"] = conversation
    shell.update({
        "error": None,
        "frequency_penalty": _number(get("frequency_penalty"), 0.0),
        "incomplete_details": None,
        "instructions": get("instructions"),
        "max_output_tokens": get("max_output_tokens"),
        "max_tool_calls": get("max_tool_calls"),
        "model": model,
        "output": [],
        "parallel_tool_calls": _flag(get("parallel_tool_calls"), True),
        "presence_penalty": _number(get("presence_penalty"), 0.0),
        "previous_response_id": get("previous_response_id"),
    })
    prompt = get("prompt")
    if isinstance(prompt, dict):
        shell["prompt"] = {"id": prompt.get("id"), "variables": prompt.get("variables"),
                           "version": prompt.get("version")}
    tier = get("service_tier")
    shell.update({
        "prompt_cache_key": get("prompt_cache_key"),
        "prompt_cache_retention": get("prompt_cache_retention"),
        "reasoning": _reasoning(get("reasoning")),
        "safety_identifier": get("safety_identifier"),
        "service_tier": _SERVICE_TIER_ECHO.get(tier, tier),
        "store": _flag(get("store"), True),
        "temperature": _number(get("temperature"), 1.0),
        "text": _text(get("text")),
        "tool_choice": get("tool_choice") if get("tool_choice") is not None else "auto",
        "tools": [_tool(t) for t in get("tools") or []],
        "top_logprobs": get("top_logprobs") if get("top_logprobs") is not None else 0,
        "top_p": _number(get("top_p"), 1.0),
        "truncation": get("truncation") or "disabled",
        "usage": None,
        "user": get("user"),
        "metadata": dict(get("metadata") or {}),
    })
    return shell


def _number(value: Any, default: float) -> float:
    # OpenAI echoes sampling parameters as floats (`"temperature": 1.0`), even when sent as ints.
    return default if value is None else float(value)


def _flag(value: Any, default: bool) -> bool:
    return default if value is None else bool(value)


def _conversation(value: Any) -> dict[str, Any] | None:
    if isinstance(value, str):
        return {"id": value}
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return {"id": value["id"]}
    return None


def _reasoning(value: Any) -> dict[str, Any]:
    given = value if isinstance(value, dict) else {}
    # `generate_summary` is the deprecated spelling of `summary`.
    echo: dict[str, Any] = {"effort": given.get("effort"),
                            "summary": given.get("summary", given.get("generate_summary"))}
    echo.update((k, v) for k, v in given.items() if k not in ("effort", "summary", "generate_summary"))
    return echo


def _text(value: Any) -> dict[str, Any]:
    given = value if isinstance(value, dict) else {}
    fmt = given.get("format")
    if not isinstance(fmt, dict):
        fmt = {"type": "text"}
    elif fmt.get("type") == "json_schema":
        fmt = {"type": "json_schema", "description": fmt.get("description"), "name": fmt.get("name"),
               "schema": fmt.get("schema"), "strict": _flag(fmt.get("strict"), False)}
    echo: dict[str, Any] = {"format": fmt, "verbosity": given.get("verbosity") or "medium"}
    echo.update((k, v) for k, v in given.items() if k not in echo)
    return echo


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    """Function tools are echoed with OpenAI's defaults filled; an MCP tool without its credentials
    (the Response is stored and read back: `authorization` and `headers` are the caller's secrets);
    other tools as they were sent."""
    if tool.get("type") == "mcp":
        return {k: (None if k == "headers" else v) for k, v in tool.items() if k != "authorization"}
    if tool.get("type") != "function":
        return dict(tool)
    # The Responses API makes function tools strict unless the request says otherwise.
    echo: dict[str, Any] = {"type": "function", "description": tool.get("description"),
                            "name": tool.get("name"), "parameters": tool.get("parameters"),
                            "strict": tool.get("strict", True)}
    echo.update((k, v) for k, v in tool.items() if k not in echo)
    return echo
