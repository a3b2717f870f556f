"""OpenAI's hosted tools on Anthropic: web search (a server tool Anthropic runs) and the computer tool.

`web_search` / `web_search_preview` become `web_search_20250305`: `filters.allowed_domains` ->
`allowed_domains`, `user_location` -> `user_location`, `search_context_size` low/medium/high ->
`max_uses` 1/5/10 (LiteLLM's reading: how much searching the answer may use). The answer's
`server_tool_use` + `web_search_tool_result` blocks become a `web_search_call` item and the text's
`web_search_result_location` citations `url_citation` annotations (response.py).

file_search, code_interpreter, image_generation, mcp (the gateway runs MCP itself) and the other
hosted tools have no Anthropic counterpart here: a 400 naming `tools[i].type`, or dropped with
drop_params.
"""

from __future__ import annotations

from typing import Any, Final

from ...deployments import Deployment
from ..refusals import FieldMapping
from . import computer

Json = dict[str, Any]

WEB_SEARCH_TYPES: Final = frozenset({"web_search", "web_search_2025_08_26", "web_search_preview",
                                     "web_search_preview_2025_03_11"})
COMPUTER_TYPES: Final = frozenset({"computer_use_preview", "computer"})
WEB_SEARCH_NAME: Final = "web_search"
_MAX_USES: Final = {"low": 1, "medium": 5, "high": 10}
_LOCATION_FIELDS: Final = ("city", "region", "country", "timezone")


def hosted_tool(m: FieldMapping, tool: Json, param: str, d: Deployment) -> Json | None:
    """The Anthropic tool for a non-function OpenAI tool, or None (refused, or dropped)."""
    kind = tool.get("type")
    if kind in WEB_SEARCH_TYPES:
        return _web_search(m, tool, param)
    if kind in COMPUTER_TYPES:
        m.check_extras(tool, frozenset({"display_width", "display_height", "environment"}), param)
        out = computer.anthropic_tool(tool, d)
        if out is None:
            m.refuse(f"{param}.type", "The 'computer' tool without a display size (set display_width_px and "
                                      "display_height_px in the deployment's litellm_params, or use "
                                      "computer_use_preview)", code="unsupported_value")
        return out
    m.refuse(f"{param}.type", f"Tools of type '{kind}'", code="unsupported_value")
    return None


def _web_search(m: FieldMapping, tool: Json, param: str) -> Json:
    m.check_extras(tool, frozenset({"filters", "user_location", "search_context_size", "external_web_access",
                                    "search_content_types"}), param)
    out: Json = {"type": "web_search_20250305", "name": WEB_SEARCH_NAME}
    domains = (tool.get("filters") or {}).get("allowed_domains")
    if domains:
        out["allowed_domains"] = list(domains)
    location = tool.get("user_location") or {}
    fields = {k: location[k] for k in _LOCATION_FIELDS if location.get(k)}
    if fields:
        out["user_location"] = {"type": "approximate", **fields}
    size = tool.get("search_context_size")
    if size in _MAX_USES:
        out["max_uses"] = _MAX_USES[size]
    if tool.get("external_web_access") is False:
        m.refuse(f"{param}.external_web_access", "Cached-only web search (external_web_access: false)",
                 code="unsupported_value")
    if any(t != "text" for t in tool.get("search_content_types") or ()):
        m.refuse(f"{param}.search_content_types", "Image web search", code="unsupported_value")
    return out


def required_betas(body: Json) -> list[str]:
    """The `anthropic-beta` values the body's tools need."""
    return [computer.BETAS[t["type"]] for t in body.get("tools") or () if t.get("type") in computer.BETAS]
