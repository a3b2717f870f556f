"""CORS: off unless the config names the browser origins that may call the proxy.

```yaml
general_settings:
  allow_origins: ["https://app.example.com"]   # or ["*"]; absent or empty: no CORS headers at all
```

Off, no response carries an `Access-Control-*` header and a preflight (`OPTIONS`) is refused like any
other method a route does not take (405), so a browser page on another origin cannot read the API.
On, Starlette's middleware answers preflights and marks responses — the hot path's too — for the
listed origins only. Credentials mode stays off: the proxy takes keys in headers, never cookies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from ..errors import ConfigError

__all__ = ["allowed_origins", "with_cors"]

_KEY: Final = "general_settings.allow_origins"
# What a browser client may read from a response besides the safelisted headers.
EXPOSED: Final = ("x-request-id", "x-litellm-call-id", "x-litellm-response-cost", "x-litellm-model-id",
                  "retry-after")


def allowed_origins(general: Mapping[str, Any]) -> list[str]:
    raw = general.get("allow_origins")
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = raw.split(",")
    if not isinstance(raw, list) or not all(isinstance(o, str) for o in raw):
        raise ConfigError(_KEY, "expected a list of origins such as https://app.example.com, or [\"*\"]")
    return [o.strip().rstrip("/") for o in raw if o.strip()]


def with_cors(app: ASGIApp, general: Mapping[str, Any]) -> ASGIApp:
    """`app` itself when no origin is allowed; otherwise `app` behind Starlette's CORS middleware."""
    origins = allowed_origins(general)
    if not origins:
        return app
    return CORSMiddleware(app, allow_origins=origins, allow_methods=["*"], allow_headers=["*"],
                          expose_headers=EXPOSED, max_age=600)
