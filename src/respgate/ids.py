"""Opaque ids that carry routing.

A response id handed to clients is ``resp_`` + 13 hex digits of the creation time in µs +
base64url(``"<deployment id>:<upstream id>"``), so a follow-up (`previous_response_id`, GET,
DELETE, cancel) reaches the deployment that produced the response without a lookup, and the
upstream's own id is recovered exactly. Providers that hold no state (mock, bridged) get a locally
made upstream id.

The time prefix makes ids grow with time, so the store's indexes take appends instead of random
inserts: with random keys a SQLite save costs ~3x more once the table holds tens of thousands of rows.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from typing import NamedTuple

_PREFIX = "resp_"
_TIME_DIGITS = 13  # µs since the epoch in hex: fixed width (until the year 2255), so text order = time order


class ResponseRef(NamedTuple):
    deployment_id: str
    upstream_id: str


def new_token(nbytes: int = 24) -> str:
    return secrets.token_hex(nbytes)


def new_item_id(prefix: str) -> str:
    """Item ids in OpenAI's style: `msg_…`, `fc_…`, `rs_…`."""
    return f"{prefix}_{secrets.token_hex(24)}"


def encode_response_id(deployment_id: str, upstream_id: str) -> str:
    raw = f"{deployment_id}:{upstream_id}".encode()
    stamp = f"{time.time_ns() // 1000:0{_TIME_DIGITS}x}"
    return _PREFIX + stamp + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_response_id(response_id: str) -> ResponseRef | None:
    """The routing inside an id made by `encode_response_id`, or None for any other string."""
    if not response_id.startswith(_PREFIX) or len(response_id) > 512:
        return None
    stamp, body = response_id[len(_PREFIX):len(_PREFIX) + _TIME_DIGITS], response_id[len(_PREFIX) + _TIME_DIGITS:]
    if len(stamp) != _TIME_DIGITS or not all(c in "0123456789abcdef" for c in stamp):
        return None
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    deployment_id, sep, upstream_id = raw.partition(":")
    if not sep or not deployment_id or not upstream_id:
        return None
    return ResponseRef(deployment_id, upstream_id)


def new_local_response_id(deployment_id: str) -> str:
    return encode_response_id(deployment_id, f"resp_{new_token()}")
