"""Schemathesis against the proxy's own `/openapi.json`: every operation, valid and invalid requests.

A real proxy (the mock models, a model bridged to the strict fake Chat Completions upstream, a master key,
virtual keys, Prometheus metrics) serves the document; each operation gets `RESPGATE_FUZZ_EXAMPLES`
generated requests (default 25; derandomized, so every run sends the same ones) in each mode: positive
(what the document allows) and negative (what it does not), as the master key; and positive ones again
as a virtual key that is no admin. Every answer must pass
schemathesis' checks — no 5xx, a declared status and content type, the declared schema (the 200 bodies
of the OpenAI routes are openai's own `Response` / `ChatCompletion`; any other status is OpenAI's error
shape, exactly its four fields) — and no body may carry a traceback, a Python repr or pydantic's words.

Things are made first (a stored and a background response, a conversation, a key, a team, a user, a
customer, a prompt; made again after an operation that may delete them) and about half of the generated
requests get their ids in the path, query or body, so the found paths are walked as well as the
not-found ones.

    RESPGATE_FUZZ_EXAMPLES=500 pytest tests/test_fuzz_proxy.py      # a longer run (bench/fuzz.sh)
"""

from __future__ import annotations

import copy
import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import load_all_checks

from conftest import MASTER_KEY, MOCK_MODELS
from fakes.chat_upstream import FakeChat
from fakes.server import ServerThread
from respgate.config import load_config
from respgate.proxy.app import Proxy
from respgate.proxy.openapi import openapi_document

EXAMPLES = int(os.environ.get("RESPGATE_FUZZ_EXAMPLES", "25"))
MODELS = ["mock/echo", "mock/recall", "mock/tool", "mock/reasoning", "bridged", "mock/fail"]
CHAT_MODELS = MODELS[:-1]  # mock/fail's chat answer is the 500 of a failed upstream, by design
BRIDGED = """
  - model_name: bridged
    litellm_params: {{model: hosted_vllm/qwen3, api_base: "{url}/v1", api_key: sk-chat-fuzz}}
"""
_METHODS = ("get", "post", "put", "patch", "delete")
# Operations whose positive requests must succeed at least once: proof the document leads past validation.
_MUST_SUCCEED = {("POST", "/v1/responses"), ("POST", "/v1/chat/completions"), ("POST", "/v1/conversations"),
                 ("POST", "/v1/responses/compact"), ("POST", "/key/generate"), ("POST", "/prompts")}

load_all_checks()
CHECKS = [getattr(schemathesis.checks, name) for name in (
    "not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance")]

# What a body must never show: a traceback, an object's repr, an exception's class name, pydantic's words.
_LEAKS = re.compile(r"Traceback \(most recent|File \"/|site-packages|object at 0x|<(class|function|coroutine) |"
                    r"\b(KeyError|TypeError|AttributeError|ValueError|IndexError|NoneType|RuntimeError)\b|"
                    r"errors\.pydantic\.dev|Input should be")


def _operations() -> list[tuple[str, str, bool]]:
    """(method, path, takes input) of every documented operation."""
    ops = []
    for path, item in openapi_document()["paths"].items():
        for method in _METHODS:
            if method in item:
                op = item[method]
                ops.append((method.upper(), path, bool(op.get("parameters") or op.get("requestBody"))))
    return ops


OPERATIONS = _operations()
_RUNS = [pytest.param(m, p, mode, who, id=f"{m} {p} {mode} {who}")
         for (m, p, takes_input), (mode, who) in itertools.product(
             OPERATIONS, [(GenerationMode.POSITIVE, "master"), (GenerationMode.NEGATIVE, "master"),
                          (GenerationMode.POSITIVE, "key")])
         if takes_input or mode is GenerationMode.POSITIVE]  # nothing to break in an operation without input


@dataclass
class Fuzzed:
    url: str
    schema: Any
    session: requests.Session
    ids: dict[str, list[str]]  # things that exist, by the name of the id that points at them
    caller: str  # a virtual key that is no admin

    def reseed(self) -> None:
        self.ids, self.caller = _seed(self.url)


def _tailored(document: dict[str, Any]) -> dict[str, Any]:
    """The served document with `model` narrowed to the configured groups (otherwise almost every generated
    request would stop at 'model not found'), and MCP servers on loopback: the URL guard refuses them before
    any lookup, where a generated host name would send a DNS query off the machine."""
    doc = copy.deepcopy(document)
    schemas = doc["components"]["schemas"]
    schemas["Mcp"]["properties"]["server_url"] = {"enum": ["http://127.0.0.1:9/mcp", "litellm_proxy"]}
    schemas["CreateResponse"]["properties"]["model"] = {"enum": MODELS}
    schemas["CreateChatCompletion"]["properties"]["model"] = {"enum": CHAT_MODELS}
    for path in ("/v1/responses/compact", "/v1/responses/input_tokens"):
        body = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        body["properties"]["model"] = {"enum": MODELS}
    return doc


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    upstream = ServerThread(FakeChat(api_key="sk-chat-fuzz", reasoning_field="reasoning_content").app).start()
    config = tmp / "config.yaml"
    config.write_text(MOCK_MODELS + BRIDGED.format(url=upstream.url) + "litellm_settings:\n  callbacks: [prometheus]\n"
                      f"general_settings:\n  database_url: sqlite:///{tmp / 'store.db'}\n  master_key: {MASTER_KEY}\n")
    server = ServerThread(Proxy(load_config(str(config))).app).start()
    try:
        with requests.Session() as session:
            document = session.get(server.url + "/openapi.json", timeout=10).json()
            yield Fuzzed(server.url, schemathesis.openapi.from_dict(_tailored(document)), session, *_seed(server.url))
    finally:
        server.stop()
        upstream.stop()


_SEQUENCE = itertools.count()


def _seed(url: str) -> tuple[dict[str, list[str]], str]:
    """Things to point requests at, and a virtual key to call as."""
    n = next(_SEQUENCE)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=10) as c:
        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            r = c.post(path, json=body)
            assert r.status_code == 200, r.text
            answer: dict[str, Any] = r.json()
            return answer

        response = post("/v1/responses", {"model": "mock/echo", "input": "hello"})
        background = post("/v1/responses", {"model": "mock/echo", "input": "later", "background": True})
        conversation = post("/v1/conversations", {"items": [{"role": "user", "content": "hi"}]})
        item = c.get(f"/v1/conversations/{conversation['id']}/items").json()["data"][0]
        team = post("/team/new", {"team_alias": f"fuzz-team-{n}"})
        user = post("/user/new", {"user_id": f"fuzz-user-{n}", "auto_create_key": False})
        post("/customer/new", {"user_id": f"fuzz-customer-{n}"})
        key = post("/key/generate", {"key_alias": f"fuzz-key-{n}", "models": MODELS, "team_id": team["team_id"],
                                     "user_id": user["user_id"]})
        caller = post("/key/generate", {"key_alias": f"fuzz-caller-{n}", "models": MODELS})
        post("/prompts", {"prompt_id": f"fuzz-prompt-{n}", "litellm_params": {
            "prompt_integration": "inline", "input": [{"role": "user", "content": "Say {{word}}"}]}})
    ids = {"response_id": [response["id"], background["id"]], "conversation_id": [conversation["id"]],
           "item_id": [item["id"]], "key": [key["key"]], "team_id": [team["team_id"]],
           "user_id": [user["user_id"]], "customer_id": [f"fuzz-customer-{n}"], "prompt_id": [f"fuzz-prompt-{n}"]}
    return ids, caller["key"]


# Where an id may stand, by the name it has there (customers are `user_id` under /customer and /end_user).
_LISTS = {"keys": "key", "team_ids": "team_id", "user_ids": "user_id"}
_ALIASES = {"end_user_id": "customer_id", "member": "user_id"}


def _point_at_known(case: Any, path: str, ids: dict[str, list[str]], data: st.DataObject) -> None:
    """About half of the time, each id-named field of the request gets an id that exists."""
    customers = path.startswith(("/customer", "/end_user"))

    def known(name: str) -> list[str]:
        kind = _ALIASES.get(name, _LISTS.get(name, name))
        if customers and kind == "user_id":
            kind = "customer_id"
        return ids.get(kind, [])

    def pick(name: str) -> str:
        return str(data.draw(st.sampled_from(known(name)), label=name))

    for where in (case.path_parameters, case.query, case.body):
        if not isinstance(where, dict):
            continue
        for name in [n for n in where if known(n)]:
            if data.draw(st.booleans(), label=f"known {name}"):
                where[name] = [pick(name)] if name in _LISTS else pick(name)


def _whole_numbers(value: Any) -> Any:
    """`2.0` -> `2`: JSON Schema calls both integers, OpenAI's API (and so respgate) takes only the second,
    and a document cannot say so; a positive request sends the spelling the API means."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    return value


def _check_body(response: requests.Response) -> None:
    text = response.text
    assert not _LEAKS.search(text), f"{response.status_code} body leaks internals: {text[:500]}"
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}, error
        assert isinstance(error["message"], str) and error["message"], error


@pytest.mark.parametrize(("method", "path", "mode", "who"), _RUNS)
def test_operation(fuzzed: Fuzzed, method: str, path: str, mode: GenerationMode, who: str) -> None:
    ids = fuzzed.ids
    headers = {"Authorization": f"Bearer {MASTER_KEY if who == 'master' else fuzzed.caller}"}
    operation = fuzzed.schema[path][method]
    statuses: list[int] = []

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def fuzz(case: Any, data: st.DataObject) -> None:
        _point_at_known(case, path, ids, data)
        if mode is GenerationMode.POSITIVE:
            case.body = _whole_numbers(case.body)
        response = case.call(base_url=fuzzed.url, session=fuzzed.session, headers=headers, timeout=30)
        statuses.append(response.status_code)
        case.validate_response(response, checks=CHECKS, headers=headers)
        _check_body(response)

    try:
        fuzz()
    finally:
        if method == "DELETE" or path.endswith(("/delete", "/regenerate", "/block")):
            fuzzed.reseed()  # the next operation's known ids must exist
    if (method, path) in _MUST_SUCCEED and mode is GenerationMode.POSITIVE and who == "master":
        assert 200 in statuses, f"no generated request got past validation: {sorted(set(statuses))}"
