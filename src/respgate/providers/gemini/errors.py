"""Google's error body `{"error": {"code", "message", "status", "details"}}` -> the error hierarchy.

The canonical `status` decides, not the HTTP code: AI Studio answers a bad API key with HTTP 400
INVALID_ARGUMENT (reason API_KEY_INVALID), which is the gateway's credentials, not the client's
request, so it becomes a 502 like PERMISSION_DENIED and UNAUTHENTICATED.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from ...deployments import Deployment
from ...errors import (
    BadGatewayError,
    GatewayTimeoutError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    RespgateError,
    UpstreamError,
)
from ..http import without_key

#: Google's canonical status -> (error class, HTTP status)
_BY_STATUS: Final[dict[str, tuple[type[RespgateError], int]]] = {
    "RESOURCE_EXHAUSTED": (RateLimitError, 429),
    "INVALID_ARGUMENT": (InvalidRequestError, 400),
    "FAILED_PRECONDITION": (InvalidRequestError, 400),
    "OUT_OF_RANGE": (InvalidRequestError, 400),
    "NOT_FOUND": (NotFoundError, 404),
    "PERMISSION_DENIED": (BadGatewayError, 502),
    "UNAUTHENTICATED": (BadGatewayError, 502),
    "UNAVAILABLE": (UpstreamError, 503),
    "DEADLINE_EXCEEDED": (GatewayTimeoutError, 504),
    "INTERNAL": (UpstreamError, 500),
}
_CREDENTIAL_REASONS: Final = frozenset({"API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED", "ACCESS_TOKEN_EXPIRED",
                                        "CREDENTIALS_MISSING", "ACCESS_TOKEN_SCOPE_INSUFFICIENT"})
_STREAM_CODES: Final = {"RESOURCE_EXHAUSTED": "rate_limit_exceeded", "DEADLINE_EXCEEDED": "upstream_timeout"}


def _reasons(error: dict[str, Any]) -> set[str]:
    details = error.get("details")
    return {str(d.get("reason")) for d in details if isinstance(d, dict)} if isinstance(details, list) else set()


def google_error(http_status: int, raw: bytes, d: Deployment) -> RespgateError:
    """The mapped error for an HTTP error answer from Gemini, with Google's message (key redacted)."""
    raw = without_key(raw, d)  # a text body is relayed as an excerpt: the key goes before it is cut
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(parsed, list) and parsed and isinstance(parsed[0], dict):  # a stream's error, as an array
        error = parsed[0].get("error")
    if not isinstance(error, dict):
        return UpstreamError.from_body(http_status, raw, d.provider)
    status = str(error.get("status") or "")
    message = str(error.get("message") or f"Gemini returned HTTP {http_status}")
    if d.api_key:
        message = message.replace(d.api_key, "***")
    if _reasons(error) & _CREDENTIAL_REASONS:
        status = "UNAUTHENTICATED"
    cls, code = _BY_STATUS.get(status, (UpstreamError, http_status if 400 <= http_status <= 599 else 502))
    if cls is BadGatewayError:
        return BadGatewayError(f"The upstream for model `{d.model_name}` refused the gateway's credentials "
                               f"({status}): {message}", code="upstream_auth_failed")
    if cls is UpstreamError:
        return UpstreamError(message, status=code, type="server_error" if code >= 500 else "invalid_request_error",
                             code=status.lower() or None)
    return cls(message, code=status.lower() or None)


def stream_error_code(error: dict[str, Any]) -> str:
    """The `error.code` of a response.failed for an error inside a stream."""
    return _STREAM_CODES.get(str(error.get("status") or ""), "server_error")
