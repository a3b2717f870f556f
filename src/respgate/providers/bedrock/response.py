"""Converse -> Responses: ConverseStream events, or one whole Converse answer, become StreamBuilder calls.

Pure translation. `output()` replays a whole answer as the very events a stream of it carries
(each block: start, one delta, stop; then messageStop and metadata), so JSON and stream agree by
construction. Converse streams blocks one after another, which is the builder's own model: a text
block continues the open message; a reasoning or toolUse block is an item of its own, closed at
its contentBlockStop.

Reasoning text becomes summary text (see streaming.py on why); the signature, or the redacted blob,
goes into `encrypted_content` under a prefix (request.py sends it back exactly on the next turn).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

from ...streaming import StreamBuilder
from .errors import stream_error_code
from .request import REDACTED_PREFIX, SIGNATURE_PREFIX

__all__ = ["ConverseToResponses", "usage_of"]

Json = dict[str, Any]

#: stopReason -> (status, incomplete_details.reason); None: the answer failed.
STOP_REASONS: Final[dict[str, tuple[str, str | None] | None]] = {
    "end_turn": ("completed", None),
    "tool_use": ("completed", None),
    "stop_sequence": ("completed", None),
    "max_tokens": ("incomplete", "max_output_tokens"),
    "model_context_window_exceeded": ("incomplete", "max_output_tokens"),
    "guardrail_intervened": ("incomplete", "content_filter"),
    "content_filtered": ("incomplete", "content_filter"),
    "malformed_model_output": None,
    "malformed_tool_use": None,
}


@dataclass(slots=True)
class _Block:
    kind: str  # "text", "tool", "reasoning"
    call_id: str = ""
    name: str = ""
    signature: str = ""


def usage_of(usage: Json | None) -> Json | None:
    """Converse token usage -> Responses usage; Converse's inputTokens leave the cached ones out."""
    if not usage:
        return None
    cached = int(usage.get("cacheReadInputTokens") or 0)
    written = int(usage.get("cacheWriteInputTokens") or 0)
    inputs = int(usage.get("inputTokens") or 0) + cached + written
    outputs = int(usage.get("outputTokens") or 0)
    return {"input_tokens": inputs,
            "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
            "output_tokens": outputs, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": inputs + outputs}


class ConverseToResponses:
    """Feeds one Converse answer (stream events, or the whole answer) into a StreamBuilder."""

    def __init__(self, builder: StreamBuilder) -> None:
        self._builder = builder
        self._blocks: dict[int, _Block] = {}
        self._stop_reason: str | None = None
        self._usage: Json | None = None

    @property
    def ended(self) -> bool:
        """Whether messageStop arrived: a stream that stops without it was cut off, however cleanly."""
        return self._stop_reason is not None

    def event(self, name: str, payload: Json) -> list[Json]:
        """One ConverseStream event (by its `:event-type`); exception events end the stream failed."""
        if self._builder.finished:
            return []
        handle = _HANDLERS.get(name)
        if handle is not None:
            return handle(self, payload)
        if name.lower().endswith("exception"):
            return self.fail(name, str(payload.get("message") or payload.get("Message") or name))
        return []  # an event type newer than this code: nothing to say

    def output(self, answer: Json) -> list[Json]:
        """A whole Converse answer, said through the stream events it stands for, then the end."""
        events: list[Json] = []
        message = (answer.get("output") or {}).get("message") or {}
        for index, block in enumerate(message.get("content") or []):
            for name, payload in _block_events(index, block):
                events += self.event(name, payload)
        events += self.event("messageStop", {"stopReason": answer.get("stopReason", "end_turn")})
        events += self.event("metadata", {"usage": answer.get("usage") or {}})
        return events + self.finish()

    def finish(self) -> list[Json]:
        """The terminal event (once), from the stop reason and usage seen."""
        if self._builder.finished:
            return []
        usage = usage_of(self._usage)
        outcome = STOP_REASONS.get(self._stop_reason or "end_turn", ("completed", None))
        if outcome is None:
            return self._builder.fail("server_error", f"The model stopped with '{self._stop_reason}'.", usage=usage)
        status, reason = outcome
        return self._builder.finish(usage, status=status, incomplete_reason=reason)

    def fail(self, exception: str, message: str) -> list[Json]:
        if self._builder.finished:
            return []
        return self._builder.fail(stream_error_code(exception), message, usage=usage_of(self._usage))

    # --- events ---------------------------------------------------------------------------

    def _start(self, payload: Json) -> list[Json]:
        tool = (payload.get("start") or {}).get("toolUse")
        if not tool:
            return []
        block = _Block("tool", call_id=tool["toolUseId"], name=tool["name"])
        self._blocks[payload.get("contentBlockIndex", 0)] = block
        return self._builder.function_call(block.name, block.call_id, "")

    def _delta(self, payload: Json) -> list[Json]:
        index = payload.get("contentBlockIndex", 0)
        delta = payload.get("delta") or {}
        b = self._builder
        if "text" in delta:
            self._blocks.setdefault(index, _Block("text"))
            return b.text_delta(delta["text"])
        if "toolUse" in delta:
            block = self._blocks.get(index) or _Block("tool")
            return b.function_call(block.name, block.call_id, delta["toolUse"].get("input") or "")
        thought = delta.get("reasoningContent")
        if thought is None:
            return []  # citations and other block kinds Responses has no place for
        block = self._blocks.setdefault(index, _Block("reasoning"))
        events: list[Json] = []
        if thought.get("text"):
            events += b.reasoning_summary_delta(thought["text"])
        if thought.get("signature"):
            block.signature += thought["signature"]
            events += b.reasoning_encrypted_content(SIGNATURE_PREFIX + block.signature)
        if thought.get("redactedContent"):
            events += b.reasoning_encrypted_content(REDACTED_PREFIX + thought["redactedContent"])
        return events

    def _stop(self, payload: Json) -> list[Json]:
        block = self._blocks.get(payload.get("contentBlockIndex", 0))
        if block is not None and block.kind != "text":
            return self._builder.close_item()
        return []

    def _message_stop(self, payload: Json) -> list[Json]:
        self._stop_reason = payload.get("stopReason")
        return []

    def _metadata(self, payload: Json) -> list[Json]:
        self._usage = payload.get("usage")
        return []


_HANDLERS: Final = {
    "messageStart": lambda t, p: [],
    "contentBlockStart": ConverseToResponses._start,
    "contentBlockDelta": ConverseToResponses._delta,
    "contentBlockStop": ConverseToResponses._stop,
    "messageStop": ConverseToResponses._message_stop,
    "metadata": ConverseToResponses._metadata,
}


def _block_events(index: int, block: Json) -> list[tuple[str, Json]]:
    """The stream events one whole content block stands for."""
    where = {"contentBlockIndex": index}
    if "toolUse" in block:
        tool = block["toolUse"]
        return [("contentBlockStart", {**where, "start": {"toolUse": {"toolUseId": tool["toolUseId"],
                                                                     "name": tool["name"]}}}),
                ("contentBlockDelta", {**where, "delta": {"toolUse": {
                    "input": orjson.dumps(tool.get("input") or {}).decode()}}}),
                ("contentBlockStop", where)]
    if "text" in block:
        return [("contentBlockDelta", {**where, "delta": {"text": block["text"]}}), ("contentBlockStop", where)]
    thought = block.get("reasoningContent")
    if thought is None:
        return []
    deltas: list[Json] = []
    text = thought.get("reasoningText") or {}
    if text.get("text"):
        deltas.append({"text": text["text"]})
    if text.get("signature"):
        deltas.append({"signature": text["signature"]})
    if thought.get("redactedContent"):
        deltas.append({"redactedContent": thought["redactedContent"]})
    return [*(("contentBlockDelta", {**where, "delta": {"reasoningContent": d}}) for d in deltas),
            ("contentBlockStop", where)]
