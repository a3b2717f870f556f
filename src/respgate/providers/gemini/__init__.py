"""Gemini adapters: AI Studio (`gemini/*`) and Gemini on Vertex AI (`vertex_ai/*`).

`PROVIDER_FACTORIES` is what the registry merges: provider name -> adapter factory.
"""

from __future__ import annotations

from collections.abc import Callable

from ..base import Provider
from .provider import AiStudio, GeminiProvider, VertexAI

__all__ = ["PROVIDER_FACTORIES", "AiStudio", "GeminiProvider", "VertexAI"]

PROVIDER_FACTORIES: dict[str, Callable[[], Provider]] = {
    "gemini": lambda: GeminiProvider(AiStudio()),
    "vertex_ai": lambda: GeminiProvider(VertexAI()),
}
