"""Several `respgate serve` processes on loopback sharing one PostgreSQL schema and one Redis, as several
hosts behind a load balancer would: a chain continues on any instance, a background response started on
one is followed, read and cancelled on the others, a virtual key's limits hold across all of them, and
when one instance is killed mid-run, clients that retry on the others lose nothing they were told about.

Each module run has its own schema (dropped after) and key prefix; keys are fresh per test.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai
import orjson
import pytest
import redis
from openai import OpenAI

from conftest import MASTER_KEY
from grammar import check_stream
from procs import ProxyProcess, free_port, serve_command
from test_faults_kill import seed
from test_store import PG_DSN, fresh_pg_schema

pytestmark = pytest.mark.slow

T = TypeVar("T")
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
UNFINISHED = ("queued", "in_progress")
LONG = " ".join(f"w{i}" for i in range(120))  # at 40 deltas/s a run lasts ~3 s: long enough to catch running
MODELS = """
model_list:
  - model_name: mock/echo
    litellm_params: {model: mock/echo}
  - model_name: mock/recall
    litellm_params: {model: mock/recall}
  - model_name: paced
    litellm_params: {model: mock/echo, mock_tokens_per_second: 40}
"""


def wait_for(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float = 30) -> T:
    deadline = time.monotonic() + timeout
    value = fetch()
    while not done(value):
        assert time.monotonic() < deadline, f"still {value!r}"
        time.sleep(0.05)
        value = fetch()
    return value


@dataclass
class Cluster:
    config: Path
    instances: list[ProxyProcess] = field(default_factory=list)

    def start(self, n: int) -> list[ProxyProcess]:
        """`n` more instances, started together (each on its own port), live when this returns."""
        ports = [free_port() for _ in range(n)]
        started = [ProxyProcess(serve_command(self.config, port), port, env=None, cwd=str(self.config.parent))
                   for port in ports]
        self.instances += started
        for proc in started:
            proc.wait_live()
        return started

    def close(self) -> None:
        for proc in self.instances:
            proc.close()


@pytest.fixture(scope="module")
def schema() -> Iterator[str]:
    with fresh_pg_schema("rg_instances") as name:
        yield name


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, schema: str) -> Iterator[Cluster]:
    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as e:
        pytest.fail(f"these tests need Redis on 127.0.0.1:6379: {e}")
    namespace = f"respgate-instances-{uuid.uuid4().hex[:8]}"
    path = tmp_path_factory.mktemp("instances") / "config.yaml"
    path.write_text(MODELS + f"""
router_settings:
  redis_host: 127.0.0.1
  redis_port: 6379
  cache_kwargs: {{namespace: {namespace}}}
general_settings:
  master_key: {MASTER_KEY}
  database_url: "{PG_DSN}?search_path={schema}"
  user_api_key_cache_ttl: 1
""")
    found = Cluster(path)
    try:
        found.start(3)
        yield found
    finally:
        found.close()
        keys = list(client.scan_iter(match=namespace + ":*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def trio(cluster: Cluster) -> list[ProxyProcess]:
    alive = [p for p in cluster.instances[:3] if p.alive()]
    assert len(alive) == 3
    return alive


def sdk(server: ProxyProcess, key: str = MASTER_KEY) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=30)


# ---------------------------------------------------------------- state shared through PostgreSQL


def test_a_chain_continues_on_every_instance(trio: list[ProxyProcess]) -> None:
    a, b, c = trio
    with sdk(a) as on_a, sdk(b) as on_b, sdk(c) as on_c:
        first = on_a.responses.create(model="mock/recall", input="alpha")
        second = on_b.responses.create(model="mock/recall", input="beta", previous_response_id=first.id)
        with on_c.responses.create(model="mock/recall", input="gamma", previous_response_id=second.id,
                                   stream=True) as stream:
            third = check_stream([e.to_dict() for e in stream])
        fourth = on_a.responses.create(model="mock/recall", input="delta", previous_response_id=third["id"])
        assert fourth.output_text == "alpha | beta | gamma | delta"
        for client in (on_a, on_b, on_c):  # every instance reads every turn, and its input items
            assert client.responses.retrieve(third["id"]).output_text == "alpha | beta | gamma"
            items = client.responses.input_items.list(second.id)
            assert [i.content[0].text for i in items.data] == ["beta"]  # type: ignore[union-attr]


def test_a_background_response_runs_on_one_instance_and_is_read_on_the_others(trio: list[ProxyProcess]) -> None:
    a, b, c = trio
    with sdk(a) as on_a, sdk(b) as on_b, sdk(c) as on_c:
        queued = on_a.responses.create(model="paced", input=LONG, background=True)
        assert queued.status == "queued"
        wait_for(lambda: on_b.responses.retrieve(queued.id).status, lambda s: s == "in_progress")
        with on_b.responses.retrieve(queued.id, stream=True) as stream:  # followed live from another instance
            followed = [e.to_dict() for e in stream]
        final = check_stream(followed)
        assert final["status"] == "completed" and final["output"][0]["content"][0]["text"] == LONG
        done = on_c.responses.retrieve(queued.id)
        assert done.status == "completed" and done.output_text == LONG
        replayed = [e.to_dict() for e in on_c.responses.retrieve(queued.id, stream=True)]
        assert replayed == followed  # the stored events are the ones streamed, whoever reads them

        running = on_a.responses.create(model="paced", input=LONG, background=True)
        wait_for(lambda: on_c.responses.retrieve(running.id).status, lambda s: s == "in_progress")
        cancelled = on_c.responses.cancel(running.id)  # a run on A, cancelled on C
        assert cancelled.status == "cancelled", cancelled.status
        assert wait_for(lambda: on_a.responses.retrieve(running.id).status, lambda s: s not in UNFINISHED) \
            == "cancelled"


# ---------------------------------------------------------------- limits shared through Redis


def admitted(server: ProxyProcess, key: str) -> int:
    r = httpx.post(server.url + "/v1/responses", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                   json={"model": "mock/echo", "input": "hi"})
    assert r.status_code in (200, 429), r.text
    return r.status_code


def test_a_virtual_keys_limits_hold_across_instances(trio: list[ProxyProcess]) -> None:
    a, b, c = trio
    for _ in range(2):  # a run across a minute boundary proves nothing: once more, afresh
        made = httpx.post(a.url + "/key/generate", headers=AUTH, timeout=30, json={"rpm_limit": 4})
        assert made.status_code == 200, made.text
        key = made.json()["key"]
        minute = time.time() // 60
        answers = [admitted(server, key) for server in (a, b, c, b, a, c)]
        if time.time() // 60 == minute:
            break
    assert answers == [200, 200, 200, 200, 429, 429], answers

    parallel = httpx.post(b.url + "/key/generate", headers=AUTH, timeout=30, json={"max_parallel_requests": 1})
    one_at_a_time = parallel.json()["key"]
    with sdk(a, one_at_a_time) as on_a, sdk(c, one_at_a_time) as on_c:
        with on_a.responses.create(model="paced", input=LONG, stream=True) as stream:
            assert next(iter(stream)).type == "response.created"
            with pytest.raises(openai.RateLimitError, match="max_parallel_requests"):
                on_c.responses.create(model="mock/echo", input="refused: one call in flight on A")
        # the slot comes back once A saw its client leave
        wait_for(lambda: admitted(c, one_at_a_time), lambda code: code == 200)


# ---------------------------------------------------------------- one instance dies under load


@dataclass
class Clients:
    """Clients spreading requests over the instances; a connection failure is retried on the next one."""

    targets: list[ProxyProcess]
    told: dict[str, bytes] = field(default_factory=dict)
    chains: dict[str, str] = field(default_factory=dict)  # the last id of each worker's chain -> its text
    retried: int = 0
    served_by: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, worker: int, stop: threading.Event) -> None:
        rng = random.Random(worker)
        prev: str | None = None
        words: list[str] = []
        with httpx.Client(timeout=30, headers=AUTH) as h:
            for n in range(100_000):
                if stop.is_set():
                    return
                word = f"w{worker}n{n}"
                body: dict[str, Any] = {"model": "mock/recall", "input": word}
                if prev is not None and rng.random() < 0.7:
                    body["previous_response_id"] = prev
                else:
                    words = []
                got = self._send(h, n + worker, body)
                if got is None:
                    return
                prev = got["id"]
                words.append(word)
                text = " | ".join(words)
                with self.lock:
                    self.chains[prev] = text
                    if got["output"][0]["content"][0]["text"] != text:
                        self.errors.append(f"{prev} recalled {got['output'][0]['content'][0]['text']!r}")
                        return

    def _send(self, h: httpx.Client, start: int, body: dict[str, Any]) -> dict[str, Any] | None:
        for attempt in range(len(self.targets)):
            server = self.targets[(start + attempt) % len(self.targets)]
            try:
                r = h.post(server.url + "/v1/responses", json=body)
            except httpx.TransportError:  # that instance is gone: the load balancer's next pick
                with self.lock:
                    self.retried += 1
                continue
            if r.status_code != 200:
                with self.lock:
                    self.errors.append(f"{server.url}: {r.status_code} {r.text[:200]}")
                return None
            with self.lock:
                self.told[r.json()["id"]] = r.content
                self.served_by[server.url] = self.served_by.get(server.url, 0) + 1
            parsed: dict[str, Any] = r.json()
            return parsed
        with self.lock:
            self.errors.append("every instance refused")
        return None


def test_an_instance_killed_mid_run_loses_nothing_acknowledged(cluster: Cluster, trio: list[ProxyProcess]) -> None:
    rng = random.Random(seed())
    (victim,) = cluster.start(1)
    clients = Clients([trio[0], victim, trio[1], trio[2]])
    stop = threading.Event()
    workers = [threading.Thread(target=clients.run, args=(n, stop), daemon=True) for n in range(6)]
    for w in workers:
        w.start()
    kill_at = rng.randint(20, 80)
    wait_for(lambda: len(clients.told), lambda n: n >= kill_at or bool(clients.errors), timeout=60)
    victim.kill9()
    after = len(clients.told)
    wait_for(lambda: len(clients.told), lambda n: n >= after + 40 or bool(clients.errors), timeout=60)
    stop.set()
    for w in workers:
        w.join(30)
    assert not clients.errors, clients.errors
    assert not any(w.is_alive() for w in workers)
    assert clients.served_by.get(victim.url, 0) > 0, "the victim never answered anyone: nothing was proven"
    survivors = [p for p in clients.targets if p is not victim]
    with httpx.Client(timeout=30, headers=AUTH) as h:
        for i, (rid, body) in enumerate(clients.told.items()):
            r = h.get(f"{survivors[i % len(survivors)].url}/v1/responses/{rid}")
            assert r.status_code == 200, (rid, r.text)
            assert orjson.loads(r.content) == orjson.loads(body), rid
        # and every chain goes on, on any survivor, whoever made its turns
        for i, (rid, text) in enumerate(list(clients.chains.items())[-12:]):
            r = h.post(f"{survivors[i % len(survivors)].url}/v1/responses",
                       json={"model": "mock/recall", "input": "next", "previous_response_id": rid})
            assert r.status_code == 200, r.text
            assert r.json()["output"][0]["content"][0]["text"] == f"{text} | next"
