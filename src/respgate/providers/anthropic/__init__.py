"""The Anthropic Messages adapter (`anthropic/*`): request.py and response.py translate, provider.py sends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from ..base import Provider
from .provider import AnthropicProvider

__all__ = ["PROVIDER_ENV", "PROVIDER_FACTORIES", "AnthropicProvider"]

PROVIDER_FACTORIES: Final[dict[str, Callable[[], Provider]]] = {"anthropic": AnthropicProvider}
#: where a deployment's credentials come from when the config leaves them out (first set wins)
PROVIDER_ENV: Final = {"anthropic": {"api_key": ("ANTHROPIC_API_KEY",), "api_base": ("ANTHROPIC_API_BASE",)}}
