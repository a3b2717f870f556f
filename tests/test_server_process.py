"""What `respgate serve` does to its process once started: the collector tuned (proxy/app.py `tune_gc`),
and only there -- an app embedded among others (tests, a program using the SDK) leaves it alone."""

from __future__ import annotations

import gc
from typing import Any

import httpx
import pytest

from fakes.server import ServerThread
from respgate.config import Config
from respgate.gateway import Gateway
from respgate.proxy import server
from respgate.proxy.app import GC_THRESHOLDS, Proxy
from respgate.store.memory import MemoryStore


def test_only_a_server_process_tunes_the_collector() -> None:
    old = gc.get_threshold()
    config = Config.empty()
    try:
        with ServerThread(Proxy(config, Gateway(config, MemoryStore())).app) as server:
            assert httpx.get(server.url + "/health/liveliness").status_code == 200
            assert gc.get_threshold() == old and gc.get_freeze_count() == 0
        with ServerThread(Proxy(config, Gateway(config, MemoryStore()), server_process=True).app) as server:
            assert httpx.get(server.url + "/health/liveliness").status_code == 200
            assert gc.get_threshold() == GC_THRESHOLDS
            assert gc.get_freeze_count() > 0  # what start-up made is out of the collector's sight
    finally:
        gc.unfreeze()
        gc.set_threshold(*old)


def test_serve_builds_a_server_process_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """`respgate serve`'s uvicorn factory is the one place that says the app is the whole process."""
    made: list[dict[str, Any]] = []

    class Recorder:
        def __init__(self, config: Config, **kwargs: Any) -> None:
            made.append(kwargs)
            self.app = "the app"

    monkeypatch.setattr(server, "Proxy", Recorder)
    monkeypatch.delenv(server.CONFIG_ENV, raising=False)
    assert server.app_from_env() == "the app"
    assert made == [{"server_process": True}]
