"""Gemini thought signatures carried across turns inside a reasoning item's `encrypted_content`.

Gemini signs the parts of an answer (`thoughtSignature`): the first function call of a step, the
last text part, sometimes a thought. A follow-up turn must send each signature back on the part it
came with, or Gemini 2.5/3 refuse the function-call continuation. The Responses items have no
place for a per-part signature, so the reasoning item of a model turn carries them all, each with
the part it belongs to: a function call by its `call_id`, the turn's text, or a thought. The
request side puts them back on the matching parts of the same model turn.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Final

import orjson

#: Marks our blobs; a reasoning item from another provider has none and is not sent to Gemini.
PREFIX: Final = "gemini.sig.v1."

#: Gemini's documented stand-in for a call it did not make (e.g. turn 1 came from another provider).
SKIP_VALIDATION: Final = "skip_thought_signature_validator"


@dataclass(frozen=True, slots=True)
class Signed:
    """One signature and the part it belongs to: kind "call" (with its call_id), "text" or "thought"."""

    kind: str
    signature: str
    call_id: str = ""


def encode(records: list[Signed]) -> str:
    rows = [[r.kind, r.signature, r.call_id] for r in records]
    return PREFIX + base64.urlsafe_b64encode(orjson.dumps(rows)).decode()


def decode(blob: object) -> list[Signed] | None:
    """The records of one of our blobs; None for anything else (another provider's reasoning)."""
    if not isinstance(blob, str) or not blob.startswith(PREFIX):
        return None
    try:
        rows = orjson.loads(base64.urlsafe_b64decode(blob[len(PREFIX):]))
    except (ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(rows, list):
        return None
    return [Signed(str(r[0]), str(r[1]), str(r[2])) for r in rows if isinstance(r, list) and len(r) == 3]
