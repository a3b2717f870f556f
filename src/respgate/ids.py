"""Opaque ids that carry routing.

A response id handed to clients is ``resp_`` + base64url(``"<deployment id>:<upstream id>"``), so
a follow-up (`previous_response_id`, GET, DELETE, cancel) reaches the deployment that produced
the response without a lookup, and the upstream's own id is recovered exactly. Providers that
hold no state (mock, bridged) get a locally made upstream id.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import NamedTuple

_PREFIX = "resp_"


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
    return _PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_response_id(response_id: str) -> ResponseRef | None:
    """The routing inside an id made by `encode_response_id`, or None for any other string."""
    if not response_id.startswith(_PREFIX) or len(response_id) > 512:
        return None
    body = response_id[len(_PREFIX):]
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
