"""Anthropic Messages -> Responses: stream events, or one whole message, become StreamBuilder calls.

Pure translation: no I/O and no events of its own. `message()` reads a whole Message as the
events a stream of it would carry (each block started, its content as one delta, stopped), so a
JSON call and a stream of the same answer end in the same Response by construction.

Blocks -> items: `text` -> output_text of the assistant message (consecutive text blocks share
it), its `web_search_result_location` citations -> `url_citation` annotations over the block's
text; `tool_use` -> a function_call (input JSON as its arguments), or a `computer_call` when it
calls the computer tool (computer.py maps the action); `server_tool_use` + `web_search_tool_result`
-> a `web_search_call` (the query, and the result URLs as `action.sources` when the request's
`include` asks for `web_search_call.action.sources`); `thinking` -> a reasoning item,
the thinking as summary text and `SIGNATURE_PREFIX` + the signature as `encrypted_content`; `redacted_thinking` -> a
reasoning item with no summary and `REDACTED_PREFIX` + data as `encrypted_content`. Each thinking
block is its own item, so the next turn sends back exactly the blocks received.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from ...ids import new_item_id
from ...streaming import StreamBuilder
from . import computer
from .builder import WEB_SEARCH_PROGRESS, HostedToolBuilder
from .request import REDACTED_PREFIX, SIGNATURE_PREFIX

Json = dict[str, Any]

#: stop_reason -> (status, incomplete_details.reason); `refusal` also adds a refusal part.
_STOP: Final[dict[str, tuple[str, str | None]]] = {
    "end_turn": ("completed", None),
    "stop_sequence": ("completed", None),
    "tool_use": ("completed", None),
    "pause_turn": ("completed", None),  # a long server-tool turn paused; what came so far is the answer
    "refusal": ("completed", None),
    "max_tokens": ("incomplete", "max_output_tokens"),
    "model_context_window_exceeded": ("incomplete", "max_output_tokens"),
}
#: an error event's type -> the Responses error code
_ERROR_CODES: Final = {
    "rate_limit_error": "rate_limit_exceeded",
    "overloaded_error": "server_error",
    "api_error": "server_error",
    "invalid_request_error": "invalid_prompt",
}
REFUSAL_TEXT: Final = "The model declined to answer this request."


class MessagesToResponses:
    """Feeds one Anthropic answer (stream events, or a whole message) into a StreamBuilder."""

    def __init__(self, builder: StreamBuilder, *, computer_style: str | None = None,
                 cursor: computer.Cursor | None = None, sources: bool = False) -> None:
        """`computer_style`: "action" (computer_use_preview) or "actions" (OpenAI's `computer` tool) when the
        request has a computer tool; `cursor`: where the pointer was left; `sources`: list the result URLs."""
        self._builder = builder
        self._computer_style = computer_style
        self._cursor = cursor or computer.Cursor()
        self._sources = sources
        self._queries: dict[str, str] = {}  # server_tool_use id -> the query it searched for
        self._blocks: dict[int, Json] = {}  # index -> the block being streamed
        self._args: dict[int, list[str]] = {}
        self._usage: Json = {}
        self._stop_reason: str | None = None
        self._stop_details: Json | None = None

    # --- the interface --------------------------------------------------------------------

    def event(self, event: Json) -> list[Json]:
        """One stream event (its `type` says which; the SSE `event:` line repeats it)."""
        if self._builder.finished:
            return []
        handler = _HANDLERS.get(event.get("type", ""))
        return handler(self, event) if handler is not None else []  # ping, and events of the future

    def message(self, message: Json) -> list[Json]:
        """A whole Message: its blocks said as one delta each, then the end."""
        events = self.event({"type": "message_start", "message": {**message, "content": []}})
        for index, block in enumerate(message.get("content") or []):
            events += self.event({"type": "content_block_start", "index": index, "content_block": _opening(block)})
            for delta in _deltas(block):
                events += self.event({"type": "content_block_delta", "index": index, "delta": delta})
            events += self.event({"type": "content_block_stop", "index": index})
        events += self.event({"type": "message_delta", "usage": message.get("usage") or {},
                              "delta": {"stop_reason": message.get("stop_reason"),
                                        "stop_details": message.get("stop_details")}})
        return events + self.finish()

    def finish(self) -> list[Json]:
        """The end of the answer (message_stop, or a stream that ended without one): once."""
        if self._builder.finished:
            return []
        events: list[Json] = []
        if self._stop_reason == "refusal":
            category = (self._stop_details or {}).get("category")
            events += self._builder.refusal_delta(REFUSAL_TEXT + (f" ({category})" if category else ""))
        status, reason = _STOP.get(self._stop_reason or "end_turn", ("completed", None))
        return events + self._builder.finish(usage_of(self._usage), status=status, incomplete_reason=reason)

    # --- events ---------------------------------------------------------------------------

    def _message_start(self, event: Json) -> list[Json]:
        self._usage.update((event.get("message") or {}).get("usage") or {})
        return []

    def _block_start(self, event: Json) -> list[Json]:
        index, block = event.get("index", 0), event.get("content_block") or {}
        self._blocks[index] = block
        kind = block.get("type")
        if kind == "server_tool_use" or (kind == "tool_use" and self._is_computer(block)):
            self._args[index] = []  # the input is buffered: the item is made whole at the block's end
            return []
        if kind == "web_search_tool_result":
            return self._web_search_call(block)
        if kind == "text":
            block["_start"] = _text_offset(self._builder)
            block["_citations"] = list(block.get("citations") or [])
        if kind == "tool_use":
            self._args[index] = []
            return self._builder.function_call(block.get("name", ""), block.get("id", ""), "")
        if kind == "thinking":
            events = self._builder.close_item()  # a fresh reasoning item for each thinking block
            return events + self._builder.reasoning_summary_delta(block.get("thinking") or "")
        if kind == "redacted_thinking":
            events = self._builder.close_item()
            return events + self._builder.reasoning_encrypted_content(REDACTED_PREFIX + block.get("data", ""))
        if kind == "text" and block.get("text"):
            return self._builder.text_delta(block["text"])
        return []

    def _block_delta(self, event: Json) -> list[Json]:
        index, delta = event.get("index", 0), event.get("delta") or {}
        block = self._blocks.get(index, {})
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return self._builder.text_delta(delta["text"])
        if kind == "thinking_delta" and delta.get("thinking"):
            return self._builder.reasoning_summary_delta(delta["thinking"])
        if kind == "signature_delta":
            block["signature"] = block.get("signature", "") + delta.get("signature", "")
            return []
        if kind == "input_json_delta" and delta.get("partial_json"):
            self._args.setdefault(index, []).append(delta["partial_json"])
            if block.get("type") == "server_tool_use" or self._is_computer(block):
                return []
            return self._builder.function_call(block.get("name", ""), block.get("id", ""), delta["partial_json"])
        if kind == "citations_delta" and isinstance(delta.get("citation"), dict):
            block.setdefault("_citations", []).append(delta["citation"])
        return []

    def _block_stop(self, event: Json) -> list[Json]:
        block = self._blocks.pop(event.get("index", 0), {})
        kind = block.get("type")
        if kind == "server_tool_use":
            given = _json_input(self._args.pop(event.get("index", 0), None), block)
            self._queries[block.get("id", "")] = str(given.get("query") or "")
            return []
        if kind == "tool_use" and self._is_computer(block):
            given = _json_input(self._args.pop(event.get("index", 0), None), block)
            return self._computer_call(block.get("id", ""), given)
        if kind == "text" and block.get("_citations"):
            return self._annotate(block)
        if kind == "tool_use":
            if not self._args.pop(event.get("index", 0), None):  # no input streamed: an empty object
                return self._builder.function_call(block.get("name", ""), block.get("id", ""), "{}")
            return []
        if kind == "thinking":
            events = self._builder.reasoning_encrypted_content(SIGNATURE_PREFIX + block.get("signature", ""))
            return events + self._builder.close_item()
        if kind == "redacted_thinking":
            return self._builder.close_item()
        return []

    def _message_delta(self, event: Json) -> list[Json]:
        delta = event.get("delta") or {}
        self._stop_reason = delta.get("stop_reason") or self._stop_reason
        self._stop_details = delta.get("stop_details") or self._stop_details
        self._usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
        return []

    def _message_stop(self, event: Json) -> list[Json]:
        return self.finish()

    def _error(self, event: Json) -> list[Json]:
        error = event.get("error") or {}
        code = _ERROR_CODES.get(str(error.get("type")), "server_error")
        message = str(error.get("message") or "The upstream model failed.")
        return self._builder.fail(code, message, usage=usage_of(self._usage))


    # --- hosted tools ---------------------------------------------------------------------------

    def _is_computer(self, block: Json) -> bool:
        return self._computer_style is not None and block.get("name") == computer.NAME

    def _computer_call(self, call_id: str, given: Json) -> list[Json]:
        action = computer.to_openai(given, self._cursor)
        item: Json = {"id": new_item_id("cu"), "type": "computer_call", "status": "completed", "call_id": call_id,
                      "pending_safety_checks": []}
        if self._computer_style == "actions":
            item["actions"] = [action]
        else:
            item["action"] = action
        return _add_tool_item(self._builder, item, ())

    def _web_search_call(self, block: Json) -> list[Json]:
        content = block.get("content")
        results = content if isinstance(content, list) else []
        action: Json = {"type": "search", "query": self._queries.get(block.get("tool_use_id", ""), "")}
        if self._sources:
            action["sources"] = [{"type": "url", "url": r["url"]} for r in results if r.get("url")]
        failed = isinstance(content, dict)  # web_search_tool_result_error
        item = {"id": new_item_id("ws"), "type": "web_search_call", "status": "failed" if failed else "completed",
                "action": action}
        progress = WEB_SEARCH_PROGRESS[:2] if failed else WEB_SEARCH_PROGRESS
        return _add_tool_item(self._builder, item, progress)

    def _annotate(self, block: Json) -> list[Json]:
        builder = self._builder
        start, end = int(block.get("_start", 0)), _text_offset(builder)
        if not isinstance(builder, HostedToolBuilder) or end <= start:
            return []
        events: list[Json] = []
        seen: set[str] = set()
        for citation in block["_citations"]:
            url = citation.get("url")
            if citation.get("type") != "web_search_result_location" or not url or url in seen:
                continue
            seen.add(url)
            events += builder.annotate({"type": "url_citation", "end_index": end, "start_index": start,
                                        "title": citation.get("title") or "", "url": url})
        return events


def _text_offset(builder: StreamBuilder) -> int:
    return builder.text_offset() if isinstance(builder, HostedToolBuilder) else 0


def _add_tool_item(builder: StreamBuilder, item: Json, progress: tuple[str, ...]) -> list[Json]:
    if isinstance(builder, HostedToolBuilder):
        return builder.add_tool_item(item, progress)
    return builder.add_item(item)


def _json_input(chunks: list[str] | None, block: Json) -> Json:
    """A tool's streamed input (or, when none streamed, the block's own)."""
    if chunks:
        try:
            given = orjson.loads("".join(chunks))
        except orjson.JSONDecodeError:
            given = {}
    else:
        given = block.get("input") or {}
    return given if isinstance(given, dict) else {}


_HANDLERS: Final = {
    "message_start": MessagesToResponses._message_start,
    "content_block_start": MessagesToResponses._block_start,
    "content_block_delta": MessagesToResponses._block_delta,
    "content_block_stop": MessagesToResponses._block_stop,
    "message_delta": MessagesToResponses._message_delta,
    "message_stop": MessagesToResponses._message_stop,
    "error": MessagesToResponses._error,
}


def _opening(block: Json) -> Json:
    """A block as content_block_start shows it: nothing generated yet."""
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": ""}
    if kind == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    if kind in ("tool_use", "server_tool_use"):
        return {"type": kind, "id": block.get("id", ""), "name": block.get("name", ""), "input": {}}
    return block  # redacted_thinking, web_search_tool_result and others arrive whole


def _deltas(block: Json) -> list[Json]:
    kind = block.get("type")
    if kind == "text":
        citations = [{"type": "citations_delta", "citation": c} for c in block.get("citations") or ()]
        return [*citations, {"type": "text_delta", "text": block.get("text", "")}]
    if kind == "thinking":
        return [{"type": "thinking_delta", "thinking": block.get("thinking", "")},
                {"type": "signature_delta", "signature": block.get("signature", "")}]
    if kind in ("tool_use", "server_tool_use"):
        return [{"type": "input_json_delta", "partial_json": orjson.dumps(block.get("input") or {}).decode()}]
    return []


def usage_of(usage: Json) -> Json | None:
    """Anthropic usage -> Responses usage. Anthropic's `input_tokens` leave out the cached prefix
    (read or written); Responses' `input_tokens` count every input token, cached ones included."""
    if not usage:
        return None
    read = int(usage.get("cache_read_input_tokens") or 0)
    written = int(usage.get("cache_creation_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + read + written
    output = int(usage.get("output_tokens") or 0)
    details = usage.get("output_tokens_details") or {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": read, "cache_write_tokens": written},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": int(details.get("thinking_tokens")
                                                          or details.get("reasoning_tokens") or 0)},
        "total_tokens": prompt + output,
    }
