"""Responses stream events -> `chat.completion.chunk`s, framed as Chat Completions SSE.

`ChunkTranslator.feed(event)` answers with the chunks an event becomes: the role chunk at
`response.created`, one chunk per text / refusal / reasoning delta, a tool call's opening chunk
(index, id, name) when its item is added and argument chunks after, then at the terminal event the
finish chunk and, with `stream_options.include_usage`, a usage chunk with no choices. A failed
response or an `error` event becomes an `{"error": ...}` frame, which OpenAI's clients raise.
Chunks travel as `Event`s of type "chat.completion.chunk" (or "error"), so the SDK and the proxy
carry them like Responses events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ..events import Event
from .request import ChatRequest
from .response import chat_usage, completion_id, failure, finish_reason

Json = dict[str, Any]

CHUNK = "chat.completion.chunk"
DONE_FRAME = b"data: [DONE]\n\n"

_DELTA_FIELD = {
    "response.output_text.delta": "content",
    "response.refusal.delta": "refusal",
    "response.reasoning_summary_text.delta": "reasoning_content",
    "response.reasoning_text.delta": "reasoning_content",
}
_ARGUMENT_DELTAS = {"response.function_call_arguments.delta": "arguments",
                    "response.custom_tool_call_input.delta": "input"}
_CALL_ITEMS = {"function_call": ("function", "arguments"), "custom_tool_call": ("custom", "input")}
_FINISHED = frozenset({"response.completed", "response.incomplete"})


class ChunkTranslator:
    """The per-stream state: the completion's identity and which tool call has which index."""

    def __init__(self, chat: ChatRequest) -> None:
        self._chat = chat
        self._head: Json = {}
        self._calls: dict[str, int] = {}  # item id -> tool call index
        self._sent: dict[str, int] = {}  # item id -> argument characters sent

    def feed(self, ev: Json) -> list[Json]:
        kind = ev.get("type")
        if kind == "response.created":
            self._start(ev["response"])
            return [self._chunk({"role": "assistant", "content": "", "refusal": None})]
        if kind in _DELTA_FIELD:
            logprobs = ev.get("logprobs") if kind == "response.output_text.delta" else None
            return [self._chunk({_DELTA_FIELD[kind]: ev["delta"]}, logprobs=logprobs)]
        if kind == "response.output_item.added" and ev["item"].get("type") in _CALL_ITEMS:
            return [self._call_opened(ev["item"])]
        if kind in _ARGUMENT_DELTAS and ev.get("item_id") in self._calls:
            return [self._arguments(ev["item_id"], _ARGUMENT_DELTAS[kind], ev["delta"])]
        if kind == "response.output_item.done" and ev["item"].get("id") in self._calls:
            return self._call_done(ev["item"])
        if kind in _FINISHED:
            return self._finish(ev["response"])
        if kind == "response.failed":
            return [{"error": failure(ev["response"].get("error")).to_dict()["error"]}]
        if kind == "error":
            return [{"error": failure(ev).to_dict()["error"]}]
        return []

    def _start(self, response: Json) -> None:
        self._head = {"id": completion_id(str(response.get("id") or "")), "object": CHUNK,
                      "created": int(response.get("created_at") or 0), "model": response.get("model") or "",
                      "service_tier": response.get("service_tier"), "system_fingerprint": None}

    def _chunk(self, delta: Json, *, finish: str | None = None, logprobs: list[Json] | None = None) -> Json:
        choice: Json = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        if self._chat.logprobs and logprobs is not None:
            choice["logprobs"] = {"content": logprobs, "refusal": None}
        chunk = {**self._head, "choices": [choice]}
        if self._chat.include_usage:
            chunk["usage"] = None  # OpenAI's shape: null on every chunk but the last
        return chunk

    def _call_opened(self, item: Json) -> Json:
        index = self._calls[item["id"]] = len(self._calls)
        kind, field = _CALL_ITEMS[item["type"]]
        first = item.get(field) or ""
        self._sent[item["id"]] = len(first)
        return self._chunk({"tool_calls": [{"index": index, "id": item["call_id"], "type": kind,
                                            kind: {"name": item["name"], field: first}}]})

    def _arguments(self, item_id: str, field: str, delta: str) -> Json:
        self._sent[item_id] += len(delta)
        kind = "custom" if field == "input" else "function"
        return self._chunk({"tool_calls": [{"index": self._calls[item_id], kind: {field: delta}}]})

    def _call_done(self, item: Json) -> list[Json]:
        """An upstream that sent the arguments only whole, at the end: send what is missing."""
        field = _CALL_ITEMS[item["type"]][1]
        whole = item.get(field) or ""
        rest = whole[self._sent[item["id"]]:]
        return [self._arguments(item["id"], field, rest)] if rest else []

    def _finish(self, response: Json) -> list[Json]:
        chunks = [self._chunk({}, finish=finish_reason(response, bool(self._calls)))]
        if self._chat.include_usage:
            chunks.append({**self._head, "choices": [], "usage": chat_usage(response.get("usage"))})
        return chunks


async def chat_chunks(events: AsyncIterator[Event], chat: ChatRequest) -> AsyncIterator[Event]:
    """The chunk stream of a Responses stream; ends after the finish (or error) frame."""
    translator = ChunkTranslator(chat)
    try:
        async for ev in events:
            for chunk in translator.feed(ev.obj):
                yield Event("error" if "error" in chunk else CHUNK, obj=chunk)
            if ev.is_terminal or ev.type == "error":
                return
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()


async def sse_frames(chunks: AsyncIterator[Event]) -> AsyncIterator[bytes]:
    """Chat Completions SSE: `data:` lines only, then `data: [DONE]`."""
    async for chunk in chunks:
        yield b"data: " + chunk.data + b"\n\n"
    yield DONE_FRAME
