"""Prompt caching: where `cache_control` breakpoints go in a Messages body (see request.py's docstring
for the two litellm_params that ask for them)."""

from __future__ import annotations

from typing import Any, Final

Json = dict[str, Any]

_EPHEMERAL: Final[Json] = {"type": "ephemeral"}


def inject_cache_control(out: Json, extra: Json) -> None:
    points = extra.get("cache_control_injection_points")
    if extra.get("prompt_caching"):
        points = [{"location": "message", "role": "system"}, {"location": "tools"},
                  {"location": "message", "index": -1}]
    for point in points or ():
        if not isinstance(point, dict):
            continue
        control = point.get("control") or _EPHEMERAL
        if point.get("location") == "tools" and out.get("tools"):
            out["tools"][-1]["cache_control"] = dict(control)
        elif point.get("role") == "system" and out.get("system"):
            out["system"][-1]["cache_control"] = dict(control)
        elif isinstance(point.get("role"), str):
            for message in out["messages"]:
                if message["role"] == point["role"]:
                    _mark_last_block(message, control)
        elif isinstance(point.get("index"), int) and out["messages"]:
            index = point["index"]
            if -len(out["messages"]) <= index < len(out["messages"]):
                _mark_last_block(out["messages"][index], control)


def _mark_last_block(message: Json, control: Json) -> None:
    # thinking blocks cannot carry cache_control: mark the last block that can
    for block in reversed(message["content"]):
        if block["type"] not in ("thinking", "redacted_thinking"):
            block["cache_control"] = dict(control)
            return
