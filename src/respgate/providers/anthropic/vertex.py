"""Claude on Vertex AI: the Messages API behind Google's endpoint and credentials.

Vertex takes the same Messages body with two differences: the model is in the URL (not the body),
and `anthropic_version` is a body field (`vertex-2023-10-16`) instead of a header. The bearer token,
project and location come from the same google-auth token source as Gemini on Vertex.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote

from ...deployments import Deployment
from ...errors import BadGatewayError
from ..base import ProviderRequest
from ..gemini.provider import VertexAI
from .provider import AnthropicProvider

VERTEX_ANTHROPIC_VERSION: Final = "vertex-2023-10-16"


class VertexAnthropicProvider(AnthropicProvider):
    def __init__(self, vertex: VertexAI | None = None) -> None:
        super().__init__()
        self.vertex = vertex or VertexAI()

    def _messages(self, req: ProviderRequest, *, stream: bool) -> dict[str, Any]:
        body = super()._messages(req, stream=stream)
        body.pop("model", None)
        return {"anthropic_version": VERTEX_ANTHROPIC_VERSION, **body}

    async def _target(self, d: Deployment, *, stream: bool) -> tuple[str, dict[str, str]]:
        token = self.vertex.token(d)
        bearer = await token.bearer()
        project = d.extra.get("vertex_project") or await token.project()
        if not project:
            raise BadGatewayError(f"No vertex_project is configured for model `{d.model_name}`.")
        location = str(d.extra.get("vertex_location") or "us-east5")  # where Claude is served on Vertex
        host = "aiplatform.googleapis.com" if location == "global" else f"{location}-aiplatform.googleapis.com"
        base = (d.api_base or f"https://{host}").rstrip("/")
        method = "streamRawPredict" if stream else "rawPredict"
        url = (f"{base}/v1/projects/{project}/locations/{location}/publishers/anthropic/models/"
               f"{quote(d.upstream_model, safe='@')}:{method}")
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {bearer}"}
        beta = self.headers(d).get("anthropic-beta")
        if beta:
            headers["anthropic-beta"] = beta
        return url, headers
