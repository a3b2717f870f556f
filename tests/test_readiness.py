"""/health/readiness tells a load balancer whether the store answers; liveliness only that the process does."""

from __future__ import annotations

import httpx

from fakes.server import ServerThread
from respgate.config import Config
from respgate.errors import ServiceUnavailableError
from respgate.gateway import Gateway
from respgate.proxy.app import Proxy
from respgate.store.base import ResponseRecord
from respgate.store.memory import MemoryStore


class FlakyStore(MemoryStore):
    down = False

    async def get(self, response_id: str) -> ResponseRecord | None:
        if self.down:
            raise ServiceUnavailableError("The response store is unavailable.")
        return await super().get(response_id)


def test_readiness_follows_the_store() -> None:
    store = FlakyStore()
    config = Config.empty()
    with ServerThread(Proxy(config, Gateway(config, store)).app) as server:
        assert httpx.get(server.url + "/health/readiness").json() == {"status": "healthy", "db": "connected"}
        store.down = True
        r = httpx.get(server.url + "/health/readiness")
        assert r.status_code == 503 and r.json()["db"] == "unavailable"
        assert httpx.get(server.url + "/health/liveliness").status_code == 200
        store.down = False
        assert httpx.get(server.url + "/health/readiness").status_code == 200
