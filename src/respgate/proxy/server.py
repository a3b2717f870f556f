"""The ASGI application as uvicorn workers build it: the config path travels in RESPGATE_CONFIG."""

from __future__ import annotations

import os

from ..config import load_config
from .app import Proxy

CONFIG_ENV = "RESPGATE_CONFIG"


def app_from_env() -> Proxy:
    return Proxy(load_config(os.environ.get(CONFIG_ENV) or None)).app
