"""LiteLLM's durations ("30s", "30m", "1h", "1d", "2w", "1mo") and budget periods.

A budget period ends at `budget_reset_at`; the next one starts there and lasts `budget_duration`.
The next boundary is computed from the previous one (never from "now"), so every instance that sees
the same period end computes the same next one: their shared Redis counters and the database's
reset agree without talking to each other.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from ..errors import InvalidRequestError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "mo": 30 * 86400, "y": 365 * 86400}
_DURATION = re.compile(r"([0-9]+)\s*(mo|[smhdwy])?")
_LONGEST = 100 * _UNITS["y"]  # a budget period or key lifetime past this cannot be dated (year 9999)


def duration_seconds(value: object, field: str) -> float:
    """Seconds in a duration; a bare number counts seconds (as LiteLLM's parser does). A month is 30 days."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= _LONGEST:
        return float(value)
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip().lower())
        if match and 0 < int(match.group(1)) * _UNITS[match.group(2) or "s"] <= _LONGEST:
            return float(int(match.group(1)) * _UNITS[match.group(2) or "s"])
    raise InvalidRequestError(
        f"Invalid {field}: {value!r}. Use a number and a unit: '30s', '30m', '1h', '1d', '1w' or '1mo'.",
        param=field, code="invalid_value")


def next_reset(previous: float, seconds: float, now: float) -> float:
    """The first period end after `now`, counting whole periods from `previous`."""
    if now < previous:
        return previous
    return previous + (math.floor((now - previous) / seconds) + 1) * seconds


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def parse_time(value: object, field: str) -> float | None:
    """An ISO 8601 time (or epoch seconds) an admin passed -> epoch seconds."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    raise InvalidRequestError(f"Invalid {field}: expected an ISO 8601 time.", param=field, code="invalid_value")
