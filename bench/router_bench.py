"""Cost of one routing decision (µs) for groups of 1, 10 and 100 deployments, per strategy, with the
in-memory state; the same with a tenth of the group cooling down, with tag filtering, and with
context-window pre-call checks; and the gateway's extra cost on a plain single-deployment config (router off).

    /tmp/rg-venv/bin/python bench/router_bench.py
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from respgate.config import Config
from respgate.deployments import Deployment, ModelRegistry
from respgate.router import Router, parse_router_settings

N = 20_000


def group(n: int, **kw: object) -> list[Deployment]:
    return [Deployment("g", "mock", f"m{i}", id=f"d{i}", **kw) for i in range(n)]  # type: ignore[arg-type]


async def per_decision(router: Router, n: int = N, previous: str | None = None, **kw: Any) -> float:
    choose, release = router.choose, router._release
    start = time.perf_counter()
    for _ in range(n):
        release(await choose("g", previous, **kw))
    return (time.perf_counter() - start) / n * 1e6


async def row(name: str, settings: dict[str, Any], deployment: dict[str, Any], *, cooling: bool = False,
              **choose: Any) -> None:
    figures = []
    for size in (1, 10, 100):
        router = Router(ModelRegistry(group(size, **deployment)), parse_router_settings(settings))
        if cooling:  # a tenth of the group (never the last one) after failures
            for i in range(size // 10):
                await router.state.record_failure(f"d{i}", 0, 3600)
        await per_decision(router, 500, **choose)  # warm-up
        figures.append(await per_decision(router, **choose))
    print(f"{name:<32}" + "".join(f"{v:>10.2f}" for v in figures))


async def main() -> None:
    print(f"{'case':<32}{'1':>10}{'10':>10}{'100':>10}   µs per choose()")
    for strategy in ("simple-shuffle", "least-busy", "latency-based-routing", "usage-based-routing",
                     "cost-based-routing"):
        await row(strategy, {"routing_strategy": strategy}, {})
    await row("simple-shuffle + rpm", {}, {"rpm": 10**9})
    await row("simple-shuffle, 10% cooling", {}, {}, cooling=True)
    await row("least-busy, 10% cooling", {"routing_strategy": "least-busy"}, {}, cooling=True)
    await row("simple-shuffle + tag filtering", {"enable_tag_filtering": True}, {"extra": {"tags": ["t"]}},
              tags=("t",))
    await row("simple-shuffle + pre-call checks", {"enable_pre_call_checks": True},
              {"model_info": {"max_input_tokens": 1000}}, tokens=500)

    # The gateway's own check on a plain config: router off, one registry lookup as before.
    config = Config(deployments=group(1), router_settings={}, general=Config.empty().general,
                    litellm_settings=Config.empty().litellm_settings, source="bench")
    router = Router(ModelRegistry(config.deployments), parse_router_settings({}))
    body = {"model": "g", "input": "hi"}
    start = time.perf_counter()
    for _ in range(N * 10):
        router.takes(body)
    takes = (time.perf_counter() - start) / (N * 10) * 1e6
    print(f"\nrouter off (plain config): takes() = {takes * 1000:.0f} ns per request, engaged={router.engaged}")


if __name__ == "__main__":
    asyncio.run(main())
