"""`vertex_ai/*`: Gemini and Claude on Vertex AI, told apart by the model name (as LiteLLM does), sharing
one google-auth token source per deployment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ..events import Event
from .anthropic.vertex import VertexAnthropicProvider
from .base import Provider, ProviderRequest
from .gemini.provider import GeminiProvider, VertexAI


class VertexAIProvider:
    holds_state = False

    def __init__(self, vertex: VertexAI | None = None) -> None:
        vertex = vertex or VertexAI()
        self.gemini = GeminiProvider(vertex)
        self.claude = VertexAnthropicProvider(vertex)

    def _for(self, req: ProviderRequest) -> Provider:
        return self.claude if req.deployment.upstream_model.startswith("claude") else self.gemini

    async def create(self, req: ProviderRequest) -> dict[str, Any]:
        return await self._for(req).create(req)

    def stream(self, req: ProviderRequest) -> AsyncIterator[Event]:
        return self._for(req).stream(req)
