"""The shape of the routes the platform's modules add to the proxy: (path, handler, methods).

Each path is registered as given (add the `/v1` twin yourself where OpenAI's clients use one); the
proxy wraps every handler with authentication (`request.state.principal`) and the error shape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Awaitable[Response]]
ExtraRoute = tuple[str, Handler, list[str]]
