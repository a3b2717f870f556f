"""Gemini `GenerateContentResponse` (a whole answer, or each SSE chunk) -> StreamBuilder calls. Pure.

A JSON answer is fed as one chunk, so the JSON call and the stream end in the same Response by
construction. Thoughts (`thought: true` parts) become the reasoning item's summary text; each
part's `thoughtSignature` is recorded with the part it belongs to (signatures.py) in the
`encrypted_content` of a reasoning item: a call's or thought's in the open reasoning item (or a
new one) right before the call; a text part's in a reasoning item after everything else, because a
stream sends it after the text (often on an empty part) and a JSON answer on the text itself, and
both must end in the same Response.

Google Search grounding (`groundingMetadata`, sent with the last chunks) becomes, at the end, the
`url_citation` annotations of the answer's text (each grounding support's segment, its byte offsets
turned into character offsets, once per source) and then a `web_search_call` item with the queries
(and the sources when `include` asks for `web_search_call.action.sources`).
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from ...ids import new_item_id, new_token
from ...streaming import StreamBuilder
from ..anthropic.builder import WEB_SEARCH_PROGRESS, HostedToolBuilder
from . import signatures
from .errors import stream_error_code
from .signatures import Signed

__all__ = ["GeminiToResponses", "usage_of"]

Json = dict[str, Any]

#: finishReason -> (status, incomplete reason)
_FINISH: Final[dict[str, tuple[str, str | None]]] = {
    "STOP": ("completed", None),
    "FINISH_REASON_UNSPECIFIED": ("completed", None),
    "MAX_TOKENS": ("incomplete", "max_output_tokens"),
    **{reason: ("incomplete", "content_filter") for reason in (
        "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE")},
}


class GeminiToResponses:
    """Feeds one Gemini answer into a StreamBuilder."""

    def __init__(self, builder: StreamBuilder, *, sources: bool = False) -> None:
        self._builder = builder
        self._sources = sources
        self._grounding: Json | None = None  # the latest groundingMetadata: applied at the end
        self._last = ""  # the kind of item the builder has open: "reasoning", "text", "call" or ""
        self._records: list[Signed] = []  # signatures of the open reasoning item
        self._deferred: list[Signed] = []  # signatures that arrived while a message was open
        self._finish_reason: str | None = None
        self._usage: Json | None = None

    @property
    def ended(self) -> bool:
        """Whether the upstream said how the answer ended (a finishReason, or a blocked prompt): a stream
        that stops without it was cut off, however cleanly its connection closed."""
        return self._finish_reason is not None

    def chunk(self, chunk: Json) -> list[Json]:
        """One GenerateContentResponse (or an `{"error": ...}` sent inside the stream)."""
        if self._builder.finished:
            return []
        if isinstance(chunk.get("error"), dict):
            error = chunk["error"]
            return self._builder.fail(stream_error_code(error), str(error.get("message") or "Gemini failed."),
                                      usage=usage_of(self._usage))
        events: list[Json] = []
        candidates = chunk.get("candidates") or []
        candidate = candidates[0] if candidates else {}
        for part in (candidate.get("content") or {}).get("parts") or []:
            self._part(part, events)
        if isinstance(candidate.get("groundingMetadata"), dict):
            self._grounding = candidate["groundingMetadata"]
        if candidate.get("finishReason"):
            self._finish_reason = candidate["finishReason"]
        blocked = (chunk.get("promptFeedback") or {}).get("blockReason")
        if blocked:
            self._finish_reason = "SAFETY"
        if chunk.get("usageMetadata"):  # cumulative in every chunk: the last one wins
            self._usage = chunk["usageMetadata"]
        return events

    def answer(self, response: Json) -> list[Json]:
        return self.chunk(response) + self.finish()

    def finish(self) -> list[Json]:
        if self._builder.finished:
            return []
        events: list[Json] = []
        if self._grounding is not None:
            events += self._ground(self._grounding)
        if self._deferred:
            self._records = []
            self._sign(self._deferred, events)
        status, reason = _FINISH.get(self._finish_reason or "STOP", ("completed", None))
        events += self._builder.finish(usage_of(self._usage), status=status, incomplete_reason=reason)
        return events

    # --- parts ----------------------------------------------------------------------------

    def _part(self, part: Json, events: list[Json]) -> None:
        b = self._builder
        signature = part.get("thoughtSignature")
        if part.get("thought"):
            if signature:
                self._sign([Signed("thought", signature)], events)
            if part.get("text"):
                if self._last != "reasoning":
                    self._records = []
                events += b.reasoning_summary_delta(part["text"])
                self._last = "reasoning"
            return
        call = part.get("functionCall")
        if isinstance(call, dict):
            call_id = call.get("id") or f"call_{new_token(24)}"
            if signature:
                self._sign([Signed("call", signature, call_id)], events)
            events += b.function_call(call.get("name") or "", call_id, orjson.dumps(call.get("args") or {}).decode())
            self._last = "call"
            return
        if signature:  # kept for the end: a stream sends it after the text, a JSON answer with it
            self._deferred.append(Signed("text", signature))
        text = part.get("text")
        if isinstance(text, str) and text:
            events += b.text_delta(text)
            self._last = "text"

    def _ground(self, grounding: Json) -> list[Json]:
        """The citations on the text still open, then the search itself as a finished item."""
        b = self._builder
        queries = [str(q) for q in grounding.get("webSearchQueries") or []]
        chunks = [c.get("web") or {} for c in grounding.get("groundingChunks") or []]
        if not queries and not chunks:
            return []
        events: list[Json] = []
        if isinstance(b, HostedToolBuilder):
            text = b.open_text()
            for support in grounding.get("groundingSupports") or []:
                span = _char_span(text, support.get("segment") or {})
                if span is None:
                    continue
                cited = {chunks[i]["uri"]: chunks[i] for i in support.get("groundingChunkIndices") or []
                         if 0 <= i < len(chunks) and chunks[i].get("uri")}
                for web in cited.values():
                    events += b.annotate({"type": "url_citation", "end_index": span[1], "start_index": span[0],
                                          "title": web.get("title") or "", "url": web["uri"]})
        action: Json = {"type": "search", "query": queries[0] if queries else "", "queries": queries}
        if self._sources:
            action["sources"] = [{"type": "url", "url": c["uri"]} for c in chunks if c.get("uri")]
        item = {"id": new_item_id("ws"), "type": "web_search_call", "status": "completed", "action": action}
        if isinstance(b, HostedToolBuilder):
            events += b.add_tool_item(item, WEB_SEARCH_PROGRESS)
        else:
            events += b.add_item(item)
        self._last = ""
        return events

    def _sign(self, records: list[Signed], events: list[Json]) -> None:
        """Attach signatures to the open reasoning item, or to a new one."""
        if self._last != "reasoning":
            self._records = []
        self._records.extend(records)
        events += self._builder.reasoning_encrypted_content(signatures.encode(self._records))
        self._last = "reasoning"


def _char_span(text: str, segment: Json) -> tuple[int, int] | None:
    """A grounding segment's UTF-8 byte offsets as character offsets into `text` (its `text` found
    there when the offsets do not fit)."""
    raw = text.encode()
    start, end = int(segment.get("startIndex") or 0), int(segment.get("endIndex") or 0)
    if 0 <= start < end <= len(raw):
        char_start = len(raw[:start].decode("utf-8", "ignore"))
        char_end = len(raw[:end].decode("utf-8", "ignore"))
        if not segment.get("text") or text[char_start:char_end] == segment["text"]:
            return char_start, char_end
    found = text.find(segment["text"]) if segment.get("text") else -1
    return (found, found + len(segment["text"])) if found >= 0 else None


def usage_of(usage: Json | None) -> Json | None:
    """usageMetadata -> Responses usage; thoughts count in output_tokens as OpenAI counts reasoning."""
    if not usage:
        return None
    prompt = int(usage.get("promptTokenCount") or 0) + int(usage.get("toolUsePromptTokenCount") or 0)
    thoughts = int(usage.get("thoughtsTokenCount") or 0)
    output = int(usage.get("candidatesTokenCount") or 0) + thoughts
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": int(usage.get("cachedContentTokenCount") or 0),
                                 "cache_write_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": thoughts},
        "total_tokens": int(usage.get("totalTokenCount") or prompt + output),
    }
