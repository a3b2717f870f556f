"""The ASGI application as uvicorn workers build it: the config path travels in RESPGATE_CONFIG."""

from __future__ import annotations

import os

from ..config import load_config
from ..observe import logs
from .app import Proxy

CONFIG_ENV = "RESPGATE_CONFIG"


def app_from_env() -> Proxy:
    config = load_config(os.environ.get(CONFIG_ENV) or None)
    logs.install(config)  # each worker is its own process: request ids and redaction there too
    return Proxy(config).app
