"""`/openapi.json`: every HTTP route the proxy serves, described for clients and for schema-driven fuzzing.

Request bodies of the OpenAI routes are derived from the `openai` package's TypedDicts (openapi_types.py),
tuned as the wire is: unknown keys refused at every depth, the fields the live API lets clients leave out
made optional, the numeric ranges OpenAI enforces beyond the types. So a generator that follows this
document sends requests the gateway accepts, and one that breaks it sends requests the gateway must
refuse with a 400 naming the field. The admin API's bodies come from the field tables `keys/validate.py`
reads them with.

Every route that answers with and without `/v1` is described once, in its `/v1` form; `/end_user/*`
(LiteLLM's aliases of `/customer/*`), `/metrics/`, `/mcp/` and `/health/liveness` are listed as they are
served. tests/test_openapi.py compares the document with the proxy's route table both ways.
WebSocket mode (`/v1/responses` upgraded) is not HTTP and is not described. Every operation's
`default` response is OpenAI's error shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache
from typing import Any, Final

from .openapi_types import Json, openai_schemas

# -- schemas of the admin API, from the readers keys/validate.py uses --------------------------------

def _admin_field(reader: Callable[..., Any]) -> Json:
    from ..keys.validate import TEAM_ROLES, USER_ROLES

    kinds: dict[str, Json] = {
        "text": {"type": "string"},
        "number": {"type": "number", "minimum": 0},
        "integer": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
        "flag": {"type": "boolean"},
        "mapping": {"type": "object"},
        "strings": {"type": "array", "items": {"type": "string"}},
        "duration": {"type": "string", "pattern": r"^([1-9][0-9]{0,2}[smhdw]|[1-9][0-9]?(mo|y))$"},
        "role": {"type": "string", "enum": list(USER_ROLES)},
        "members": {"type": "array", "items": {
            "type": "object", "required": ["user_id"],
            "properties": {"role": {"enum": list(TEAM_ROLES)}, "user_id": {"type": "string"},
                           "user_email": {"type": "string"}}}},
    }
    return {"anyOf": [kinds[reader.__name__], {"type": "null"}]}


def _admin_body(fields: dict[str, Callable[..., Any]], required: tuple[str, ...] = (),
                **more: Json) -> Json:
    properties = {name: _admin_field(reader) for name, reader in fields.items()}
    for name in required:
        properties[name] = {"type": "string", "minLength": 1, "pattern": r"\S"}
    properties.update(more)
    return _json_body({"type": "object", "required": list(required), "properties": properties})


# -- building blocks ---------------------------------------------------------------------------------

_ERROR: Final = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["message", "type", "param", "code"],
        "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                       "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}},
    }},
}
_ANY_OBJECT: Final = {"type": "object"}
_ANY_LIST: Final = {"type": "array"}
_PAGE: Final = {"type": "object", "required": ["object", "data", "has_more"],
                "properties": {"object": {"const": "list"}, "data": {"type": "array"}, "has_more": {"type": "boolean"}}}


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_body(schema: Json, *, required: bool = True) -> Json:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _path(name: str) -> Json:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, schema: Json | None = None, *, required: bool = False) -> Json:
    return {"name": name, "in": "query", "required": required, "schema": schema or {"type": "string"}}


def _op(op_id: str, summary: str, ok: Json | None = None, *, params: Iterable[Json] = (), body: Json | None = None,
        media: str = "application/json", **more: Any) -> Json:
    """One operation: its 200 (a JSON schema in `media`) and OpenAI's error shape for any other status."""
    spec: Json = {"operationId": op_id, "summary": summary,
                  "responses": {"200": {"description": "OK", "content": {media: {"schema": ok or _ANY_OBJECT}}},
                                "default": {"description": "An error, in OpenAI's shape",
                                            "content": {"application/json": {"schema": _ref("Error")}}}}}
    if params:
        spec["parameters"] = list(params)
    if body is not None:
        spec["requestBody"] = body
    spec.update(more)
    return spec


_LIMIT: Final = _query("limit", {"type": "integer", "minimum": 1, "maximum": 100})
_ORDER: Final = _query("order", {"type": "string", "enum": ["asc", "desc"]})
_INCLUDE: Final = {"name": "include[]", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}}
_DATES: Final = (_query("start_date", {"type": "string", "format": "date"}),
                 _query("end_date", {"type": "string", "format": "date"}))


def _responses_paths() -> Json:
    events = {"type": "object", "required": ["event", "data"],  # one SSE event: `event:` and `data:` lines
              "properties": {"event": {"type": "string"}, "data": {"type": "string"}}}
    rid, streamed = _path("response_id"), {"content": {"application/json": {"schema": _ref("Response")},
                                                       "text/event-stream": {"schema": events}}}
    create = _op("createResponse", "Create a model response (JSON, or an SSE stream with stream: true)",
                 _ref("Response"), body=_json_body(_ref("CreateResponse")))
    create["responses"]["200"].update(streamed)
    chat = _op("createChatCompletion", "Chat Completions for every model (JSON, or SSE with stream: true)",
               _ref("ChatCompletion"), body=_json_body(_ref("CreateChatCompletion")))
    chat["responses"]["200"]["content"]["text/event-stream"] = {"schema": {  # chunks: `data:` lines only
        "type": "object", "required": ["data"], "properties": {"data": {"type": "string"}}}}
    retrieve = _op("getResponse", "Retrieve a stored response (or replay its stream with stream=true)",
                   _ref("Response"), params=[rid, _INCLUDE, _query("stream", {"type": "boolean"}),
                                             _query("starting_after", {"type": "integer", "minimum": -1})])
    retrieve["responses"]["200"].update(streamed)
    aux = {"type": "object", "required": ["model"], "properties": {
        "model": {"type": "string"},
        "input": {"anyOf": [{"type": "string"}, {"type": "array", "items": _ref("InputItem")}]},
        "instructions": {"type": ["string", "null"]}, "previous_response_id": {"type": ["string", "null"]},
        "conversation": {"anyOf": [{"type": "string"}, _ref("ResponseConversationParamParam"), {"type": "null"}]},
        "tools": {"type": "array", "items": {"type": "object"}}}}
    return {
        "/v1/responses": {"post": create},
        "/v1/responses/{response_id}": {
            "get": retrieve,
            "delete": _op("deleteResponse", "Delete a stored response", {
                "type": "object", "required": ["id", "object", "deleted"],
                "properties": {"object": {"const": "response.deleted"}, "deleted": {"const": True}}},
                params=[rid])},
        "/v1/responses/{response_id}/cancel": {"post": _op(
            "cancelResponse", "Cancel a background response", _ref("Response"), params=[rid])},
        "/v1/responses/{response_id}/input_items": {"get": _op(
            "listInputItems", "The input items of a stored response", _PAGE,
            params=[rid, _LIMIT, _ORDER, _query("after"), _query("before"), _INCLUDE])},
        "/v1/responses/compact": {"post": _op(
            "compactResponse", "Compact a conversation window",
            {"type": "object", "required": ["id", "object", "output"],
             "properties": {"object": {"const": "response.compaction"}, "output": {"type": "array"}}},
            body=_json_body(aux))},
        "/v1/responses/input_tokens": {"post": _op(
            "countInputTokens", "Count the input tokens of a request",
            {"type": "object", "required": ["object", "input_tokens"],
             "properties": {"object": {"const": "response.input_tokens"}, "input_tokens": {"type": "integer"}}},
            body=_json_body(aux))},
        "/v1/chat/completions": {"post": chat},
    }


def _conversation_paths() -> Json:
    cid, item_id = _path("conversation_id"), _path("item_id")
    metadata = {"anyOf": [{"type": "object", "maxProperties": 16, "additionalProperties": {
        "type": "string", "maxLength": 512}}, {"type": "null"}]}
    conversation = {"type": "object", "required": ["id", "object", "created_at"],
                    "properties": {"id": {"type": "string"}, "object": {"const": "conversation"}}}
    items = {"type": "array", "maxItems": 20, "items": _ref("InputItem")}
    return {
        "/v1/conversations": {"post": _op(
            "createConversation", "Create a conversation", conversation, body=_json_body(
                {"type": "object", "additionalProperties": False,
                 "properties": {"items": {"anyOf": [items, {"type": "null"}]}, "metadata": metadata}},
                required=False))},
        "/v1/conversations/{conversation_id}": {
            "get": _op("getConversation", "Retrieve a conversation", conversation, params=[cid]),
            "post": _op("updateConversation", "Update a conversation's metadata", conversation, params=[cid],
                        body=_json_body({"type": "object", "required": ["metadata"], "additionalProperties": False,
                                         "properties": {"metadata": metadata}})),
            "delete": _op("deleteConversation", "Delete a conversation", {
                "type": "object", "required": ["id", "object", "deleted"]}, params=[cid])},
        "/v1/conversations/{conversation_id}/items": {
            "get": _op("listConversationItems", "A conversation's items", _PAGE,
                       params=[cid, _LIMIT, _ORDER, _query("after"), _INCLUDE]),
            "post": _op("createConversationItems", "Add items to a conversation", _PAGE, params=[cid],
                        body=_json_body({"type": "object", "required": ["items"], "additionalProperties": False,
                                         "properties": {"items": items}}))},
        "/v1/conversations/{conversation_id}/items/{item_id}": {
            "get": _op("getConversationItem", "One item of a conversation", params=[cid, item_id]),
            "delete": _op("deleteConversationItem", "Delete an item of a conversation", conversation,
                          params=[cid, item_id])},
    }


def _platform_paths() -> Json:
    models_list = {"type": "object", "required": ["object", "data"],
                   "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": {
                       "type": "object", "required": ["id", "object"]}}}}
    data = {"type": "object", "required": ["data"], "properties": {"data": {"type": "array"}}}
    health = {"type": "object", "required": ["healthy_endpoints", "unhealthy_endpoints", "healthy_count",
                                             "unhealthy_count"]}
    return {
        "/v1/models": {"get": _op("listModels", "The model groups this key may use", models_list)},
        "/v1/model/info": {"get": _op("modelInfo", "Each deployment, without credentials", data,
                                      params=[_query("litellm_model_id"), _query("model_id")])},
        "/v1/model_group/info": {"get": _op("modelGroupInfo", "Each model group", data,
                                            params=[_query("model_group")])},
        "/health": {"get": _op("health", "Call every deployment once", health,
                               params=[_query("model"), _query("model_id")])},
        "/health/liveliness": {"get": _op("liveliness", "The process is up", {"type": "string"}, security=[])},
        "/health/liveness": {"get": _op("liveness", "The process is up", {"type": "string"}, security=[])},
        "/health/readiness": {"get": _op("readiness", "Ready to serve", _ANY_OBJECT, security=[])},
        "/openapi.json": {"get": _op("openapi", "This document", _ANY_OBJECT, security=[])},
        "/metrics": {"get": _op("metrics", "Prometheus metrics (admin)", {"type": "string"},
                                media="text/plain")},
        "/metrics/": {"get": _op("metricsSlash", "Prometheus metrics (admin)", {"type": "string"},
                                 media="text/plain")},
        **{path: {method: _op(f"mcp{method.title()}{tag}", "The configured MCP servers as one (streamable HTTP)",
                              body=_json_body(_ANY_OBJECT) if method == "post" else None)
                  for method in ("get", "post", "delete")} for path, tag in (("/mcp", ""), ("/mcp/", "Slash"))},
    }


def _ui_paths() -> Json:
    """The admin web UI: its page and files (public), and the JSON API behind it (admins only)."""
    html = {"type": "string"}
    since = {"type": "string", "format": "date-time"}
    charts = "(day|key|team|end_user|model)"
    # A generated path parameter cannot carry "/": generators try single names (a real file is <version>/<file>).
    static = {**_path("path"), "schema": {"type": "string", "pattern": r"^[\w.-]+$"}}
    return {
        "/ui": {"get": _op("uiRedirect", "Redirects to /ui/", html, media="text/html", security=[])},
        "/ui/": {"get": _op("uiPage", "The admin UI's page", html, media="text/html", security=[])},
        "/ui/static/{path}": {"get": _op("uiStatic", "The admin UI's files (`<version>/<file>`)", html,
                                         params=[static], media="application/octet-stream", security=[])},
        "/ui/api/session": {"get": _op("uiSession", "Who is signed in, what is on")},
        "/ui/api/responses": {"get": _op("uiResponses", "Stored responses, newest first", params=[
            _query("owner"), _query("key"), _query("model"), _query("status"), _query("since", since),
            _query("until", since), _query("q"), _query("after"),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 200})])},
        "/ui/api/responses/{response_id}": {"get": _op("uiResponse", "One stored response, with its chain",
                                                       params=[_path("response_id")])},
        "/ui/api/responses/{response_id}/spend": {"get": _op("uiResponseSpend", "What one response cost",
                                                             params=[_path("response_id")])},
        "/ui/api/keys": {"get": _op("uiKeys", "Keys with their usage")},
        "/ui/api/spend": {"get": _op("uiSpend", "Spend charts", params=[
            _query("by", {"type": "string", "pattern": rf"^{charts}(,{charts})*$"}), *_DATES])},
        "/ui/api/models": {"get": _op("uiModels", "Deployments and their state")},
        "/ui/api/health": {"post": _op("uiHealth", "Call every deployment once")},
    }


def _admin_paths() -> Json:
    from ..keys import validate as v

    keys_list = {"type": "array", "items": {"type": "string"}}
    paths: Json = {
        "/key/generate": {"post": _op("generateKey", "Make a virtual key", body=_admin_body(
            v.KEY_FIELDS, duration=_admin_field(v.Body.duration), key={"type": ["string", "null"]}))},
        "/key/update": {"post": _op("updateKey", "Change a key", body=_admin_body(v.KEY_FIELDS, ("key",)))},
        "/key/delete": {"post": _op("deleteKeys", "Delete keys", body=_json_body({
            "type": "object", "properties": {"keys": keys_list, "key_aliases": keys_list}}))},
        "/key/block": {"post": _op("blockKey", "Block a key", body=_admin_body({}, ("key",)))},
        "/key/unblock": {"post": _op("unblockKey", "Unblock a key", body=_admin_body({}, ("key",)))},
        "/key/regenerate": {"post": _op("regenerateKey", "A new secret for a key", body=_admin_body(
            {}, ("key",), new_key={"type": ["string", "null"]}))},
        "/key/{key}/regenerate": {"post": _op(
            "regenerateKeyByPath", "A new secret for a key", params=[_path("key")],
            body=_json_body({"type": "object", "properties": {"new_key": {"type": ["string", "null"]}}},
                            required=False))},
        "/key/info": {"get": _op("keyInfo", "A key's settings and spend (a key may read its own)",
                                 params=[_query("key")])},
        "/key/list": {"get": _op("listKeys", "Keys, a page at a time", params=[
            _query("page", {"type": "integer", "minimum": 1}), _query("size", {"type": "integer", "minimum": 1,
                                                                              "maximum": 100}),
            _query("team_id"), _query("user_id"), _query("key_alias"),
            _query("return_full_object", {"type": "boolean"})])},
        "/team/new": {"post": _op("newTeam", "Make a team", body=_admin_body(
            v.TEAM_FIELDS, team_id={"type": ["string", "null"]}))},
        "/team/update": {"post": _op("updateTeam", "Change a team", body=_admin_body(v.TEAM_FIELDS, ("team_id",)))},
        "/team/delete": {"post": _op("deleteTeams", "Delete teams", body=_json_body({
            "type": "object", "required": ["team_ids"], "properties": {"team_ids": keys_list}}))},
        "/team/block": {"post": _op("blockTeam", "Block a team", body=_admin_body({}, ("team_id",)))},
        "/team/unblock": {"post": _op("unblockTeam", "Unblock a team", body=_admin_body({}, ("team_id",)))},
        "/team/member_add": {"post": _op("teamMemberAdd", "Add members to a team", body=_admin_body(
            {"member": v.Body.members}, ("team_id",)))},
        "/team/info": {"get": _op("teamInfo", "A team (a key may read its own)", params=[_query("team_id")])},
        "/team/list": {"get": _op("listTeams", "Teams", _ANY_LIST, params=[_query("user_id")])},
        "/user/new": {"post": _op("newUser", "Make an internal user", body=_admin_body(
            v.USER_FIELDS, user_id={"type": ["string", "null"]}, auto_create_key={"type": ["boolean", "null"]}))},
        "/user/update": {"post": _op("updateUser", "Change a user", body=_admin_body(v.USER_FIELDS, ("user_id",)))},
        "/user/delete": {"post": _op("deleteUsers", "Delete users", body=_json_body({
            "type": "object", "required": ["user_ids"], "properties": {"user_ids": keys_list}}))},
        "/user/info": {"get": _op("userInfo", "A user (a key may read its own)", params=[_query("user_id")])},
        "/user/list": {"get": _op("listUsers", "Users, a page at a time", params=[
            _query("page", {"type": "integer", "minimum": 1}),
            _query("page_size", {"type": "integer", "minimum": 1, "maximum": 100})])},
    }
    for prefix, tag in (("/customer", "Customer"), ("/end_user", "EndUser")):
        ids = _json_body({"type": "object", "required": ["user_ids"], "properties": {"user_ids": keys_list}})
        paths.update({
            f"{prefix}/new": {"post": _op(f"new{tag}", "Make a customer (end user)",
                                          body=_admin_body(v.CUSTOMER_FIELDS, ("user_id",)))},
            f"{prefix}/update": {"post": _op(f"update{tag}", "Change a customer",
                                             body=_admin_body(v.CUSTOMER_FIELDS, ("user_id",)))},
            f"{prefix}/delete": {"post": _op(f"delete{tag}s", "Delete customers", body=ids)},
            f"{prefix}/block": {"post": _op(f"block{tag}s", "Block customers", body=ids)},
            f"{prefix}/unblock": {"post": _op(f"unblock{tag}s", "Unblock customers", body=ids)},
            f"{prefix}/info": {"get": _op(f"{tag[0].lower()}{tag[1:]}Info", "A customer",
                                          params=[_query("end_user_id"), _query("user_id")])},
            f"{prefix}/list": {"get": _op(f"list{tag}s", "Customers", _ANY_LIST)},
        })
    return paths


def _spend_paths() -> Json:
    scoped = [_query(n) for n in ("api_key", "user_id", "request_id", "team_id", "end_user", "model", "status")]
    return {
        "/spend/logs": {"get": _op("spendLogs", "Spend rows (a key sees its own)", _ANY_LIST, params=[
            *scoped, *_DATES, _query("limit", {"type": "integer", "minimum": 1}),
            _query("summarize", {"type": "boolean"})])},
        "/spend/report": {"get": _op("spendReport", "Spend grouped (a key sees its own)", params=[
            *scoped, *_DATES, _query("group_by", {"type": "string", "pattern": r"^[a-z_]+(,[a-z_]+)*$"})])},
        "/global/spend/report": {"get": _op("globalSpendReport", "Daily spend per team, customer or key",
                                            _ANY_LIST, params=[
            *[{**p, "required": True} for p in _DATES], _query("api_key"), _query("internal_user_id"),
            _query("team_id"), _query("customer_id"),
            _query("group_by", {"type": "string", "enum": ["team", "customer", "api_key"]})])},
        "/global/spend/keys": {"get": _op("globalSpendKeys", "Keys by spend", _ANY_LIST,
                                          params=[_query("limit", {"type": "integer", "minimum": 0})])},
        "/global/spend/models": {"get": _op("globalSpendModels", "Models by spend", _ANY_LIST,
                                            params=[_query("limit", {"type": "integer", "minimum": 0})])},
        "/global/spend/teams": {"get": _op("globalSpendTeams", "Daily spend per team")},
        "/global/spend/end_users": {
            "get": _op("globalSpendEndUsers", "Spend per customer", _ANY_LIST, params=[
                _query("startTime", {"type": "string", "format": "date"}),
                _query("endTime", {"type": "string", "format": "date"}), _query("api_key")]),
            "post": _op("globalSpendEndUsersPost", "Spend per customer", _ANY_LIST, body=_json_body(
                {"type": "object", "properties": {"startTime": {"type": "string", "format": "date"},
                                                  "endTime": {"type": "string", "format": "date"},
                                                  "api_key": {"type": "string"}}}, required=False))},
        "/global/spend": {"get": _op("globalSpend", "Total spend")},
    }


def _prompt_paths() -> Json:
    pid = _path("prompt_id")
    message = {"type": "object", "required": ["role", "content"], "properties": {
        "role": {"enum": ["system", "developer", "user", "assistant"]}, "content": {"type": "string"}}}
    text = {"type": "string", "pattern": r"\S"}
    params = {"type": "object", "properties": {
        "prompt_id": {"type": "string"}, "prompt_integration": {"enum": ["dotprompt", "inline"]},
        "dotprompt_content": text, "prompt_data": {"type": "object", "minProperties": 1, "additionalProperties": {
            "type": "object", "required": ["content"], "properties": {"content": text,
                                                                     "metadata": {"type": "object"}}}},
        "instructions": text, "input": {"anyOf": [text, {"type": "array", "minItems": 1, "items": message}]}},
        "anyOf": [{"required": [name]} for name in ("dotprompt_content", "prompt_data", "instructions", "input")]}
    prompt_id = {"type": "string", "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$"}
    write: Json = {"type": "object", "required": ["litellm_params"],
             "properties": {"litellm_params": params, "prompt_info": {"type": "object"}}}
    spec = {"type": "object", "required": ["prompt_id", "version", "litellm_params"]}
    version = _query("version", {"type": "integer", "minimum": 1})
    return {
        "/prompts/list": {"get": _op("listPrompts", "The newest version of each prompt", {
            "type": "object", "required": ["prompts"]})},
        "/prompts": {"post": _op("createPrompt", "A new prompt version", spec, body=_json_body(
            {**write, "required": ["prompt_id", "litellm_params"],
             "properties": {**write["properties"], "prompt_id": prompt_id}}))},
        "/prompts/{prompt_id}": {
            "get": _op("getPrompt", "One version of a prompt", params=[pid, version]),
            "put": _op("replacePrompt", "A new version of a prompt", spec, params=[pid], body=_json_body(write)),
            "patch": _op("patchPrompt", "A new version with some fields replaced", spec, params=[pid],
                         body=_json_body({**write, "required": []})),
            "delete": _op("deletePrompt", "Delete every version of a prompt", params=[pid])},
        "/prompts/{prompt_id}/info": {"get": _op("promptInfo", "One version of a prompt", params=[pid, version])},
        "/prompts/{prompt_id}/versions": {"get": _op("promptVersions", "Every version of a prompt",
                                                     params=[pid])},
    }


@cache
def openapi_document() -> dict[str, Any]:
    paths: Json = {**_responses_paths(), **_conversation_paths(), **_platform_paths(), **_admin_paths(),
                   **_spend_paths(), **_prompt_paths(), **_ui_paths()}
    return {
        "openapi": "3.1.0",
        "info": {"title": "respgate", "version": "0.1.0",
                 "description": "One OpenAI Responses API for every LLM provider. Every OpenAI route also "
                                "answers without the /v1 prefix."},
        "paths": paths,
        "components": {
            "schemas": {**openai_schemas(), "Error": _ERROR},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "azureKey": {"type": "apiKey", "in": "header", "name": "api-key"},
                                "litellmKey": {"type": "apiKey", "in": "header", "name": "x-litellm-api-key"}},
        },
        "security": [{"bearer": []}, {"azureKey": []}, {"litellmKey": []}],
    }

