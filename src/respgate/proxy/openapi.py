"""`/openapi.json`: the proxy's routes, described for clients and for schema-driven fuzzing."""

from __future__ import annotations

from functools import cache
from typing import Any

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["message", "type", "param", "code"],
        "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                       "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}},
    }},
}

_CREATE_BODY = {
    "type": "object",
    "required": ["model"],
    "properties": {
        "model": {"type": "string"},
        "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
        "instructions": {"type": ["string", "null"]},
        "previous_response_id": {"type": ["string", "null"]},
        "stream": {"type": ["boolean", "null"]},
        "store": {"type": ["boolean", "null"]},
        "background": {"type": ["boolean", "null"]},
        "max_output_tokens": {"type": ["integer", "null"]},
        "temperature": {"type": ["number", "null"]},
        "top_p": {"type": ["number", "null"]},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {},
        "text": {"type": "object"},
        "reasoning": {"type": ["object", "null"]},
        "metadata": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
    },
}

_RESPONSE = {"type": "object", "required": ["id", "object", "created_at", "status", "model", "output"],
             "properties": {"id": {"type": "string"}, "object": {"const": "response"},
                            "status": {"type": "string"}, "model": {"type": "string"},
                            "output": {"type": "array", "items": {"type": "object"}}}}

_ID_PARAM = {"name": "response_id", "in": "path", "required": True, "schema": {"type": "string"}}
_CONV_PARAM = {"name": "conversation_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _errors(*codes: int) -> dict[str, Any]:
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {str(c): {"description": "error", **ref} for c in codes}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


@cache
def openapi_document() -> dict[str, Any]:
    auth_errors = (400, 401, 404)
    paths: dict[str, Any] = {
        "/v1/responses": {"post": {
            "operationId": "createResponse", "summary": "Create a model response (JSON or SSE stream)",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/CreateResponse"}}}},
            "responses": {"200": {"description": "The response, or an SSE stream of response events",
                                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Response"}},
                                              "text/event-stream": {"schema": {"type": "string"}}}},
                          **_errors(*auth_errors, 413, 502, 504)}}},
        "/v1/responses/{response_id}": {
            "get": {"operationId": "getResponse", "parameters": [
                _ID_PARAM,
                {"name": "include[]", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}},
                {"name": "stream", "in": "query", "schema": {"type": "boolean"}},
                {"name": "starting_after", "in": "query", "schema": {"type": "integer"}}],
                "responses": {"200": _json({"$ref": "#/components/schemas/Response"}), **_errors(*auth_errors)}},
            "delete": {"operationId": "deleteResponse", "parameters": [_ID_PARAM],
                       "responses": {"200": _json({"type": "object", "required": ["id", "object", "deleted"]}),
                                     **_errors(*auth_errors)}}},
        "/v1/responses/{response_id}/cancel": {"post": {
            "operationId": "cancelResponse", "parameters": [_ID_PARAM],
            "responses": {"200": _json({"$ref": "#/components/schemas/Response"}), **_errors(*auth_errors)}}},
        "/v1/responses/{response_id}/input_items": {"get": {
            "operationId": "listInputItems", "parameters": [
                _ID_PARAM,
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                {"name": "order", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"]}},
                {"name": "after", "in": "query", "schema": {"type": "string"}},
                {"name": "before", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": _json({"type": "object", "required": ["object", "data", "has_more"]}),
                          **_errors(*auth_errors)}}},
        "/v1/responses/compact": {"post": {
            "operationId": "compactResponse",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["model"],
                "properties": {"model": {"type": "string"}, "input": {},
                               "previous_response_id": {"type": "string"}}}}}},
            "responses": {"200": _json({"type": "object", "required": ["id", "object", "output"]}),
                          **_errors(*auth_errors, 413)}}},
        "/v1/responses/input_tokens": {"post": {
            "operationId": "countInputTokens",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["model"], "properties": {"model": {"type": "string"}, "input": {}}}}}},
            "responses": {"200": _json({"type": "object", "required": ["object", "input_tokens"]}),
                          **_errors(*auth_errors, 413)}}},
        "/v1/chat/completions": {"post": {
            "operationId": "createChatCompletion", "summary": "Chat Completions for every model (JSON or SSE)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["model", "messages"],
                "properties": {"model": {"type": "string"}, "messages": {"type": "array", "items": {"type": "object"}},
                               "stream": {"type": ["boolean", "null"]}}}}}},
            "responses": {"200": _json({"type": "object", "required": ["id", "object", "choices"]}),
                          **_errors(*auth_errors, 413, 502, 504)}}},
        "/v1/conversations": {"post": {
            "operationId": "createConversation",
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"items": {"type": "array", "items": {"type": "object"}},
                                                 "metadata": {"type": ["object", "null"]}}}}}},
            "responses": {"200": _json({"type": "object", "required": ["id", "object"]}),
                          **_errors(*auth_errors, 413)}}},
        "/v1/conversations/{conversation_id}": {
            **{method: {"operationId": f"{method}Conversation", "parameters": [_CONV_PARAM],
                        "responses": {"200": _json({"type": "object", "required": ["id", "object"]}),
                                      **_errors(*auth_errors)}}
               for method in ("get", "delete")},
            "post": {"operationId": "updateConversation", "parameters": [_CONV_PARAM],
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "type": "object", "required": ["metadata"],
                         "properties": {"metadata": {"type": "object"}}}}}},
                     "responses": {"200": _json({"type": "object"}), **_errors(*auth_errors)}}},
        "/v1/conversations/{conversation_id}/items": {
            "get": {"operationId": "listConversationItems", "parameters": [
                _CONV_PARAM,
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                {"name": "order", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"]}},
                {"name": "after", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": _json({"type": "object", "required": ["object", "data", "has_more"]}),
                              **_errors(*auth_errors)}},
            "post": {"operationId": "createConversationItems", "parameters": [_CONV_PARAM],
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "type": "object", "required": ["items"],
                         "properties": {"items": {"type": "array", "items": {"type": "object"}}}}}}},
                     "responses": {"200": _json({"type": "object"}), **_errors(*auth_errors)}}},
        "/v1/conversations/{conversation_id}/items/{item_id}": {
            method: {"operationId": f"{method}ConversationItem",
                     "parameters": [_CONV_PARAM, {"name": "item_id", "in": "path", "required": True,
                                                  "schema": {"type": "string"}}],
                     "responses": {"200": _json({"type": "object"}), **_errors(*auth_errors)}}
            for method in ("get", "delete")},
        "/v1/models": {"get": {"operationId": "listModels",
                               "responses": {"200": _json({"type": "object", "required": ["object", "data"]}),
                                             **_errors(401)}}},
        "/health": {"get": {"operationId": "health", "responses": {"200": _json({"type": "object"}),
                                                                    **_errors(401)}}},
        "/health/liveliness": {"get": {"operationId": "liveliness", "responses": {"200": _json({"type": "string"})}}},
        "/health/readiness": {"get": {"operationId": "readiness", "responses": {"200": _json({"type": "object"})}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "respgate", "version": "0.1.0",
                 "description": "One OpenAI Responses API for every LLM provider."},
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR, "CreateResponse": _CREATE_BODY, "Response": _RESPONSE},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "azureKey": {"type": "apiKey", "in": "header", "name": "api-key"}},
        },
        "security": [{"bearer": []}, {"azureKey": []}],
    }
