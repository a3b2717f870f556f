"""Bedrock through the Converse API: request.py (Responses -> Converse), response.py (Converse -> builder
calls), eventstream.py (the binary stream), signing.py (SigV4), errors.py, provider.py (I/O)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from ..base import Provider
from .provider import BedrockConverseProvider

__all__ = ["PROVIDER_FACTORIES", "BedrockConverseProvider"]

PROVIDER_FACTORIES: Final[dict[str, Callable[[], Provider]]] = {
    "bedrock": BedrockConverseProvider,
    "bedrock_converse": BedrockConverseProvider,
}
