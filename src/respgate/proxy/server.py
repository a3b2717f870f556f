"""The ASGI application as uvicorn workers build it: the config path travels in RESPGATE_CONFIG."""

from __future__ import annotations

import os
from typing import Any

from ..config import Config, load_config
from ..observe import logs
from ..security.limits import ServerLimits
from ..wsmode import Limits
from .app import Proxy

CONFIG_ENV = "RESPGATE_CONFIG"
# uvicorn's httptools protocol with limits on the request head (security/http.py); by import path, as
# uvicorn hands its settings to worker processes.
HTTP_PROTOCOL = "respgate.security.http:GuardedHttpToolsProtocol"


def app_from_env() -> Any:
    config = load_config(os.environ.get(CONFIG_ENV) or None)
    logs.install(config)  # each worker is its own process: request ids and redaction there too
    return Proxy(config, server_process=True).app


def uvicorn_limits(config: Config) -> dict[str, Any]:
    """uvicorn settings from the config's server limits (`general_settings`, security/limits.py);
    raises ConfigError naming a bad key."""
    limits = ServerLimits.from_settings(config.general.extra)
    Limits.from_general(config.general)  # a bad WebSocket limit stops start-up, not the first connection
    return {"http": HTTP_PROTOCOL, "timeout_keep_alive": limits.keep_alive_timeout,
            "limit_concurrency": limits.limit_concurrency,
            "h11_max_incomplete_event_size": limits.max_header_bytes,  # the same bound should h11 be used
            # a WebSocket message may be as big as a request body (the body limit answers, not a 1009)
            "ws_max_size": max(16 * 2**20, config.general.max_request_body_bytes + 65536)}
