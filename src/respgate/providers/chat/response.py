"""Chat Completions -> Responses: chunks, or one whole completion, become calls on the StreamBuilder.

Pure translation: no I/O and no events of its own; the builder makes every event, id and index.
`completion()` feeds the builder the very calls a stream of the same message feeds it (the message
is read as one chunk whose delta is the whole message), so JSON and stream agree by construction.

Inside one delta the fields are read in the order a message reads: reasoning, content, refusal,
tool calls. Only choice 0 is read (the Responses API has no `n`).

Parallel tool calls. The builder keeps one item open at a time, and some upstreams interleave the
fragments of parallel calls by `index`. So one call is *live* (open in the builder, its fragments
streamed as they come) and the others are *held* (fragments buffered). The live call is closed as
soon as its arguments form a whole JSON value and another call (or text) is waiting; the next held
call, in index order, then opens with its buffer as one delta and goes live. At the end every held
call is flushed in index order. An upstream that streams calls one after another (OpenAI, vLLM)
thus streams every call live; one that interleaves still gives a valid grammar and the same final
Response. Text arriving while calls are still growing is held too and said after them.

Not translated: chat `logprobs` (the builder's output_text parts carry no logprobs yet) and message
`annotations`; choices other than 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from ...ids import new_token
from ...streaming import StreamBuilder
from .profiles import ChatProfile

Json = dict[str, Any]

#: finish_reason -> (Responses status, incomplete_details.reason); anything else ends as completed.
_FINISH: dict[str, tuple[str, str | None]] = {
    "stop": ("completed", None),
    "tool_calls": ("completed", None),
    "function_call": ("completed", None),
    "length": ("incomplete", "max_output_tokens"),
    "content_filter": ("incomplete", "content_filter"),
}
#: an upstream error's code or type -> the Responses error code; anything else is a server_error.
_ERROR_CODES = {
    "rate_limit_exceeded": "rate_limit_exceeded",
    "rate_limit_error": "rate_limit_exceeded",
    "429": "rate_limit_exceeded",
    "invalid_prompt": "invalid_prompt",
}
#: where reasoning text arrives when the profile does not say.
_REASONING_FIELDS = ("reasoning_content", "reasoning")
#: OpenRouter's `reasoning_details` entries: type -> (what it says, the key holding its text).
_REASONING_DETAILS = {
    "reasoning.text": ("reasoning", "text"),
    "reasoning.summary": ("summary", "summary"),
    "reasoning.encrypted": ("encrypted", "data"),
}


@dataclass(slots=True)
class _Call:
    """One tool call as it grows; `unsent` holds the fragments the builder has not seen yet."""

    call_id: str = ""
    name: str = ""
    received: list[str] = field(default_factory=list)
    unsent: list[str] = field(default_factory=list)
    complete: bool = False  # the arguments so far form a whole JSON value
    closed: bool = False

    def add(self, fragment: str) -> None:
        self.received.append(fragment)
        tail = fragment.rstrip()
        if tail:  # a whitespace-only fragment changes nothing; parse only when a value may have ended
            self.complete = tail[-1] in "}]" and _is_json("".join(self.received))


def _is_json(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


class ChatToResponses:
    """Feeds one chat answer (chunks, or a whole completion) into a StreamBuilder."""

    def __init__(self, builder: StreamBuilder, profile: ChatProfile) -> None:
        self._builder = builder
        self._reasoning_fields = (profile.reasoning_field,) if profile.reasoning_field else _REASONING_FIELDS
        self._calls: dict[int, _Call] = {}
        self._index_by_id: dict[str, int] = {}
        self._live: int | None = None  # the call open in the builder
        self._held: list[tuple[str, str]] = []  # (kind, text) said while calls were still growing
        self._finish_reason: str | None = None
        self._usage: Json | None = None
        self._summary_kind: str | None = None  # which source fills the current summary part

    # --- the interface --------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        """Whether the upstream said how the answer ended (a finish_reason): a stream that stops without
        one was cut off, however cleanly its connection closed."""
        return self._finish_reason is not None

    def chunk(self, chunk: Json) -> list[Json]:
        """One `chat.completion.chunk` (or an `{"error": ...}` sent inside the stream)."""
        if self._builder.finished:
            return []
        if chunk.get("error"):
            return self._fail(chunk["error"])
        events: list[Json] = []
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            for kind, text in self._texts(delta):
                self._say(kind, text, events)
            for call in self._tool_call_deltas(delta):
                self._call_delta(call, events)
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
        if chunk.get("usage"):  # with include_usage: the last chunk, often with no choices
            self._usage = chunk["usage"]
        return events

    def completion(self, completion: Json) -> list[Json]:
        """A whole `chat.completion`: its message said as one delta, then the end."""
        if completion.get("error"):
            return self.chunk({"error": completion["error"]})
        choices = []
        for choice in completion.get("choices") or []:
            message = dict(choice.get("message") or {})
            if message.get("tool_calls"):
                message["tool_calls"] = [{**c, "index": i} for i, c in enumerate(message["tool_calls"])]
            choices.append({"index": choice.get("index", 0), "delta": message,
                            "finish_reason": choice.get("finish_reason")})
        return self.chunk({"choices": choices, "usage": completion.get("usage")}) + self.finish()

    def finish(self) -> list[Json]:
        """The end of the answer: held calls and text flushed, then the terminal event (once)."""
        if self._builder.finished:
            return []
        events: list[Json] = []
        self._settle(events)
        status, reason = _FINISH.get(self._finish_reason or "stop", ("completed", None))
        events += self._builder.finish(usage_of(self._usage), status=status, incomplete_reason=reason)
        return events

    # --- text, refusal, reasoning -----------------------------------------------------------

    def _texts(self, delta: Json) -> Iterator[tuple[str, str]]:
        reasoning = next((delta[f] for f in self._reasoning_fields if isinstance(delta.get(f), str)), None)
        if reasoning:
            yield "reasoning", reasoning
        elif isinstance(delta.get("reasoning_details"), list):  # sent beside `reasoning`: read one of them
            for detail in delta["reasoning_details"]:
                kind, key = _REASONING_DETAILS.get(detail.get("type"), ("", ""))
                if kind and isinstance(detail.get(key), str) and detail[key]:
                    yield kind, detail[key]
        content = delta.get("content")
        if isinstance(content, str) and content:
            yield "text", content
        elif isinstance(content, list):  # Mistral: typed chunks, thinking among them
            yield from _content_parts(content)
        if isinstance(delta.get("refusal"), str) and delta["refusal"]:
            yield "refusal", delta["refusal"]

    def _say(self, kind: str, text: str, events: list[Json]) -> None:
        if self._growing_calls():
            self._rotate(events, text_waiting=True)
            if self._growing_calls():
                self._held.append((kind, text))
                return
        events += self._emit(kind, text)

    def _emit(self, kind: str, text: str) -> list[Json]:
        b = self._builder
        if kind == "text":
            return b.text_delta(text)
        if kind == "refusal":
            return b.refusal_delta(text)
        if kind == "encrypted":
            return b.reasoning_encrypted_content(text)
        if kind == "summary":
            return self._summary(kind, text)
        # Raw chat reasoning (reasoning_content) becomes the reasoning item's summary text: OpenAI's types
        # name raw-reasoning events `response.reasoning_text.*`, the Open Responses spec names them
        # `response.reasoning.*`, and each refuses the other's; summary events are valid in both (and are
        # what LiteLLM emits for reasoning_content too). A provider's own summary and its raw reasoning
        # go to separate summary parts.
        return self._summary(kind, text)

    def _summary(self, kind: str, text: str) -> list[Json]:
        new_part = self._summary_kind is not None and self._summary_kind != kind
        self._summary_kind = kind
        return self._builder.reasoning_summary_delta(text, new_part=new_part)

    # --- tool calls -----------------------------------------------------------------------

    @staticmethod
    def _tool_call_deltas(delta: Json) -> list[Json]:
        calls = [c for c in delta.get("tool_calls") or [] if isinstance(c, dict)]
        legacy = delta.get("function_call")  # the deprecated single call: no id, no index
        if isinstance(legacy, dict):
            calls.append({"function": legacy})
        return calls

    def _call_delta(self, delta: Json, events: list[Json]) -> None:
        index = self._index_of(delta)
        call = self._calls.setdefault(index, _Call())
        call.call_id = call.call_id or delta.get("id") or ""
        function = delta.get("function") or {}
        call.name = call.name or function.get("name") or ""
        fragment = function.get("arguments") or ""
        if call.closed or not fragment:
            # A closed call's arguments were already a whole JSON value: a later fragment can only be
            # whitespace or make them invalid, and its item is done; it is dropped.
            self._rotate(events, text_waiting=False)
            return
        call.add(fragment)
        if index == self._live:
            events += self._builder.function_call(call.name, call.call_id, fragment)
        else:
            call.unsent.append(fragment)
        self._rotate(events, text_waiting=False)

    def _index_of(self, delta: Json) -> int:
        """The call a fragment belongs to; tolerant of upstreams that omit or reuse `index`."""
        call_id, raw = delta.get("id"), delta.get("index")
        owner = self._calls.get(raw) if isinstance(raw, int) else None
        if isinstance(raw, int) and not (call_id and owner and owner.call_id and owner.call_id != call_id):
            index = raw  # the index wins: some upstreams repeat one id across calls
        elif call_id:  # unnumbered, or a number another id already holds (Gemini numbers every call 0)
            index = self._index_by_id.get(call_id, max(self._calls, default=-1) + 1)
        else:  # an unnumbered continuation: the latest call
            index = max(self._calls, default=0)
        if call_id:
            self._index_by_id.setdefault(call_id, index)
        return index

    def _growing_calls(self) -> bool:
        return any(not c.closed for c in self._calls.values())

    def _next_held(self, *, ready: bool) -> int | None:
        """The lowest held call; with `ready`, only one that may open now."""
        held = sorted(i for i, c in self._calls.items() if not c.closed and i != self._live)
        if not held:
            return None
        index = held[0]
        if ready:
            before = self._calls.get(index - 1)
            # the builder needs the name; and call i opens after call i-1, even if i spoke first
            if not self._calls[index].name or (index > 0 and not (before and before.closed)):
                return None
        return index

    def _rotate(self, events: list[Json], *, text_waiting: bool) -> None:
        """Close the live call once complete and something waits; open held calls in index order."""
        while True:
            if self._live is not None:
                live = self._calls[self._live]
                waiting = text_waiting or self._next_held(ready=False) is not None
                if not (live.complete and waiting):
                    return
                self._close_live(events)
            index = self._next_held(ready=True)
            if index is None:
                return
            self._open(index, events)

    def _settle(self, events: list[Json]) -> None:
        """At the end: every held call in index order (the last left open for finish), then held text."""
        while (index := self._next_held(ready=False)) is not None:
            if self._live is not None:
                self._close_live(events)
            self._open(index, events)
        if self._held and self._live is not None:
            self._close_live(events)
        for kind, text in self._held:
            events += self._emit(kind, text)
        self._held.clear()

    def _open(self, index: int, events: list[Json]) -> None:
        call = self._calls[index]
        call.call_id = call.call_id or f"call_{new_token(12)}"  # some upstreams send no id
        self._live = index
        events += self._builder.function_call(call.name, call.call_id, "".join(call.unsent))
        call.unsent.clear()

    def _close_live(self, events: list[Json]) -> None:
        assert self._live is not None
        events += self._builder.close_item()
        self._calls[self._live].closed = True
        self._live = None

    # --- the end --------------------------------------------------------------------------

    def _fail(self, error: Any) -> list[Json]:
        if not isinstance(error, dict):
            error = {"message": str(error)}
        keys = (str(error.get(k)) for k in ("code", "type", "status") if error.get(k) is not None)
        code = next((_ERROR_CODES[k] for k in keys if k in _ERROR_CODES), "server_error")
        message = str(error.get("message") or "The upstream model failed.")
        return self._builder.fail(code, message, usage=usage_of(self._usage))


def _content_parts(parts: list[Any]) -> Iterator[tuple[str, str]]:
    for part in parts:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and part.get("text"):
            yield "text", part["text"]
        elif part.get("type") == "thinking":
            for inner in part.get("thinking") or []:
                if isinstance(inner, dict) and inner.get("text"):
                    yield "reasoning", inner["text"]


def usage_of(usage: Json | None) -> Json | None:
    """Chat usage -> Responses usage (cache and reasoning details included, 0 when not reported)."""
    if not usage:
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    output = int(usage.get("completion_tokens") or 0)
    prompt_details = usage.get("prompt_tokens_details") or {}
    output_details = usage.get("completion_tokens_details") or {}
    cached = prompt_details.get("cached_tokens") or usage.get("prompt_cache_hit_tokens") or 0  # DeepSeek
    written = (prompt_details.get("cache_write_tokens") or prompt_details.get("cache_creation_tokens")
               or usage.get("cache_creation_input_tokens") or 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": int(cached), "cache_write_tokens": int(written)},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": int(output_details.get("reasoning_tokens") or 0)},
        "total_tokens": int(usage.get("total_tokens") or prompt + output),
    }
