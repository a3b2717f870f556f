"""The history a turn continues: a stored chain as input items, `item_reference`s resolved against it,
and compaction for providers without their own, in OpenAI's shape (the user's messages, then one
`compaction` item) with one of two contents, both unfolded when the window is sent back:

    respgate.compaction.v2:  a summary of the history written by a model (`summary_request`): shorter
    respgate.compaction.v1:  the whole history, folded (`compact_locally`): lossless, shortens nothing
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any, Final

import orjson

from .errors import InvalidRequestError
from .ids import new_item_id
from .providers.mock import count_tokens
from .store.base import ResponseRecord

#: marks a compaction item made by `compact_locally` (any other provider's is opaque and passed on)
COMPACTION_PREFIX: Final = "respgate.compaction.v1:"
#: marks a compaction item carrying a model's summary (`compact_with_summary`)
SUMMARY_PREFIX: Final = "respgate.compaction.v2:"
_PREFIXES: Final = (COMPACTION_PREFIX, SUMMARY_PREFIX)

SUMMARY_INSTRUCTIONS: Final = (
    "You are compacting the conversation above so that it can continue in a much shorter context. Write a "
    "concise summary that keeps every fact, decision, name, number, file, tool result and open task that "
    "later turns may need, and what the assistant was about to do next. Write only the summary.")
_SUMMARY_HEADER: Final = "Summary of the earlier conversation (compacted):\n"


def chain_items(chain: list[ResponseRecord]) -> list[dict[str, Any]]:
    """A stored chain as the input items a model sees next: each turn's input, then its output."""
    items: list[dict[str, Any]] = []
    for rec in chain:
        items.extend(rec.input_items)
        items.extend(rec.response.get("output") or [])
    return items


def resolve_references(turn: list[dict[str, Any]], history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`item_reference` inputs replaced by the items they name, from the chain being continued (the
    only items a provider without its own store could mean)."""
    if not any(item.get("type") == "item_reference" for item in turn):
        return turn
    by_id = {item["id"]: item for item in history if isinstance(item.get("id"), str)}
    resolved = []
    for n, item in enumerate(turn):
        if item.get("type") != "item_reference":
            resolved.append(item)
            continue
        found = by_id.get(item.get("id"))
        if found is None:
            raise InvalidRequestError(f"Item with id '{item.get('id')}' not found.", param=f"input[{n}].id",
                                      code="item_not_found")
        resolved.append(found)
    return resolved


def compact_locally(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Compaction for providers without it, in OpenAI's shape: the user's messages, then one compaction
    item whose `encrypted_content` carries the whole history in order, so that sending the window back
    continues the session exactly (`expand_compactions`). It shortens nothing yet: a summary written by
    a model is the next step."""
    kept = [i for i in items if i.get("type") == "message" and i.get("role") == "user"]
    output: list[dict[str, Any]] = list(kept)
    if items:
        output.append({"id": new_item_id("cmp"), "type": "compaction",
                       "encrypted_content": COMPACTION_PREFIX + base64.b64encode(orjson.dumps(items)).decode()})
    tokens = count_tokens(items)
    return {
        "id": new_item_id("resp"), "object": "response.compaction", "created_at": int(time.time()),
        "output": output,
        "usage": {"input_tokens": tokens, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                  "output_tokens": count_tokens(output), "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": tokens + count_tokens(output)},
    }


def summary_request(items: list[dict[str, Any]], model: str) -> dict[str, Any]:
    """The request whose answer summarises `items` (sent through the gateway like any other)."""
    ask = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": SUMMARY_INSTRUCTIONS}]}
    return {"model": model, "input": [*items, ask], "store": False}


def compact_with_summary(items: list[dict[str, Any]], summary: dict[str, Any]) -> dict[str, Any]:
    """The compaction window for `items` from the Response that summarised them."""
    text = "".join(part.get("text", "") for item in summary.get("output") or [] if item.get("type") == "message"
                   for part in item.get("content") or [] if part.get("type") == "output_text")
    kept = [i for i in items if i.get("type") == "message" and i.get("role") == "user"]
    blob = SUMMARY_PREFIX + base64.b64encode(orjson.dumps({"summary": text})).decode()
    usage = summary.get("usage") or {}
    return {
        "id": new_item_id("resp"), "object": "response.compaction", "created_at": int(time.time()),
        "output": [*kept, {"id": new_item_id("cmp"), "type": "compaction", "encrypted_content": blob}],
        "usage": {"input_tokens": usage.get("input_tokens", 0),
                  "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0,
                                           **(usage.get("input_tokens_details") or {})},
                  "output_tokens": usage.get("output_tokens", 0),
                  "output_tokens_details": {"reasoning_tokens": 0, **(usage.get("output_tokens_details") or {})},
                  "total_tokens": usage.get("total_tokens", 0)},
    }


def has_local_compaction(items: list[dict[str, Any]]) -> bool:
    return any(item.get("type") == "compaction" and str(item.get("encrypted_content", "")).startswith(
        _PREFIXES) for item in items)


def expand_compactions(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each compaction item this gateway made, replaced by what it carries: a summary becomes a user
    message in its place; a folded history replaces it, and the window's copies of that history's user
    messages (same ids) are dropped, as the history has them in order."""
    out: list[dict[str, Any]] = []
    for n, item in enumerate(items):
        blob = item.get("encrypted_content")
        if item.get("type") != "compaction" or not isinstance(blob, str) or not blob.startswith(_PREFIXES):
            out.append(item)
            continue
        prefix = SUMMARY_PREFIX if blob.startswith(SUMMARY_PREFIX) else COMPACTION_PREFIX
        try:
            folded = orjson.loads(base64.b64decode(blob[len(prefix):], validate=True))
        except (binascii.Error, orjson.JSONDecodeError, ValueError):
            folded = None
        if prefix == SUMMARY_PREFIX:
            if not isinstance(folded, dict) or not isinstance(folded.get("summary"), str):
                raise InvalidRequestError("The compaction item's encrypted_content is not one this gateway made.",
                                          param=f"input[{n}].encrypted_content", code="invalid_value")
            out.append({"type": "message", "role": "user",
                        "content": [{"type": "input_text", "text": _SUMMARY_HEADER + folded["summary"]}]})
            continue
        if not isinstance(folded, list) or not all(isinstance(i, dict) for i in folded):
            raise InvalidRequestError("The compaction item's encrypted_content is not one this gateway made.",
                                      param=f"input[{n}].encrypted_content", code="invalid_value")
        carried = {i.get("id") for i in folded if i.get("id")}
        out = [i for i in out if i.get("id") not in carried]
        out.extend(folded)
    return out
