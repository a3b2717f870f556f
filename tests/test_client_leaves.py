"""A streaming client that leaves midway was already told the response's id: the response stays retrievable."""

from __future__ import annotations

import time

import httpx

from conftest import MASTER_KEY, ProxyFactory
from sse import parse_sse

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
SLOW_MOCK = """
model_list:
  - model_name: slow
    litellm_params: {model: mock/reasoning, mock_tokens_per_second: 40}
"""


def test_a_client_leaving_midway_leaves_an_incomplete_response(start_proxy: ProxyFactory) -> None:
    proxy = start_proxy(SLOW_MOCK)
    seen = ""
    with httpx.Client(timeout=30) as h, h.stream(
            "POST", proxy.url + "/v1/responses", headers=AUTH,
            json={"model": "slow", "input": "word " * 30, "stream": True}) as r:
        for chunk in r.iter_text():
            seen += chunk
            if "response.output_text.delta" in seen:
                break  # leave after the reasoning item finished and the message began
    events = parse_sse(seen[: seen.rindex("\n\n") + 2])
    rid = events[0]["response"]["id"]
    got = None
    for _ in range(200):  # the proxy notices the disconnect shortly after
        got = httpx.get(proxy.url + f"/v1/responses/{rid}", headers=AUTH)
        if got.status_code == 200:
            break
        time.sleep(0.02)
    assert got is not None and got.status_code == 200, got.text if got is not None else None
    body = got.json()
    assert body["status"] == "incomplete"
    assert [o["type"] for o in body["output"]] == ["reasoning"]  # what had finished before the client left
