"""The platform around the request path: virtual keys and their limits (keys/), cost and spend logs
(spend/), metrics, traces and callbacks (observe/), guardrails (guardrails/).

Each part is built from the config and may be absent; the ones present are the gateway's call hooks,
in this order: spend (prices the call first, so the others see `call.cost`), keys, guardrails,
observe. Every part owns its tables in the database the responses live in, through its own
connections (`store.factory.DatabaseTarget`).
"""

from __future__ import annotations

from typing import Protocol

from .calls import Call, CallHook, Hooks
from .config import Config
from .store.factory import DatabaseTarget


class Part(CallHook, Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...


class Platform:
    def __init__(self, config: Config, database: DatabaseTarget | None = None, *, sdk: bool = False) -> None:
        from . import guardrails, keys, observe, spend

        self.database = database or DatabaseTarget("memory")
        self.keys: keys.KeyManager | None = keys.build(config, self.database)
        self.spend: spend.SpendTracker | None = spend.build(config, self.database, self.keys)
        self.guardrails: guardrails.Guardrails | None = guardrails.build(config)
        # The SDK always observes: `respgate.callbacks` may be filled at any time.
        self.observe: observe.Observability | None = observe.build(config, sdk=sdk)
        self.parts: list[Part] = [p for p in (self.spend, self.keys, self.guardrails, self.observe) if p is not None]
        self.hooks = Hooks(self.parts)

    async def start(self) -> None:
        for p in self.parts:
            await p.start()

    async def close(self) -> None:
        for p in reversed(self.parts):
            await p.close()


__all__ = ["Call", "Platform"]
