"""`truncation`: what happens when a replayed history does not fit the model's context window.

The window comes from the deployment's `model_info` (`max_input_tokens`, else `max_tokens`, as in
LiteLLM's model info); without one nothing is checked here and the upstream is the judge. Tokens
are estimated as ceil(characters / 4) of the items' text (`providers.mock.count_tokens`), counted
per item, so the estimate errs on the long side; no tokenizer is loaded on the hot path.

- `disabled` (OpenAI's default): an input over the window is OpenAI's 400 `context_length_exceeded`.
- `auto`: the oldest items of the *history* are dropped until the input fits (never this turn's own
  input); a tool output whose call was dropped goes with it. Still too long -> the same 400.
"""

from __future__ import annotations

from typing import Any, Final

from .deployments import Deployment
from .errors import InvalidRequestError
from .providers.mock import count_tokens

__all__ = ["context_window", "fit_window"]

Json = dict[str, Any]

_OUTPUT_TYPES: Final = frozenset({"function_call_output", "custom_tool_call_output", "computer_call_output",
                                  "local_shell_call_output", "shell_call_output", "apply_patch_call_output",
                                  "mcp_approval_response"})


def context_window(deployment: Deployment) -> int | None:
    for key in ("max_input_tokens", "max_tokens"):
        value = deployment.model_info.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def fit_window(history: list[Json], turn: list[Json], body: Json, deployment: Deployment) -> list[Json]:
    """The history to send: whole, or (with `truncation: "auto"`) without its oldest items."""
    window = context_window(deployment)
    if window is None:
        return history
    instructions = body.get("instructions")
    budget = window - count_tokens(turn, instructions if isinstance(instructions, str) else None)
    sizes = [count_tokens([item]) for item in history]
    total = sum(sizes)
    if total <= budget and budget >= 0:
        return history
    if body.get("truncation") != "auto" or budget < 0:
        raise _too_long()
    start = 0
    while total > budget or (start < len(history) and history[start].get("type") in _OUTPUT_TYPES):
        total -= sizes[start]
        start += 1
    return history[start:]


def _too_long() -> InvalidRequestError:
    return InvalidRequestError("Your input exceeds the context window of this model. Please adjust your input and "
                               "try again.", param="input", code="context_length_exceeded")
