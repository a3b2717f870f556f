"""Every client mistake is a 4xx in OpenAI's error shape naming the field; never a 500, never a secret."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import MASTER_KEY, ProxyFactory
from fakes.server import ServerThread

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


def assert_error(r: httpx.Response, status: int, param: str | None, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["param"] == param
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    assert MASTER_KEY not in r.text
    err: dict[str, Any] = body["error"]
    return err


@pytest.mark.parametrize(("body", "param", "code"), [
    ({"input": "x"}, "model", "missing_required_parameter"),
    ({"model": 3, "input": "x"}, "model", "invalid_type"),
    ({"model": "mock/echo", "input": 3}, "input", "invalid_type"),
    ({"model": "mock/echo", "input": "x", "temperature": "hot"}, "temperature", "invalid_type"),
    ({"model": "mock/echo", "input": "x", "temperature": 7}, "temperature", None),
    ({"model": "mock/echo", "input": "x", "bogus": 1}, "bogus", "unknown_parameter"),
    ({"model": "mock/echo", "input": [{"role": "user", "content": [{"type": "input_text", "text": 5}]}]},
     "input[0].content[0].text", "invalid_type"),
    ({"model": "mock/echo", "input": "x", "stream": "yes"}, "stream", "invalid_type"),
])
def test_invalid_bodies_name_the_field(proxy: ServerThread, body: dict[str, Any], param: str,
                                       code: str | None) -> None:
    assert_error(httpx.post(proxy.url + "/v1/responses", headers=AUTH, json=body), 400, param, code)


def test_invalid_json_and_non_object(proxy: ServerThread) -> None:
    bad = httpx.post(proxy.url + "/v1/responses", headers={**AUTH, "Content-Type": "application/json"},
                     content=b'{"model": "mock/echo",')
    assert_error(bad, 400, None)
    assert_error(httpx.post(proxy.url + "/v1/responses", headers=AUTH, json=[1, 2]), 400, None)


def test_unknown_model_is_404_model_not_found(proxy: ServerThread) -> None:
    r = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={"model": "nope", "input": "x"})
    assert_error(r, 404, "model", "model_not_found")


@pytest.mark.parametrize("rid", ["resp_doesnotexist", "resp_" + "A" * 40, "garbage", "resp_%00"])
def test_unknown_response_ids(proxy: ServerThread, rid: str) -> None:
    for method, path in (("GET", f"/v1/responses/{rid}"), ("DELETE", f"/v1/responses/{rid}"),
                         ("GET", f"/v1/responses/{rid}/input_items"), ("POST", f"/v1/responses/{rid}/cancel")):
        assert_error(httpx.request(method, proxy.url + path, headers=AUTH), 404, "response_id")
    r = httpx.post(proxy.url + "/v1/responses", headers=AUTH,
                   json={"model": "mock/echo", "input": "x", "previous_response_id": rid})
    assert_error(r, 400, "previous_response_id")


def test_bad_query_parameters(proxy: ServerThread) -> None:
    rid = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={"model": "mock/echo", "input": "x"}).json()["id"]
    assert_error(httpx.get(proxy.url + f"/v1/responses/{rid}/input_items?limit=0", headers=AUTH), 400, "limit")
    assert_error(httpx.get(proxy.url + f"/v1/responses/{rid}/input_items?limit=abc", headers=AUTH), 400, "limit")
    assert_error(httpx.get(proxy.url + f"/v1/responses/{rid}/input_items?order=up", headers=AUTH), 400, "order")
    assert_error(httpx.get(proxy.url + f"/v1/responses/{rid}?stream=true&starting_after=x", headers=AUTH),
                 400, "starting_after")
    # cancelling a response that was not made in the background
    assert_error(httpx.post(proxy.url + f"/v1/responses/{rid}/cancel", headers=AUTH), 400, "response_id")


def test_keys(proxy: ServerThread) -> None:
    body = {"model": "mock/echo", "input": "x"}
    assert_error(httpx.post(proxy.url + "/v1/responses", json=body), 401, None, "missing_api_key")
    err = assert_error(httpx.post(proxy.url + "/v1/responses", json=body,
                                  headers={"Authorization": "Bearer sk-wrong"}), 401, None, "invalid_api_key")
    assert "sk-wrong" not in err["message"]
    assert_error(httpx.get(proxy.url + "/v1/models", headers={"Authorization": "Basic abc"}), 401, None)


def test_body_size_limit_gives_413(start_proxy: ProxyFactory) -> None:
    proxy = start_proxy(general="  max_request_body_bytes: 2048\n")
    big = {"model": "mock/echo", "input": "x" * 5000}
    assert_error(httpx.post(proxy.url + "/v1/responses", headers=AUTH, json=big), 413, None, "request_too_large")

    def chunks() -> Any:  # no Content-Length: the limit holds while reading
        yield b'{"model": "mock/echo", "input": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'
    r = httpx.post(proxy.url + "/v1/responses", headers={**AUTH, "Content-Type": "application/json"},
                   content=chunks())
    assert_error(r, 413, None)
    ok = httpx.post(proxy.url + "/v1/responses", headers=AUTH, json={"model": "mock/echo", "input": "small"})
    assert ok.status_code == 200


def test_unknown_route_and_method(proxy: ServerThread) -> None:
    assert_error(httpx.get(proxy.url + "/v1/nothing", headers=AUTH), 404, None)
    assert_error(httpx.put(proxy.url + "/v1/responses", headers=AUTH), 405, None)


def test_no_master_key_means_open_on_loopback(start_proxy: ProxyFactory) -> None:
    proxy = start_proxy(master_key=None)
    r = httpx.post(proxy.url + "/v1/responses", json={"model": "mock/echo", "input": "open"})
    assert r.status_code == 200
