"""`/model/info`, `/model_group/info` and the per-deployment `/health`, in LiteLLM's shapes.

    GET /model/info, /v1/model/info      each deployment: model_name, litellm_params without
                                         credentials, model_info (id, context window, prices, flags);
                                         `?litellm_model_id=` picks one
    GET /model_group/info                each group: providers, the largest window and price, summed
                                         rpm/tpm, what any member supports; `?model_group=` picks one
    GET /health                          calls every deployment with a tiny request, all at once, each
                                         within its timeout; healthy_endpoints / unhealthy_endpoints /
                                         counts, with the router's cooldown state; `?model=` / `?model_id=`

A key that may use only some groups sees only those. Nothing here shows a credential: litellm_params
leave out every field named like one, and an api_base loses its user info and query. `/health/readiness`
(in app.py) stays cheap; this `/health` costs one upstream call per deployment, as LiteLLM's does.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..calls import Principal
from ..deployments import Deployment
from ..errors import RespgateError
from ..router import Router
from .routing import ExtraRoute

if TYPE_CHECKING:
    from ..gateway import Gateway
    from .app import Proxy

DEFAULT_HEALTH_TIMEOUT: Final = 60.0  # seconds, LiteLLM's; `model_info.health_check_timeout` overrides it
HEALTH_PROBE: Final = "ping"
# Who a health probe runs as: an admin without a key, so no key's limits or budget pay for it.
HEALTH_PRINCIPAL: Final = Principal("", is_admin=True, key_alias="respgate-health-check")

_SECRET_NAME = re.compile(r"key|secret|passw|credential|token$|_token_|^token|auth|header|cookie|signature")
_MODEL_INFO_FLAGS: Final = ("supports_function_calling", "supports_parallel_function_calling", "supports_vision",
                            "supports_response_schema", "supports_reasoning", "supports_prompt_caching",
                            "supports_system_messages", "supports_tool_choice", "supports_web_search",
                            "supports_pdf_input", "supports_audio_input", "supports_audio_output")
_DEFAULT_MODE: Final = "chat"  # every model answers /v1/chat/completions as well as /v1/responses


def routes(proxy: Proxy) -> list[ExtraRoute]:
    from .app import json_response

    gateway = proxy.gateway

    async def model_info(request: Request) -> Response:
        wanted = request.query_params.get("litellm_model_id") or request.query_params.get("model_id")
        data = [deployment_info(d) for d in visible(gateway, request.state.principal)
                if wanted is None or d.id == wanted]
        return json_response({"data": data})

    async def group_info(request: Request) -> Response:
        wanted = request.query_params.get("model_group")
        groups: dict[str, list[Deployment]] = {}
        for d in visible(gateway, request.state.principal):
            if "*" not in d.model_name and (wanted is None or d.model_name == wanted):
                groups.setdefault(d.model_name, []).append(d)
        return json_response({"data": [group_summary(name, members) for name, members in groups.items()]})

    async def health(request: Request) -> Response:
        q = request.query_params
        targets = [d for d in visible(gateway, request.state.principal) if "*" not in d.model_name]
        if q.get("model_id"):
            targets = [d for d in targets if d.id == q["model_id"]]
        elif q.get("model"):
            targets = [d for d in targets if q["model"] in (d.model_name, f"{d.provider}/{d.upstream_model}")]
        return json_response(await check_health(gateway, targets))

    return [
        ("/model/info", model_info, ["GET"]),
        ("/v1/model/info", model_info, ["GET"]),
        ("/model_group/info", group_info, ["GET"]),
        ("/v1/model_group/info", group_info, ["GET"]),
        ("/health", health, ["GET"]),
    ]


def visible(gateway: Gateway, principal: Principal) -> list[Deployment]:
    """The configured deployments whose group the caller may use (`Principal.models`: group names, access
    groups already expanded, and `prefix/*` wildcards)."""
    allowed = principal.models
    if allowed is None or principal.is_admin:
        return list(gateway.registry.deployments)
    prefixes = tuple(m[:-1] for m in allowed if m.endswith("*"))
    return [d for d in gateway.registry.deployments if d.model_name in allowed or d.model_name.startswith(prefixes)]


# -- /model/info ---------------------------------------------------------------------------------------

def deployment_info(d: Deployment) -> dict[str, Any]:
    info: dict[str, Any] = {
        "id": d.id, "db_model": False, "key": d.upstream_model,
        "max_tokens": None, "max_input_tokens": None, "max_output_tokens": None,
        **_prices(d),
        "litellm_provider": d.provider, "mode": _DEFAULT_MODE, "tpm": d.tpm, "rpm": d.rpm,
        **dict.fromkeys(_MODEL_INFO_FLAGS),
    }
    info.update(d.model_info)  # what the config says about the deployment wins, as in LiteLLM
    info["id"] = d.id
    return {"model_name": d.model_name, "litellm_params": public_params(d), "model_info": info}


def public_params(d: Deployment) -> dict[str, Any]:
    """litellm_params as configured, without anything that could be a credential."""
    params: dict[str, Any] = {"model": f"{d.provider}/{d.upstream_model}"}
    if d.api_base:
        params["api_base"] = public_url(d.api_base)
    if d.api_version:
        params["api_version"] = d.api_version
    for name, value in (("timeout", d.timeout), ("max_retries", d.max_retries or None), ("rpm", d.rpm),
                        ("tpm", d.tpm)):
        if value is not None:
            params[name] = value
    params.update((k, v) for k, v in d.extra.items() if not is_secret(k))
    return params


def is_secret(name: str) -> bool:
    lowered = name.lower()
    if "cost" in lowered or lowered.startswith("max_"):  # input_cost_per_token, max_tokens: not secrets
        return False
    return _SECRET_NAME.search(lowered) is not None


def public_url(url: str) -> str:
    """An api_base without user info, query or fragment (where a key could hide)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host + (f":{port}" if port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _prices(d: Deployment) -> dict[str, float | None]:
    from ..spend.prices import token_prices

    p = token_prices(d)
    if p is None:
        return dict.fromkeys(("input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost",
                              "cache_creation_input_token_cost", "output_cost_per_reasoning_token"))
    return {"input_cost_per_token": p.input, "output_cost_per_token": p.output,
            "cache_read_input_token_cost": p.cached_input, "cache_creation_input_token_cost": p.cache_write,
            "output_cost_per_reasoning_token": p.reasoning}


# -- /model_group/info ---------------------------------------------------------------------------------

def group_summary(name: str, members: list[Deployment]) -> dict[str, Any]:
    infos = [deployment_info(d)["model_info"] for d in members]
    return {
        "model_group": name,
        "providers": sorted({d.provider for d in members}),
        "max_input_tokens": _largest(i.get("max_input_tokens") for i in infos),
        "max_output_tokens": _largest(i.get("max_output_tokens") for i in infos),
        "input_cost_per_token": _largest(i.get("input_cost_per_token") for i in infos),
        "output_cost_per_token": _largest(i.get("output_cost_per_token") for i in infos),
        "mode": infos[0].get("mode") or _DEFAULT_MODE,
        "tpm": _total(d.tpm for d in members),
        "rpm": _total(d.rpm for d in members),
        **{flag: any(i.get(flag) is True for i in infos) for flag in _MODEL_INFO_FLAGS},
        "supported_openai_params": None,
        "configurable_clientside_auth_params": None,
    }


def _numbers(values: Iterable[Any]) -> list[float]:
    return [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]


def _largest(values: Iterable[Any]) -> Any:
    found = _numbers(values)
    return max(found) if found else None


def _total(values: Iterable[Any]) -> Any:
    found = _numbers(values)
    return sum(found) if found else None


# -- /health -------------------------------------------------------------------------------------------

async def check_health(gateway: Gateway, targets: list[Deployment]) -> dict[str, Any]:
    """Every target called at once; each endpoint carries the router's view (cooling down or not)."""
    router: Router = gateway.router
    snap = await router.state.snapshot([d.id for d in targets], usage=False, latency=False)
    errors = await asyncio.gather(*(probe(gateway, d) for d in targets))
    healthy, unhealthy = [], []
    for d, error in zip(targets, errors, strict=True):
        endpoint = _endpoint(d, snap.cooling.get(d.id))
        if error is None:
            healthy.append(endpoint)
        else:
            endpoint["error"] = error
            unhealthy.append(endpoint)
    return {"healthy_endpoints": healthy, "unhealthy_endpoints": unhealthy,
            "healthy_count": len(healthy), "unhealthy_count": len(unhealthy)}


async def probe(gateway: Gateway, d: Deployment) -> str | None:
    """One tiny, unstored request straight to `d` (no routing, retries or fallbacks); None when it answered."""
    body = {"model": d.model_name, "input": HEALTH_PROBE, "max_output_tokens": 16, "store": False}
    limit = _timeout(d)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(limit):
            raw = await gateway.create(body, HEALTH_PRINCIPAL, d)
    except TimeoutError:
        return f"Timeout exceeded: no answer within {limit:g}s."
    except RespgateError as e:  # messages never carry credentials (errors.py)
        return f"{e.status} {e.message}"
    except Exception as e:  # a bug in one adapter must not hide the others' health
        return f"{type(e).__name__} after {time.perf_counter() - started:.1f}s"
    answer = orjson.loads(raw)
    if isinstance(answer, dict) and answer.get("status") == "failed":  # answered, but could not respond
        error = answer.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        return f"response failed: {message or 'no reason given'}"
    return None


def _timeout(d: Deployment) -> float:
    value = d.model_info.get("health_check_timeout")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return DEFAULT_HEALTH_TIMEOUT


def _endpoint(d: Deployment, cooling: float | None) -> dict[str, Any]:
    endpoint: dict[str, Any] = {"model": f"{d.provider}/{d.upstream_model}", "model_name": d.model_name,
                                "model_id": d.id, "custom_llm_provider": d.provider}
    if d.api_base:
        endpoint["api_base"] = public_url(d.api_base)
    if d.api_version:
        endpoint["api_version"] = d.api_version
    for name, value in (("rpm", d.rpm), ("tpm", d.tpm)):
        if value is not None:
            endpoint[name] = value
    endpoint["cooling_down"] = cooling is not None
    if cooling is not None:
        endpoint["cooldown_seconds_left"] = round(cooling, 1)
    return endpoint
