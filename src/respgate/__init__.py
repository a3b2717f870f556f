"""respgate: one OpenAI Responses API for every LLM provider, as an SDK and a proxy."""

from typing import Any

from .errors import (
    AuthenticationError,
    BadGatewayError,
    ConfigError,
    GatewayTimeoutError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    RespgateError,
    UpstreamError,
)
from .sdk import (
    AsyncEventStream,
    Client,
    Router,
    SyncEventStream,
    acancel_responses,
    acompact_responses,
    acompletion,
    adelete_responses,
    aget_responses,
    alist_input_items,
    aresponses,
    aresponses_api_with_mcp,
    aresponses_connect,
    cancel_responses,
    compact_responses,
    completion,
    delete_responses,
    get_responses,
    list_input_items,
    responses,
    responses_connect,
)

__version__ = "0.1.0"

# LiteLLM's module-level callback lists (`litellm.callbacks = [handler]`), read at each call by observe/.
callbacks: list[Any] = []
success_callback: list[Any] = []
failure_callback: list[Any] = []

__all__ = [
    "AsyncEventStream",
    "AuthenticationError",
    "BadGatewayError",
    "Client",
    "ConfigError",
    "GatewayTimeoutError",
    "InvalidRequestError",
    "NotFoundError",
    "RateLimitError",
    "RespgateError",
    "Router",
    "SyncEventStream",
    "UpstreamError",
    "__version__",
    "acancel_responses",
    "acompact_responses",
    "acompletion",
    "adelete_responses",
    "aget_responses",
    "alist_input_items",
    "aresponses",
    "aresponses_api_with_mcp",
    "aresponses_connect",
    "callbacks",
    "cancel_responses",
    "compact_responses",
    "completion",
    "delete_responses",
    "failure_callback",
    "get_responses",
    "list_input_items",
    "responses",
    "responses_connect",
    "success_callback",
]
