"""The history a turn continues: a stored chain as input items, `item_reference`s resolved against it,
and compaction for providers without their own (a window that folds the history into one item and
unfolds it again when sent back)."""

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


def has_local_compaction(items: list[dict[str, Any]]) -> bool:
    return any(item.get("type") == "compaction" and str(item.get("encrypted_content", "")).startswith(
        COMPACTION_PREFIX) for item in items)


def expand_compactions(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each compaction item `compact_locally` made, replaced by the history it carries; the window's
    copies of that history's user messages (same ids) are dropped, as the history has them in order."""
    out: list[dict[str, Any]] = []
    for n, item in enumerate(items):
        blob = item.get("encrypted_content")
        if item.get("type") != "compaction" or not isinstance(blob, str) or not blob.startswith(COMPACTION_PREFIX):
            out.append(item)
            continue
        try:
            folded = orjson.loads(base64.b64decode(blob[len(COMPACTION_PREFIX):], validate=True))
        except (binascii.Error, orjson.JSONDecodeError, ValueError):
            folded = None
        if not isinstance(folded, list) or not all(isinstance(i, dict) for i in folded):
            raise InvalidRequestError("The compaction item's encrypted_content is not one this gateway made.",
                                      param=f"input[{n}].encrypted_content", code="invalid_value")
        carried = {i.get("id") for i in folded if i.get("id")}
        out = [i for i in out if i.get("id") not in carried]
        out.extend(folded)
    return out
