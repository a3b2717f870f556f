"""`/openapi.json` (proxy/openapi.py): it describes every route the proxy serves and nothing else, it
is a document schemathesis can use, and the create schema admits every request the golden tests send."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import schemathesis

from conftest import MASTER_KEY, MOCK_MODELS, ProxyFactory
from respgate.config import load_config
from respgate.proxy.app import Proxy
from respgate.proxy.openapi import openapi_document
from respgate.request import validate_create

GOLDEN = Path(__file__).parent / "golden"
_METHODS = ("get", "post", "put", "patch", "delete")


def _served(tmp_path: Path) -> set[tuple[str, str]]:
    """(METHOD, path) of every HTTP route of a proxy with keys, spend and metrics on."""
    config = tmp_path / "config.yaml"
    config.write_text(MOCK_MODELS + "\nlitellm_settings:\n  callbacks: [prometheus]\n"
                      f"general_settings:\n  database_url: sqlite:///{tmp_path / 'db'}\n  master_key: {MASTER_KEY}\n")
    proxy = Proxy(load_config(str(config)))
    served = {("POST", "/v1/responses"), ("POST", "/responses")}  # the hot path, outside Starlette's table
    for route in proxy.routes.routes:
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)  # `{key:path}` -> `{key}`
        served |= {(method, path) for method in route.methods or () if method != "HEAD"}
    return served


def _described() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in openapi_document()["paths"].items()
            for method in _METHODS if method in item}


def test_every_route_the_proxy_serves_is_described_and_nothing_else(tmp_path: Path) -> None:
    served, described = _served(tmp_path), _described()
    # An OpenAI route answers with and without /v1; the document shows the /v1 form once.
    aliases = {(m, p) for m, p in served if not p.startswith("/v1/") and (m, "/v1" + p) in served}
    assert served - aliases - described == set(), "served but not described"
    assert described - served == set(), "described but not served"


def test_every_operation_has_an_id_a_summary_and_the_error_shape() -> None:
    ids = []
    for path, item in openapi_document()["paths"].items():
        for method in _METHODS:
            if method not in item:
                continue
            op = item[method]
            ids.append(op["operationId"])
            assert op["summary"], (method, path)
            assert op["responses"]["default"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"}
            declared = {p["name"] for p in op.get("parameters", ()) if p["in"] == "path"}
            assert declared == set(re.findall(r"\{(\w+)\}", path)), (method, path)
    assert len(ids) == len(set(ids))


def test_every_reference_resolves_and_schemathesis_reads_every_operation() -> None:
    doc = openapi_document()
    names = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(doc)))
    assert names <= set(doc["components"]["schemas"])
    schema = schemathesis.openapi.from_dict(doc)
    operations = list(schema.get_all_operations())
    assert len(operations) == len(_described())
    assert [op.err() for op in operations if not op.ok()] == []


def test_the_document_is_served_without_a_key(start_proxy: ProxyFactory) -> None:
    proxy = start_proxy()
    response = httpx.get(proxy.url + "/openapi.json", timeout=10)
    assert response.status_code == 200
    assert response.json() == json.loads(json.dumps(openapi_document()))


def _golden_bodies() -> list[Any]:
    cases = []
    for path in sorted(GOLDEN.glob("*/*.json")):
        body = json.loads(path.read_text())["body"]
        cases.append(pytest.param(body, id=f"{path.parent.name}/{path.stem}"))
    return cases


_CREATE = jsonschema.Draft202012Validator({"$ref": "#/components/schemas/CreateResponse",
                                           "components": openapi_document()["components"]})


@pytest.mark.parametrize("body", _golden_bodies())
def test_the_create_schema_admits_every_golden_request(body: dict[str, Any]) -> None:
    validate_create(body)  # each is a request the gateway accepts...
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in _CREATE.iter_errors(body)]
    assert errors == []  # ...and the document does too


@pytest.mark.parametrize(("body", "where"), [
    ({"input": "hi"}, ""),  # model is required here (openai's types leave it optional)
    ({"model": "m", "temperature": 3}, "temperature"),
    ({"model": "m", "max_output_tokens": 8}, "max_output_tokens"),
    ({"model": "m", "input": [{"role": "user", "content": "hi", "colour": "red"}]}, "input"),
    ({"model": "m", "surprise": True}, ""),
])
def test_the_create_schema_refuses_what_the_gateway_refuses(body: dict[str, Any], where: str) -> None:
    errors = list(_CREATE.iter_errors(body))
    assert errors, body
    assert any("/".join(map(str, e.absolute_path)).startswith(where) for e in errors)
