"""The one error hierarchy of respgate.

Every failure a client can see is a `RespgateError`, rendered in OpenAI's shape
``{"error": {"message", "type", "param", "code"}}`` with the matching HTTP status::

    RespgateError                     base; status 500, type "server_error" (a bug, never input)
    ├── InvalidRequestError           400  bad JSON, missing/wrong-typed field, unsupported value
    ├── AuthenticationError           401  missing or unknown key
    ├── PermissionDeniedError         403  key not allowed to use a model or route
    ├── NotFoundError                 404  unknown model, response id, or another key's response
    ├── RequestTimeoutError           408  the client did not send its request in time (connection closed)
    ├── ConflictError                 409  e.g. cancelling a response that is not background
    ├── RequestTooLargeError          413  body over the configured limit
    ├── RateLimitError                429  limits, or an upstream 429 relayed
    ├── UpstreamError                 the upstream's own status and message, relayed as they were
    ├── BadGatewayError               502  upstream unreachable, reset, or answered garbage
    ├── ServiceUnavailableError       503  store unavailable, shutting down
    └── GatewayTimeoutError           504  upstream did not answer in time

`ConfigError` is separate: it stops start-up and names the offending key; clients never see it.
"""

from __future__ import annotations

from typing import Any

import orjson


class RespgateError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        self.headers = headers or {}

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


class InvalidRequestError(RespgateError):
    status = 400
    type = "invalid_request_error"


class AuthenticationError(RespgateError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDeniedError(RespgateError):
    status = 403
    type = "invalid_request_error"
    code = "permission_denied"


class NotFoundError(RespgateError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ConflictError(RespgateError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class RequestTooLargeError(RespgateError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimitError(RespgateError):
    status = 429
    type = "rate_limit_exceeded"
    code = "rate_limit_exceeded"


class UpstreamError(RespgateError):
    """An error answer from the upstream, relayed with its own status, type and message."""

    type = "upstream_error"

    @classmethod
    def from_body(cls, status: int, body: bytes, provider: str) -> UpstreamError:
        """Keep the upstream's error fields when the body is OpenAI-shaped; otherwise a short excerpt."""
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        err = parsed.get("error") if isinstance(parsed, dict) else None
        if isinstance(err, dict):
            message = str(err.get("message") or f"{provider} returned HTTP {status}")
            param = err.get("param") if isinstance(err.get("param"), str) else None
            code = err.get("code") if isinstance(err.get("code"), str) else None
            etype = err.get("type") if isinstance(err.get("type"), str) else None
        else:
            excerpt = body[:300].decode("utf-8", "replace").strip()
            message = f"{provider} returned HTTP {status}" + (f": {excerpt}" if excerpt else "")
            param = code = etype = None
        if status < 400 or status > 599:
            status = 502
        return cls(message, param=param, code=code, status=status, type=etype or _type_for_status(status))


class BadGatewayError(RespgateError):
    status = 502
    type = "upstream_error"
    code = "bad_gateway"


class ServiceUnavailableError(RespgateError):
    status = 503
    type = "server_error"
    code = "service_unavailable"


class GatewayTimeoutError(RespgateError):
    status = 504
    type = "timeout"
    code = "upstream_timeout"


class ConfigError(Exception):
    """An invalid config: start-up stops with this message, which names the key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"config error at {key}: {message}")
        self.key = key


_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
}


def _type_for_status(status: int) -> str:
    return _STATUS_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


class RequestTimeoutError(RespgateError):
    """The client did not send the whole request in time (a slow or stalled upload); the connection closes."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"
