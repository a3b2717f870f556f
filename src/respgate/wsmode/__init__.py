"""The Responses API's WebSocket mode, shared by the proxy's socket and the SDK's `connect()`."""

from .limits import SETTING_KEYS, Limits, TokenBucket
from .session import ConnectionGone, Session

__all__ = ["SETTING_KEYS", "ConnectionGone", "Limits", "Session", "TokenBucket"]
