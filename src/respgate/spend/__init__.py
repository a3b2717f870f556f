"""Cost of each call from a maintained price table, spend logs, spend reports.

- prices.py  USD per token for a deployment: its own `model_info` / `litellm_params` pricing, else the
             bundled `genai-prices` table; floats, cached per deployment
- cost.py    `cost_of(deployment, usage)`: a Responses usage priced, each token counted once
- rows.py    one spend-log row per call (a tuple) and its LiteLLM-shaped reading
- store.py   the backend interface, filters, report grouping and the shared SQL
- backends.py memory / SQLite / PostgreSQL, each on its own connection(s)
- tracker.py `SpendTracker`, the call hook: `call.cost`, then a row queued for the batch writer
- reports.py what /spend/logs, /spend/report and LiteLLM's /global/spend/* answer (HTTP-free)

Settings (LiteLLM's names): `general_settings.disable_spend_logs` (no rows; cost still computed),
`general_settings.proxy_batch_write_at` (seconds between batch writes; default 0.5 here),
`general_settings.maximum_spend_logs_retention_period` (e.g. "30d": older rows are deleted, checked every
`maximum_spend_logs_retention_interval`, default "1d"), `litellm_settings.disable_end_user_cost_tracking`.
"""

from __future__ import annotations

import re
from typing import Any

from ..config import Config
from ..errors import ConfigError
from ..keys import KeyManager
from ..store.factory import DatabaseTarget
from . import reports
from .backends import open_spend_log
from .cost import cost_of, price_usage
from .prices import TokenPrices, token_prices
from .store import SpendFilter
from .tracker import SpendTracker

__all__ = ["SpendFilter", "SpendTracker", "TokenPrices", "build", "cost_of", "price_usage", "reports", "token_prices"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def build(config: Config, database: DatabaseTarget, keys: KeyManager | None) -> SpendTracker | None:
    """Always a tracker: the cost goes into every call even when rows are off or kept in memory."""
    general = config.general.extra
    flush = _seconds(general.get("proxy_batch_write_at"), "general_settings.proxy_batch_write_at")
    retention = _seconds(general.get("maximum_spend_logs_retention_period"),
                         "general_settings.maximum_spend_logs_retention_period")
    interval = _seconds(general.get("maximum_spend_logs_retention_interval"),
                        "general_settings.maximum_spend_logs_retention_interval")
    return SpendTracker(
        open_spend_log(database),
        logs_enabled=not bool(general.get("disable_spend_logs")),
        track_end_user=not bool(config.litellm_settings.extra.get("disable_end_user_cost_tracking")),
        flush_interval=flush if flush is not None else 0.5,
        retention=retention,
        retention_interval=interval if interval is not None else 86_400.0,
    )


def _seconds(value: Any, key: str) -> float | None:
    """A number of seconds, or LiteLLM's duration strings ("30s", "10m", "24h", "7d", "1w")."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str) and (m := _DURATION.match(value)) and float(m[1]) > 0:
        return float(m[1]) * _UNIT[m[2]]
    raise ConfigError(key, f"expected a positive duration such as 30s, 10m, 24h or 7d, got {value!r}")
