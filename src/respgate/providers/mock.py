"""A deterministic local model for the quickstart and the tests: `mock/<mode>`.

Modes, by `deployment.upstream_model` (anything else behaves as `echo`):

- `echo`      the text of the last user message; with a json_schema text format, that text when
              it is JSON, else an object filling the schema's required string properties with it.
- `recall`    every user message of the whole conversation joined by " | " (proves chains work).
- `tool`      with function tools and no fresh function_call_output: calls the tool named in the
              last user text (or the first one), its required string arguments set to that text;
              after a function_call_output: "Tool result: <output>".
- `reasoning` a reasoning item summarising the question, then the echo.
- `fail`      response.failed with a server_error (`create` returns that failed response too).

Knobs from `deployment.extra` (LiteLLM's names where it has them): `mock_response` (fixed answer
text for every mode but `fail`), `mock_latency_ms` (pause after response.created),
`mock_tokens_per_second` (one pause of 1/rate per delta; 0 or absent = none).

Tokens are counted as ceil(characters / 4) of all text; `max_output_tokens` cuts the output at
4 characters a token and ends the response as incomplete.
"""

from __future__ import annotations

import asyncio
import base64
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from ..events import Event
from ..ids import new_token
from ..streaming import StreamBuilder
from .base import ProviderRequest

Json = dict[str, Any]

_CHARS_PER_TOKEN = 4
_WORDS = re.compile(r"\S+\s*|\s+")  # every character lands in exactly one delta


@dataclass(frozen=True, slots=True)
class _Step:
    """One thing the mock model says: reasoning summary, answer text, or a function call."""

    kind: str  # "reasoning" | "text" | "function_call"
    text: str  # the summary, the answer, or the call's arguments
    name: str = ""
    call_id: str = ""


def count_tokens(items: list[Json], instructions: str | None = None) -> int:
    """The mock's token count of some input: ceil(characters / 4) of all its text."""
    chars = sum(len(t) for item in items for t in _texts(item)) + len(instructions or "")
    return math.ceil(chars / _CHARS_PER_TOKEN)


class MockProvider:
    holds_state = False

    def __init__(self, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._clock = clock
        self._sleep = sleep

    async def create(self, req: ProviderRequest) -> Json:
        builder = StreamBuilder(req.shell, clock=self._clock)
        pause, latency = _pacing(req.deployment.extra)
        if latency:
            await self._sleep(latency)
        deltas = sum(1 for batch in _run(req, builder) if _has_delta(batch))
        if pause and deltas:
            await self._sleep(pause * deltas)
        return builder.response

    async def stream(self, req: ProviderRequest) -> AsyncIterator[Event]:
        builder = StreamBuilder(req.shell, clock=self._clock)
        pause, latency = _pacing(req.deployment.extra)
        created, *rest = builder.start()
        yield Event.of(created)
        if latency:
            await self._sleep(latency)
        for event in rest:
            yield Event.of(event)
        for batch in _run(req, builder):
            for event in batch:
                yield Event.of(event)
            if pause and _has_delta(batch):
                await self._sleep(pause)


def _has_delta(batch: list[Json]) -> bool:
    return any(e["type"].endswith(".delta") for e in batch)


def _pacing(extra: Json) -> tuple[float, float]:
    """(pause between deltas, pause after response.created), in seconds."""
    rate = float(extra.get("mock_tokens_per_second") or 0)
    return (1 / rate if rate > 0 else 0.0), float(extra.get("mock_latency_ms") or 0) / 1000


def _run(req: ProviderRequest, builder: StreamBuilder) -> Iterator[list[Json]]:
    """Drive the builder through the model's answer, one batch of events per delta."""
    mode = req.deployment.upstream_model
    if mode == "fail":
        yield builder.fail("server_error", "The mock model `fail` failed, as it always does.")
        return
    fixed = req.deployment.extra.get("mock_response")
    steps = [_Step("text", str(fixed))] if fixed is not None else _plan(mode, req)
    limit = req.shell.get("max_output_tokens")
    budget = None if limit is None else int(limit) * _CHARS_PER_TOKEN
    out_chars = reasoning_chars = 0
    truncated = False
    for step in steps:
        text = step.text
        if budget is not None and out_chars + len(text) > budget:
            text, truncated = text[: budget - out_chars], True
            if not text and step.kind != "text":
                break
        # a cut item stays open, so that finish() closes it as incomplete
        yield from _say(builder, step, text, req, close=not truncated)
        out_chars += len(text)
        reasoning_chars += len(text) if step.kind == "reasoning" else 0
        if truncated:
            break
    instructions = req.shell.get("instructions")
    usage = _usage(count_tokens(req.input_items, instructions if isinstance(instructions, str) else None),
                   out_chars, reasoning_chars)
    if truncated:
        yield builder.finish(usage, status="incomplete", incomplete_reason="max_output_tokens")
    else:
        yield builder.finish(usage)


def _say(builder: StreamBuilder, step: _Step, text: str, req: ProviderRequest,
         *, close: bool) -> Iterator[list[Json]]:
    words = _WORDS.findall(text) or [""]  # an empty answer still makes its (empty) item
    if step.kind == "function_call":
        for word in words:
            yield builder.function_call(step.name, step.call_id, word)
    elif step.kind == "reasoning":
        for word in words:
            yield builder.reasoning_summary_delta(word)
        if "reasoning.encrypted_content" in (req.body.get("include") or []):
            yield builder.reasoning_encrypted_content(base64.b64encode(text.encode()).decode())
    else:
        for word in words:
            yield builder.text_delta(word)
    if close:
        yield builder.close_item()


def _usage(input_tokens: int, out_chars: int, reasoning_chars: int) -> Json:
    output_tokens = math.ceil(out_chars / _CHARS_PER_TOKEN)
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},  # the SDK requires both
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": math.ceil(reasoning_chars / _CHARS_PER_TOKEN)},
        "total_tokens": input_tokens + output_tokens,
    }


# --- what each mode answers -------------------------------------------------------------------

def _plan(mode: str, req: ProviderRequest) -> list[_Step]:
    items = req.input_items
    if mode == "recall":
        return [_Step("text", " | ".join(_message_text(i) for i in items if _is_user_message(i)))]
    if mode == "tool":
        return _tool_plan(items, req.shell)
    answer = _echo(_last_user_text(items), req.shell)
    if mode == "reasoning":
        question = _last_user_text(items)
        return [_Step("reasoning", f"The user said: {question}. I will repeat it."), _Step("text", answer)]
    return [_Step("text", answer)]


def _echo(text: str, shell: Json) -> str:
    fmt = (shell.get("text") or {}).get("format") or {}
    if fmt.get("type") != "json_schema":
        return text
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return orjson.dumps(_fill_required_strings(fmt.get("schema"), text)).decode()
    return text


def _tool_plan(items: list[Json], shell: Json) -> list[_Step]:
    last = items[-1] if items else {}
    if last.get("type") == "function_call_output":
        return [_Step("text", f"Tool result: {_content_text(last.get('output'))}")]
    tools = [t for t in shell.get("tools") or [] if t.get("type") == "function"]
    text = _last_user_text(items)
    if not tools:
        return [_Step("text", text)]
    tool = next((t for t in tools if t.get("name") and t["name"] in text), tools[0])
    arguments = orjson.dumps(_fill_required_strings(tool.get("parameters"), text)).decode()
    return [_Step("function_call", arguments, name=tool["name"], call_id=f"call_{new_token(12)}")]


def _fill_required_strings(schema: Any, text: str) -> Json:
    """A JSON object with every required string property of `schema` set to `text`."""
    if not isinstance(schema, dict):
        return {}
    props = schema.get("properties") or {}
    out: Json = {}
    for name in schema.get("required") or []:
        kind = (props.get(name) or {}).get("type")
        if kind == "string" or (isinstance(kind, list) and "string" in kind):
            out[name] = text
    return out


# --- reading normalised input items -----------------------------------------------------------

def _is_user_message(item: Json) -> bool:
    return item.get("type", "message") == "message" and item.get("role") == "user"


def _last_user_text(items: list[Json]) -> str:
    return next((_message_text(i) for i in reversed(items) if _is_user_message(i)), "")


def _message_text(item: Json) -> str:
    return _content_text(item.get("content"))


def _content_text(content: Any) -> str:
    """A string, or the text parts of a content list joined by spaces."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


_TEXT_KEYS = ("text", "refusal", "arguments", "name", "output", "content", "summary")


def _texts(value: Any) -> Iterator[str]:
    """Every piece of model-visible text in an input item (ids, types and roles are not text)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _texts(v)
    elif isinstance(value, dict):
        for key in _TEXT_KEYS:
            if key in value:
                yield from _texts(value[key])
