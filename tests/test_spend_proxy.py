"""Spend end to end through a real proxy with the official openai SDK: the cost header, one spend-log row
per request under 200 concurrent requests (SQLite and PostgreSQL), streams, failures, and the routes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from openai import AsyncOpenAI, BadRequestError, OpenAI

from conftest import MASTER_KEY, ProxyFactory
from fakes.server import ServerThread
from respgate.config import load_config
from respgate.proxy.app import Proxy
from test_store import PG_DSN, pg_schema

IN_PRICE, OUT_PRICE = 1e-6, 2e-6
MODELS = f"""
model_list:
  - model_name: priced-echo
    litellm_params: {{model: mock/echo}}
    model_info: {{input_cost_per_token: {IN_PRICE}, output_cost_per_token: {OUT_PRICE}}}
  - model_name: free-echo
    litellm_params: {{model: mock/echo}}
  - model_name: broken
    litellm_params: {{model: mock/fail}}
"""
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


def expected_cost(usage: Any) -> float:
    return float(usage.input_tokens * IN_PRICE + usage.output_tokens * OUT_PRICE)


def get(server: ServerThread, path: str, **params: str) -> Any:
    r = httpx.get(server.url + path, params=params, headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


async def many_requests(server: ServerThread, n: int) -> dict[str, float]:
    """`n` concurrent requests (a third of them streams): request id -> cost (header, or computed for streams)."""
    costs: dict[str, float] = {}
    async with AsyncOpenAI(base_url=server.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=60) as client:
        async def one(i: int) -> None:
            if i % 3 == 0:
                async with client.responses.with_streaming_response.create(
                        model="priced-echo", input=f"stream {i}", stream=True, user=f"user-{i % 4}") as raw:
                    request_id = raw.headers["x-request-id"]
                    usage = None
                    async for event in await raw.parse():
                        if event.type == "response.completed":
                            usage = event.response.usage
                    costs[request_id] = expected_cost(usage)
                return
            raw = await client.responses.with_raw_response.create(model="priced-echo", input=f"hello {i}",
                                                                 user=f"user-{i % 4}")
            response = raw.parse()
            header = float(raw.headers["x-litellm-response-cost"])
            assert header == pytest.approx(expected_cost(response.usage), rel=1e-12)
            costs[raw.headers["x-request-id"]] = header

        await asyncio.gather(*(one(i) for i in range(n)))
    return costs


def check_rows(server: ServerThread, costs: dict[str, float]) -> None:
    # A stream's row is queued just after its last event is sent, so the client may ask a moment earlier.
    deadline = time.monotonic() + 10
    rows = get(server, "/spend/logs", limit="10000")
    while len(rows) < len(costs) and time.monotonic() < deadline:
        time.sleep(0.02)
        rows = get(server, "/spend/logs", limit="10000")
    assert len(rows) == len(costs)  # none lost, none twice
    assert {r["request_id"] for r in rows} == costs.keys()
    for r in rows:
        assert r["spend"] == pytest.approx(costs[r["request_id"]], rel=1e-12)
        assert r["model_group"] == "priced-echo" and r["status"] == "success" and r["end_user"].startswith("user-")
        assert r["stream"] == (r["time_to_first_token_ms"] is not None)
    by_user = get(server, "/spend/report", group_by="end_user")["data"]
    assert {g["end_user"]: g["requests"] for g in by_user} == {f"user-{i}": len(costs) // 4 for i in range(4)}
    assert sum(g["spend"] for g in by_user) == pytest.approx(sum(costs.values()))


async def test_rows_equal_requests_sqlite(start_proxy: ProxyFactory) -> None:
    server = start_proxy(MODELS)
    costs = await many_requests(server, 200)
    check_rows(server, costs)


@pytest.fixture
async def pg_proxy(tmp_path: Path) -> AsyncIterator[ServerThread]:
    """A proxy whose responses and spend logs live in a fresh PostgreSQL schema."""
    async with pg_schema() as schema:
        admin = await asyncpg.connect(PG_DSN)
        try:
            await admin.execute(f'CREATE SCHEMA "{schema}"')
        finally:
            await admin.close()
        path = tmp_path / "config.yaml"
        path.write_text(MODELS + f"general_settings:\n  master_key: {MASTER_KEY}\n"
                        f"  database_url: {PG_DSN}?search_path={schema}\n")
        server = ServerThread(Proxy(load_config(str(path))).app).start()
        try:
            yield server
        finally:
            server.stop()


async def test_rows_equal_requests_postgres(pg_proxy: ServerThread) -> None:
    costs = await many_requests(pg_proxy, 200)
    check_rows(pg_proxy, costs)


@pytest.fixture
def client(start_proxy: ProxyFactory) -> Iterator[tuple[ServerThread, OpenAI]]:
    server = start_proxy(MODELS)
    with OpenAI(base_url=server.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        yield server, c


def test_cost_header_and_row(client: tuple[ServerThread, OpenAI]) -> None:
    server, c = client
    raw = c.responses.with_raw_response.create(model="priced-echo", input="what does this cost?",
                                               extra_headers={"x-request-id": "req-cost-1"})
    response = raw.parse()
    assert raw.headers["x-request-id"] == "req-cost-1"
    cost = raw.headers["x-litellm-response-cost"]
    assert cost == str(float(cost)) and float(cost) == pytest.approx(expected_cost(response.usage))
    [row] = get(server, "/spend/logs", request_id="req-cost-1")
    assert row["response_id"] == response.id and row["spend"] == pytest.approx(float(cost))
    assert row["prompt_tokens"] == response.usage.input_tokens and row["api_key"] == ""


def test_free_model_costs_zero(client: tuple[ServerThread, OpenAI]) -> None:
    _, c = client
    raw = c.responses.with_raw_response.create(model="free-echo", input="free")
    assert raw.headers["x-litellm-response-cost"] == "0.0"


def test_failed_request_is_a_failure_row(client: tuple[ServerThread, OpenAI]) -> None:
    server, c = client
    response = c.responses.create(model="broken", input="x", extra_headers={"x-request-id": "req-broken"})
    assert response.status == "failed"
    [row] = get(server, "/spend/logs", request_id="req-broken")
    assert (row["status"], row["response_status"], row["error_code"]) == ("failure", "failed", "server_error")


def test_unknown_model_is_logged_too(client: tuple[ServerThread, OpenAI]) -> None:
    server, c = client
    with pytest.raises(Exception):  # noqa: B017
        c.responses.create(model="nope", input="x", extra_headers={"x-request-id": "req-nope"})
    [row] = get(server, "/spend/logs", request_id="req-nope")
    assert (row["status"], row["model_group"], row["spend"]) == ("failure", "nope", 0.0)


def test_global_reports_over_http(client: tuple[ServerThread, OpenAI]) -> None:
    server, c = client
    for _ in range(3):
        c.responses.create(model="priced-echo", input="report me")
    keys = get(server, "/global/spend/keys")
    assert len(keys) == 1 and keys[0]["total_spend"] > 0
    assert get(server, "/global/spend/models")[0]["model"] == "echo"
    assert get(server, "/global/spend")["spend"] == pytest.approx(keys[0]["total_spend"])
    r = httpx.post(server.url + "/global/spend/end_users", json={}, headers=AUTH)
    assert r.status_code == 200 and r.json()[0]["total_count"] == 3
    teams = get(server, "/global/spend/teams")
    assert teams["teams"] == ["Unassigned"]
    today = datetime.now(UTC).date().isoformat()
    days = get(server, "/global/spend/report", start_date=today, end_date=today)
    assert days[0]["group_by_day"] == today and days[0]["teams"][0]["team_name"] == "Unassigned Team"


def test_bad_query_is_openai_shaped_400(client: tuple[ServerThread, OpenAI]) -> None:
    server, _ = client
    r = httpx.get(server.url + "/spend/logs", params={"start_date": "last tuesday"}, headers=AUTH)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "start_date" and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.get(server.url + "/global/spend/report", headers=AUTH)
    assert r.status_code == 400 and r.json()["error"]["param"] == "start_date"


def test_routes_need_a_key(client: tuple[ServerThread, OpenAI]) -> None:
    server, _ = client
    assert httpx.get(server.url + "/spend/logs").status_code == 401
    assert httpx.get(server.url + "/global/spend/keys", headers={"Authorization": "Bearer sk-wrong"}).status_code == 401


def test_disabled_spend_logs_keep_the_cost_header(start_proxy: ProxyFactory) -> None:
    server = start_proxy(MODELS, general="  disable_spend_logs: true\n")
    with OpenAI(base_url=server.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        raw = c.responses.with_raw_response.create(model="priced-echo", input="hi")
        assert float(raw.headers["x-litellm-response-cost"]) > 0
    assert get(server, "/spend/logs") == []


def test_bad_request_is_logged_as_failure(client: tuple[ServerThread, OpenAI]) -> None:
    server, c = client
    with pytest.raises(BadRequestError):
        c.responses.create(model="priced-echo", input="x", temperature=9,
                           extra_headers={"x-request-id": "req-bad"})
    [row] = get(server, "/spend/logs", request_id="req-bad")
    assert row["status"] == "failure" and row["metadata"]["error_information"]["error_code"] == "400"


def test_background_response_is_priced_when_it_ends(client: tuple[ServerThread, OpenAI]) -> None:
    server, c = client
    queued = c.responses.create(model="priced-echo", input="later", background=True,
                                extra_headers={"x-request-id": "req-bg"})
    assert queued.status in ("queued", "in_progress")
    deadline = time.monotonic() + 20
    rows: list[Any] = []
    while not rows and time.monotonic() < deadline:  # the run ends on its own schedule: poll for its row
        rows = get(server, "/spend/logs", request_id="req-bg")
        time.sleep(0.02)
    [row] = rows
    done = c.responses.retrieve(queued.id)
    assert done.status == "completed" and done.usage is not None
    assert (row["response_id"], row["response_status"]) == (queued.id, "completed")
    assert row["spend"] == pytest.approx(expected_cost(done.usage))


def test_chat_completions_are_priced_and_logged(client: tuple[ServerThread, OpenAI]) -> None:
    server, c = client
    raw = c.chat.completions.with_raw_response.create(model="priced-echo", messages=[{"role": "user", "content": "hi"}],
                                                      extra_headers={"x-request-id": "req-chat"})
    completion = raw.parse()
    assert completion.usage is not None
    expected = completion.usage.prompt_tokens * IN_PRICE + completion.usage.completion_tokens * OUT_PRICE
    [row] = get(server, "/spend/logs", request_id="req-chat")
    assert (row["call_type"], row["route"]) == ("acompletion", "chat.completions")
    assert row["spend"] == pytest.approx(expected)
    assert float(raw.headers["x-litellm-response-cost"]) == pytest.approx(expected)
