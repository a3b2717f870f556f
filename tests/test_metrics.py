"""Prometheus metrics (observe/metrics.py): what a call counts, under LiteLLM's names, scraped and parsed
with prometheus_client's own parser; and GET /metrics through the proxy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from conftest import MASTER_KEY, MOCK_MODELS
from fakes.server import ServerThread
from respgate.calls import Call, Principal
from respgate.config import load_config
from respgate.deployments import Deployment
from respgate.errors import RateLimitError
from respgate.observe import build
from respgate.observe.metrics import Metrics
from respgate.proxy.app import Proxy

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
KEY = Principal(owner="o", token="abcdef0123456789" * 4, key_alias="team-key", team_id="team-a")


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """sample name -> [(labels, value)], parsed by prometheus_client's parser."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found.setdefault(s.name, []).append((dict(s.labels), s.value))
    return found


def total(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for ls, v in found.get(name, []) if all(ls.get(k) == want for k, want in labels.items()))


def call_with(usage: dict[str, Any] | None = None, *, error: Exception | None = None, stream: bool = False,
              status: str = "completed") -> Call:
    call = Call(KEY, {"model": "group-a", "input": "x"}, stream=stream)
    call.deployment = Deployment("group-a", "openai", "gpt-test")
    if error is None:
        call.response = {"id": "resp_1", "status": status, "usage": usage,
                         **({"error": {"code": "server_error", "message": "m"}} if status == "failed" else {})}
    else:
        call.error = error  # type: ignore[assignment]
    call.cost = 0.01 if error is None else None
    call.ended = call.started + 0.2
    if stream:
        call.first_event = call.started + 0.05
    return call


def test_a_call_counts_requests_tokens_spend_latency_under_litellm_names() -> None:
    m = Metrics()
    usage = {"input_tokens": 10, "output_tokens": 4, "total_tokens": 14,
             "input_tokens_details": {"cached_tokens": 6}, "output_tokens_details": {"reasoning_tokens": 3}}
    m.observe(call_with(usage))
    m.observe(call_with(usage, stream=True))
    m.observe(call_with(error=RateLimitError("slow down")))
    m.observe(call_with(usage, status="failed"))
    body, content_type = m.render()
    assert content_type.startswith("text/plain")
    found = samples(body.decode())
    key = {"hashed_api_key": KEY.token[:12], "api_key_alias": "team-key", "team": "team-a"}
    assert total(found, "litellm_proxy_total_requests_metric_total", requested_model="group-a", **key) == 4
    assert total(found, "litellm_proxy_total_requests_metric_total", status_code="429", status="error") == 1
    assert total(found, "litellm_proxy_total_requests_metric_total", status="failed") == 1
    assert total(found, "litellm_proxy_failed_requests_metric_total", exception_class="RateLimitError",
                 exception_status="429", **key) == 1
    assert total(found, "litellm_proxy_failed_requests_metric_total", exception_class="server_error") == 1
    assert total(found, "litellm_requests_metric_total", model="gpt-test", **key) == 3
    assert total(found, "litellm_input_tokens_metric_total", model="gpt-test") == 30
    assert total(found, "litellm_output_tokens_metric_total") == 12
    assert total(found, "litellm_total_tokens_metric_total") == 42
    assert total(found, "respgate_cached_tokens_metric_total") == 18
    assert total(found, "respgate_reasoning_tokens_metric_total") == 9
    assert total(found, "litellm_spend_metric_total", **key) == pytest.approx(0.03)
    assert total(found, "litellm_request_total_latency_metric_count") == 3
    assert total(found, "litellm_request_total_latency_metric_sum") == pytest.approx(0.6)
    assert total(found, "litellm_request_total_latency_metric_bucket", le="0.5") == 3
    assert total(found, "litellm_llm_api_time_to_first_token_metric_count") == 1  # streams only
    assert total(found, "litellm_llm_api_time_to_first_token_metric_sum") == pytest.approx(0.05)
    dep = {"litellm_model_name": "gpt-test", "api_provider": "openai", "requested_model": "group-a"}
    assert total(found, "litellm_deployment_total_requests_total", **dep) == 4
    assert total(found, "litellm_deployment_success_responses_total", **dep) == 2
    assert total(found, "litellm_deployment_failure_responses_total", exception_class="RateLimitError") == 1


def test_every_call_is_counted_across_folds_and_scrapes() -> None:
    """A route adds up its calls every few hundred and at each scrape: counts, sums and buckets are
    exact however the calls fall between the two."""
    m = Metrics()
    usage = {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}
    for i in range(1, 701):
        call = call_with(usage, stream=i % 2 == 0)
        call.ended = call.started + (0.01 if i % 7 else 2.2)  # 100 calls in the le=2.5 bucket, not le=2.0
        m.observe(call)
        if i in (300, 301, 650):
            scraped = samples(m.render()[0].decode())
            assert total(scraped, "litellm_proxy_total_requests_metric_total") == i
            assert total(scraped, "litellm_input_tokens_metric_total") == 3 * i
    found = samples(m.render()[0].decode())
    assert total(found, "litellm_requests_metric_total") == 700
    assert total(found, "litellm_total_tokens_metric_total") == 3500
    assert total(found, "litellm_spend_metric_total") == pytest.approx(7.0)
    assert total(found, "litellm_request_total_latency_metric_count") == 700
    assert total(found, "litellm_request_total_latency_metric_sum") == pytest.approx(600 * 0.01 + 100 * 2.2)
    assert total(found, "litellm_request_total_latency_metric_bucket", le="2.0") == 600
    assert total(found, "litellm_request_total_latency_metric_bucket", le="2.5") == 700
    assert total(found, "litellm_llm_api_time_to_first_token_metric_count") == 350
    assert total(found, "litellm_deployment_success_responses_total") == 700


def test_labels_are_bounded_and_registries_are_separate() -> None:
    a, b = Metrics(), Metrics()
    for _ in range(50):
        a.observe(call_with({"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}))
    text = a.render()[0].decode()
    found = samples(text)
    assert len(found["litellm_proxy_total_requests_metric_total"]) == 1  # 50 calls, one series
    assert KEY.token not in text  # only the hash's prefix
    assert "request_id" not in text and "resp_1" not in text
    assert "litellm_proxy_total_requests_metric_total{" not in b.render()[0].decode()


def test_prometheus_is_switched_on_by_litellms_callback_name(tmp_path: Path) -> None:
    for lists in ("callbacks: [prometheus]", "success_callback: [prometheus]\n  failure_callback: [prometheus]"):
        path = tmp_path / "c.yaml"
        path.write_text(f"litellm_settings:\n  {lists}\n")
        obs = build(load_config(str(path)))
        assert obs is not None and obs.metrics is not None and obs.tracing is None


# -- through the proxy ---------------------------------------------------------------------------------


@pytest.fixture
def serve(tmp_path: Path) -> Any:
    servers: list[ServerThread] = []

    def start(extra: str = "litellm_settings:\n  callbacks: [prometheus]\n") -> tuple[Proxy, ServerThread]:
        path = tmp_path / f"config-{len(servers)}.yaml"
        path.write_text(MOCK_MODELS + extra + f"general_settings:\n  master_key: {MASTER_KEY}\n"
                        f"  database_url: sqlite:///{tmp_path}/db-{len(servers)}.sqlite\n")
        proxy = Proxy(load_config(str(path)))
        server = ServerThread(proxy.app).start()
        servers.append(server)
        return proxy, server

    yield start
    for s in servers:
        s.stop()


def test_metrics_endpoint_counts_real_requests(serve: Any) -> None:
    _, server = serve()
    with OpenAI(base_url=server.url + "/v1", api_key=MASTER_KEY, max_retries=0) as client:
        client.responses.create(model="mock/echo", input="one two three")
        with client.responses.stream(model="mock/echo", input="four five") as stream:
            for _ in stream:
                pass
        with pytest.raises(Exception):  # noqa: B017 - any 4xx: the model does not exist
            client.responses.create(model="mock/nope", input="x")
    scraped = httpx.get(server.url + "/metrics", headers=AUTH, timeout=10)
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    found = samples(scraped.text)
    assert total(found, "litellm_proxy_total_requests_metric_total", requested_model="mock/echo") == 2
    assert total(found, "litellm_proxy_failed_requests_metric_total", requested_model="mock/nope",
                 exception_status="404") == 1
    assert total(found, "litellm_llm_api_time_to_first_token_metric_count", requested_model="mock/echo") == 1
    assert total(found, "litellm_request_total_latency_metric_count", requested_model="mock/echo") == 2
    assert total(found, "litellm_total_tokens_metric_total", requested_model="mock/echo") > 0
    assert httpx.get(server.url + "/metrics/", headers=AUTH, timeout=10).status_code == 200


def test_metrics_need_the_master_key_and_say_how_to_turn_them_on(serve: Any) -> None:
    _, server = serve()
    assert httpx.get(server.url + "/metrics", timeout=10).status_code == 401
    _, off = serve("")
    r = httpx.get(off.url + "/metrics", headers=AUTH, timeout=10)
    assert r.status_code == 404 and "prometheus" in r.json()["error"]["message"]
