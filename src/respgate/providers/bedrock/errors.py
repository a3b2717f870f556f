"""Bedrock's error names -> the error hierarchy, for HTTP answers and in-stream exception events.

AWS names the error in the `x-amzn-ErrorType` header (or `__type` in the body) as `Name[:uri]`; in a
ConverseStream the exception event's member name is the same word with a lower-case first letter.
"""

from __future__ import annotations

from typing import Final

import orjson

from ...deployments import Deployment
from ...errors import (
    BadGatewayError,
    GatewayTimeoutError,
    InvalidRequestError,
    RateLimitError,
    RespgateError,
    ServiceUnavailableError,
    UpstreamError,
)

__all__ = ["bedrock_error", "error_name", "stream_error_code"]

#: Refusals of the gateway's own AWS credentials: the client can do nothing about them -> 502.
_CREDENTIAL_ERRORS: Final = frozenset({
    "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
    "ExpiredTokenException", "IncompleteSignatureException", "MissingAuthenticationTokenException",
    "InvalidClientTokenId", "SignatureDoesNotMatch",
})
#: error name -> (status, the Responses error code used when a stream fails with it).
_STATUS: Final[dict[str, tuple[int, str]]] = {
    "ThrottlingException": (429, "rate_limit_exceeded"),
    "ServiceQuotaExceededException": (429, "rate_limit_exceeded"),
    "ValidationException": (400, "invalid_prompt"),
    "ResourceNotFoundException": (404, "model_not_found"),
    "ModelNotReadyException": (503, "server_error"),
    "ServiceUnavailableException": (503, "server_error"),
    "ModelTimeoutException": (504, "server_error"),
    "ModelErrorException": (502, "server_error"),
    "ModelStreamErrorException": (500, "server_error"),
    "InternalServerException": (500, "server_error"),
}


def error_name(raw: str | None) -> str:
    """`throttlingException` / `ThrottlingException:http://...` -> `ThrottlingException`."""
    name = (raw or "").split(":", 1)[0].rsplit("#", 1)[-1].strip()
    return name[:1].upper() + name[1:]


def stream_error_code(raw: str) -> str:
    return _STATUS.get(error_name(raw), (500, "server_error"))[1]


def bedrock_error(status: int, name: str | None, body: bytes, d: Deployment) -> RespgateError:
    """The mapped error for an HTTP error answer (or an exception event before the first byte)."""
    message = _message(body) or f"Bedrock returned HTTP {status}"
    kind = error_name(name) or _body_type(body)
    if kind in _CREDENTIAL_ERRORS or status in (401, 403):
        return BadGatewayError(f"Bedrock refused the gateway's AWS credentials for model `{d.model_name}` "
                               f"({kind or status}): {message}", code="upstream_auth_failed")
    mapped = _STATUS.get(kind)
    status = mapped[0] if mapped else (status if 400 <= status <= 599 else 502)
    if status == 429:
        return RateLimitError(message)
    if status == 400:
        return InvalidRequestError(message, code=kind or None)
    if status == 503:
        return ServiceUnavailableError(message)
    if status == 504:
        return GatewayTimeoutError(message)
    return UpstreamError(message, status=status, code=kind or None,
                         type="server_error" if status >= 500 else "invalid_request_error")


def _parsed(body: bytes) -> dict[str, object]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _message(body: bytes) -> str:
    parsed = _parsed(body)
    text = parsed.get("message") or parsed.get("Message")
    if isinstance(text, str):
        return text
    return body[:300].decode("utf-8", "replace").strip()


def _body_type(body: bytes) -> str:
    kind = _parsed(body).get("__type")
    return error_name(kind) if isinstance(kind, str) else ""
