"""The prompt registry's admin API, with LiteLLM's paths and shapes.

    POST   /prompts                      {prompt_id, litellm_params, prompt_info?} -> a new version
    PUT    /prompts/{id}                 a new version of an existing prompt (whole litellm_params)
    PATCH  /prompts/{id}                 a new version with the given fields replaced
    DELETE /prompts/{id}                 every version
    GET    /prompts/list                 the newest version of each prompt
    GET    /prompts/{id}[/info]          one version (the newest, `?version=N`, or LiteLLM's `id.vN`)
    GET    /prompts/{id}/versions        every version, newest first

Writes need an admin principal; so do reads, except that `/prompts/list` answers a non-admin key with
an empty list, as LiteLLM does. Config prompts are read-only (400). Versions never change: an update
makes the next version.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from ..calls import Principal
from ..errors import InvalidRequestError, NotFoundError
from ..prompts import PromptRegistry, PromptVersion, parse_version, split_versioned_id
from .auth import require_admin
from .routing import ExtraRoute

if TYPE_CHECKING:
    from .app import Proxy


def routes(proxy: Proxy) -> list[ExtraRoute]:
    from .app import json_response

    def registry() -> PromptRegistry:
        return proxy.gateway.prompts

    def admin(request: Request) -> None:
        principal: Principal = request.state.principal
        require_admin(principal)

    async def body_object(request: Request) -> dict[str, Any]:
        body = await proxy._json_body(request)
        if not isinstance(body, dict):
            raise InvalidRequestError("The request body must be a JSON object.", code="invalid_json")
        return body

    async def list_prompts(request: Request) -> Response:
        principal: Principal = request.state.principal
        if not principal.is_admin:
            return json_response({"prompts": []})
        return json_response({"prompts": [spec(p) for p in await registry().latest()]})

    async def create_prompt(request: Request) -> Response:
        admin(request)
        body = await body_object(request)
        made = await registry().create(body.get("prompt_id"), body.get("litellm_params"), body.get("prompt_info"))
        return json_response(spec(made))

    async def update_prompt(request: Request) -> Response:
        admin(request)
        prompt_id = await existing_id(request)
        body = await body_object(request)
        made = await registry().create(prompt_id, body.get("litellm_params"), body.get("prompt_info"))
        return json_response(spec(made))

    async def patch_prompt(request: Request) -> Response:
        admin(request)
        prompt_id = await existing_id(request)
        body = await body_object(request)
        current = await registry().find(prompt_id, None)
        assert current is not None  # existing_id checked it
        params = body["litellm_params"] if body.get("litellm_params") is not None else current.litellm_params
        info = body["prompt_info"] if body.get("prompt_info") is not None else current.prompt_info
        return json_response(spec(await registry().create(prompt_id, params, info)))

    async def delete_prompt(request: Request) -> Response:
        admin(request)
        prompt_id = await existing_id(request)
        await registry().delete(prompt_id)
        return json_response({"message": f"Prompt {prompt_id} deleted successfully"})

    async def existing_id(request: Request) -> str:
        prompt_id, _ = split_versioned_id(request.path_params["prompt_id"])
        if registry().is_config(prompt_id):
            raise InvalidRequestError(f"Prompt '{prompt_id}' comes from the config file: change it there.",
                                      param="prompt_id", code="config_prompt")
        if await registry().find(prompt_id, None) is None:
            raise NotFoundError(f"Prompt with ID {prompt_id} not found", param="prompt_id", code="prompt_not_found")
        return prompt_id

    async def prompt_info(request: Request) -> Response:
        admin(request)
        prompt_id, version = split_versioned_id(request.path_params["prompt_id"])
        asked = request.query_params.get("version")
        if asked is not None:
            version = parse_version(asked, param="version")
        found = await registry().find(prompt_id, version)
        if found is None:
            raise NotFoundError(f"Prompt {request.path_params['prompt_id']} not found", param="prompt_id",
                                code="prompt_not_found")
        return json_response({"prompt_spec": spec(found), "template": template_view(found)})

    async def prompt_versions(request: Request) -> Response:
        admin(request)
        prompt_id, _ = split_versioned_id(request.path_params["prompt_id"])
        found = await registry().versions(prompt_id)
        if not found:
            raise NotFoundError(f"No versions found for prompt ID {prompt_id}", param="prompt_id",
                                code="prompt_not_found")
        return json_response({"prompts": [spec(p) for p in found]})

    return [
        ("/prompts/list", list_prompts, ["GET"]),
        ("/prompts", create_prompt, ["POST"]),
        ("/prompts/{prompt_id}/versions", prompt_versions, ["GET"]),
        ("/prompts/{prompt_id}/info", prompt_info, ["GET"]),
        ("/prompts/{prompt_id}", prompt_info, ["GET"]),
        ("/prompts/{prompt_id}", update_prompt, ["PUT"]),
        ("/prompts/{prompt_id}", patch_prompt, ["PATCH"]),
        ("/prompts/{prompt_id}", delete_prompt, ["DELETE"]),
    ]


def spec(p: PromptVersion) -> dict[str, Any]:
    """LiteLLM's PromptSpec, with the version as its own field and the variables the template uses."""
    stamp = _iso(p.created_at)
    return {"prompt_id": p.prompt_id, "version": p.version, "litellm_params": p.litellm_params,
            "prompt_info": p.prompt_info, "variables": list(p.template.variables),
            "created_at": stamp, "updated_at": stamp}


def template_view(p: PromptVersion) -> dict[str, Any]:
    """What a request would receive, with the placeholders left in."""
    shown = p.template.render({name: "{{" + name + "}}" for name in p.template.variables})
    return {"instructions": shown.instructions, "input": shown.messages, "defaults": shown.defaults}


def _iso(seconds: float) -> str | None:
    if not seconds:  # config prompts have no creation time
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat().replace("+00:00", "Z")
