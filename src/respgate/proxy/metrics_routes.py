"""GET /metrics: Prometheus' text exposition of this instance's metrics (observe/metrics.py).

Metrics carry key aliases, teams and spend, so by default they are an admin route: the master key
(or an admin virtual key) as a bearer token, which Prometheus sends with `authorization:` in its scrape
config. LiteLLM serves /metrics without authentication unless `require_auth_for_metrics_endpoint` is
true; `litellm_settings.require_auth_for_metrics_endpoint: false` makes respgate do the same (the
handler is then marked `public`, and the proxy serves it without authentication).
With `prometheus` not among the callbacks, /metrics answers 404 saying how to turn it on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from ..errors import NotFoundError, RespgateError
from .auth import require_admin
from .routing import ExtraRoute

if TYPE_CHECKING:
    from ..observe.metrics import Metrics
    from .app import Proxy

_OFF = "Metrics are off: add `prometheus` to litellm_settings.callbacks to turn them on."


def routes(proxy: Proxy) -> list[ExtraRoute]:
    public = proxy.config.litellm_settings.extra.get("require_auth_for_metrics_endpoint") is False

    def metrics() -> Metrics | None:
        observe = proxy.gateway.platform.observe
        return observe.metrics if observe is not None else None

    async def scrape(request: Request) -> Response:
        if not public:
            require_admin(request.state.principal)
        found = metrics()
        if found is None:
            raise NotFoundError(_OFF, code="metrics_off")
        body, content_type = found.render()
        return Response(body, media_type=None, headers={"content-type": content_type})

    async def scrape_public(request: Request) -> Response:
        try:
            return await scrape(request)
        except RespgateError as e:
            return Response(e.to_json(), status_code=e.status, media_type="application/json")

    if public:
        scrape_public.public = True  # type: ignore[attr-defined]
        return [("/metrics", scrape_public, ["GET"]), ("/metrics/", scrape_public, ["GET"])]
    return [("/metrics", scrape, ["GET"]), ("/metrics/", scrape, ["GET"])]
