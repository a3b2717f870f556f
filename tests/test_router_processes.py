"""Two `respgate serve` processes on one Redis (127.0.0.1:6379) see each other's cooldowns and rpm counts.
Each test has its own key prefix (`router_settings.cache_kwargs.namespace`) and removes its keys."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from conftest import MASTER_KEY
from fakes.openai_upstream import FakeOpenAI
from fakes.server import ServerThread
from procs import ProxyProcess, ProxyProcesses

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
KEY = "sk-upstream-two-processes-7"


@pytest.fixture
def namespace() -> Iterator[str]:
    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as e:
        pytest.fail(f"these tests need Redis on 127.0.0.1:6379 (CI starts it): {e}")
    name = f"respgate-test-{secrets.token_hex(6)}"
    yield name
    keys = list(client.scan_iter(match=name + ":*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def fakes() -> Iterator[list[FakeOpenAI]]:
    with ExitStack() as stack:
        found = []
        for _ in range(2):
            f = FakeOpenAI(api_key=KEY)
            f.url = stack.enter_context(ServerThread(f.app)).url  # type: ignore[attr-defined]
            found.append(f)
        yield found


@pytest.fixture
def pair(tmp_path: Path, fakes: list[FakeOpenAI], namespace: str) -> Iterator[tuple[ProxyProcess, ProxyProcess]]:
    entries = "".join(f"""
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o, api_base: "{f.url}/v1", api_key: "{KEY}"}}
    model_info: {{id: dep{n}}}""" for n, f in enumerate(fakes))  # type: ignore[attr-defined]
    with ProxyProcesses() as procs:
        servers = []
        for name in ("a", "b"):
            path = tmp_path / f"{name}.yaml"
            path.write_text(f"""
model_list:{entries}
  - model_name: limited0
    litellm_params: {{model: mock/echo, rpm: 3}}
  - model_name: limited1
    litellm_params: {{model: mock/echo, rpm: 3}}
router_settings:
  redis_host: 127.0.0.1
  redis_port: 6379
  cache_kwargs: {{namespace: {namespace}}}
  allowed_fails: 0
  cooldown_time: 600
  num_retries: 1
general_settings:
  master_key: {MASTER_KEY}
  database_url: sqlite:///{tmp_path / name}.db
""")
            servers.append(procs.spawn(path))
        yield servers[0], servers[1]


def post(server: ProxyProcess, model: str) -> httpx.Response:
    return httpx.post(server.url + "/v1/responses", headers=AUTH, json={"model": model, "input": "hi"}, timeout=30)


def creates(f: FakeOpenAI) -> list[Any]:
    return [r for r in f.requests if r.method == "POST" and r.path.endswith("/responses")]


def test_a_cooldown_started_by_one_process_steers_the_other(pair: tuple[ProxyProcess, ProxyProcess],
                                                             fakes: list[FakeOpenAI], namespace: str) -> None:
    one, two = pair
    fakes[0].fail_next(500)
    while not creates(fakes[0]):  # until process one tried dep0, which failed and was cooled down in Redis
        assert post(one, "gpt").status_code == 200
    for _ in range(20):
        assert post(two, "gpt").status_code == 200
    assert len(creates(fakes[0])) == 1  # process two never sent dep0 anything
    health = httpx.get(two.url + "/health", headers=AUTH, params={"model": "gpt"}, timeout=30).json()
    cooling = {e["model_id"]: e["cooling_down"] for e in health["healthy_endpoints"] + health["unhealthy_endpoints"]}
    assert cooling == {"dep0": True, "dep1": False}
    with redis.Redis(host="127.0.0.1", port=6379) as client:  # under this test's own prefix
        assert client.pttl(f"{namespace}:respgate:router:cd:dep0") > 0


def test_rpm_is_counted_across_processes(pair: tuple[ProxyProcess, ProxyProcess]) -> None:
    one, two = pair
    for group in ("limited0", "limited1"):  # a run across a minute boundary proves nothing: again, afresh
        minute = time.time() // 60
        answers = [post(server, group).status_code for server in (one, two, one, two)]
        if time.time() // 60 == minute:
            break
    assert answers == [200, 200, 200, 429]
