"""Cost of one routing decision (µs) for groups of 1, 10 and 100 deployments, per strategy, with the
in-memory state; and the gateway's extra cost on a plain single-deployment config (router off).

    /tmp/rg-venv/bin/python bench/router_bench.py
"""

from __future__ import annotations

import asyncio
import time

from respgate.config import Config
from respgate.deployments import Deployment, ModelRegistry
from respgate.router import Router, parse_router_settings

N = 20_000


def group(n: int, **kw: object) -> list[Deployment]:
    return [Deployment("g", "mock", f"m{i}", id=f"d{i}", **kw) for i in range(n)]  # type: ignore[arg-type]


async def per_decision(router: Router, n: int = N, previous: str | None = None) -> float:
    choose, release = router.choose, router._release
    start = time.perf_counter()
    for _ in range(n):
        release(await choose("g", previous))
    return (time.perf_counter() - start) / n * 1e6


async def main() -> None:
    print(f"{'strategy':<24}{'1':>10}{'10':>10}{'100':>10}   µs per choose()")
    cases = [("simple-shuffle", {}), ("least-busy", {}), ("latency-based-routing", {}),
             ("usage-based-routing", {}), ("simple-shuffle + rpm", {"rpm": 10**9})]
    for name, kw in cases:
        strategy = name.split(" ")[0]
        row = []
        for size in (1, 10, 100):
            router = Router(ModelRegistry(group(size, **kw)), parse_router_settings({"routing_strategy": strategy}))
            await per_decision(router, 500)  # warm-up
            row.append(await per_decision(router))
        print(f"{name:<24}" + "".join(f"{v:>10.2f}" for v in row))

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
