"""A response a client was given survives `kill -9` of the server: restart on the same database, and
every such response reads back byte for byte, with its input items, and its chain continues."""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest
from openai import OpenAI

from conftest import MASTER_KEY, MOCK_MODELS
from fakes.openai_upstream import FakeOpenAI
from fakes.server import ServerThread
from procs import ProxyProcess, ProxyProcesses

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
UPSTREAM_KEY = "sk-upstream-durable-4242"
TERMINAL = {"completed", "failed", "incomplete", "cancelled"}


@pytest.fixture
def procs() -> Iterator[ProxyProcesses]:
    with ProxyProcesses() as owner:
        yield owner


def write_config(tmp_path: Path, models: str = MOCK_MODELS) -> Path:
    db = tmp_path / "store.db"
    path = tmp_path / "config.yaml"
    path.write_text(models + f"\ngeneral_settings:\n  database_url: sqlite:///{db}\n  master_key: {MASTER_KEY}\n")
    return path


def sdk(server: ProxyProcess) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=30)


def create_json(client: OpenAI, **params: object) -> tuple[str, bytes]:
    """`responses.create()` through the SDK, keeping the exact body the client received."""
    raw = client.responses.with_raw_response.create(**params)  # type: ignore[call-overload]
    return str(raw.parse().id), bytes(raw.http_response.content)


def create_streamed(client: OpenAI, **params: object) -> tuple[str, bytes] | None:
    """A streamed create through the SDK; the response of its `response.completed` event (as the
    client serialises what it received), or None when the stream ended without one."""
    with client.responses.with_streaming_response.create(stream=True, **params) as r:  # type: ignore[call-overload]
        for line in r.iter_lines():
            if not line.startswith("data:"):
                continue
            event = orjson.loads(line[5:])
            if event["type"] == "response.completed":
                return str(event["response"]["id"]), orjson.dumps(event["response"])
    return None


def body_of(server: ProxyProcess, response_id: str) -> bytes:
    r = httpx.get(f"{server.url}/v1/responses/{response_id}", headers=AUTH)
    assert r.status_code == 200, (response_id, r.text)
    return r.content


def input_items_of(server: ProxyProcess, response_id: str) -> bytes:
    r = httpx.get(f"{server.url}/v1/responses/{response_id}/input_items", headers=AUTH,
                  params={"order": "asc", "limit": 100})
    assert r.status_code == 200, (response_id, r.text)
    return r.content


def assert_rows_whole(db: Path) -> int:
    """Read the store file directly (the server is dead): every row parses, every status is terminal
    and agrees with its JSON. Returns the number of responses."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT id, status, response FROM responses").fetchall()
        for response_id, status, text in rows:
            response = orjson.loads(text)
            assert response["id"] == response_id
            assert status in TERMINAL and response["status"] == status, (response_id, status)
        for (text,) in conn.execute("SELECT item FROM input_items"):
            assert isinstance(orjson.loads(text), dict)
        return len(rows)


def test_sequential_responses_survive_kill9_and_the_chain_continues(
        tmp_path: Path, procs: ProxyProcesses) -> None:
    config = write_config(tmp_path)
    server = procs.spawn(config)
    told: dict[str, bytes] = {}  # id -> the body its client received
    with sdk(server) as client:
        for i in range(3):
            rid, body = create_json(client, model="mock/echo", input=f"json {i}")
            told[rid] = body
            streamed = create_streamed(client, model="mock/echo", input=f"streamed {i}")
            assert streamed is not None
            told[streamed[0]] = streamed[1]
        chain = []
        prev = None
        for i, word in enumerate(["alpha", "beta", "gamma", "delta"]):
            params: dict[str, object] = {"model": "mock/recall", "input": word}
            if prev is not None:
                params["previous_response_id"] = prev
            got = create_json(client, **params) if i % 2 == 0 else create_streamed(client, **params)
            assert got is not None
            prev = got[0]
            chain.append(prev)
            told[prev] = got[1]
    items_before = {rid: input_items_of(server, rid) for rid in told}

    server.kill9()
    assert assert_rows_whole(tmp_path / "store.db") == len(told)
    server = procs.spawn(config)

    for rid, body in told.items():
        assert body_of(server, rid) == body, rid
        assert input_items_of(server, rid) == items_before[rid], rid
    first_items = orjson.loads(items_before[next(iter(told))])["data"]
    assert [c["text"] for c in first_items[0]["content"]] == ["json 0"]
    with sdk(server) as client:
        after = client.responses.create(model="mock/recall", input="epsilon", previous_response_id=chain[-1])
    assert after.output_text == "alpha | beta | gamma | delta | epsilon"


@dataclass
class LoadResult:
    told: dict[str, bytes] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, rid: str, body: bytes, text: str) -> None:
        with self.lock:
            self.told[rid] = body
            self.inputs[rid] = text

    def count(self) -> int:
        with self.lock:
            return len(self.told)


def hammer(server: ProxyProcess, worker: int, killed: threading.Event, result: LoadResult) -> None:
    """Create responses back to back (JSON, streamed, and chained) until the server dies under us."""
    prev: str | None = None
    i = 0
    with sdk(server) as client:
        while not killed.is_set():
            text = f"w{worker} n{i}"
            params: dict[str, object] = {"model": "mock/echo", "input": text}
            if i % 3 == 2 and prev is not None:
                params = {"model": "mock/recall", "input": text, "previous_response_id": prev}
            try:
                got = create_streamed(client, **params) if i % 2 else create_json(client, **params)
            except Exception as e:  # the SDK's transport errors differ by version; before the kill, any is a bug
                if not killed.is_set():
                    result.unexpected.append(f"worker {worker} request {i}: {e!r}")
                return
            if got is None:  # cut off by the kill before response.completed: nothing was promised
                if not killed.is_set():
                    result.unexpected.append(f"worker {worker} request {i}: stream ended early")
                return
            result.record(got[0], got[1], text)
            prev = got[0]
            i += 1


def test_responses_returned_under_load_survive_a_random_kill9(tmp_path: Path, procs: ProxyProcesses) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    config = write_config(tmp_path)
    server = procs.spawn(config)
    killed = threading.Event()
    result = LoadResult()
    workers = [threading.Thread(target=hammer, args=(server, n, killed, result), daemon=True) for n in range(4)]
    for w in workers:
        w.start()
    kill_after = rng.randint(20, 80)
    deadline = time.monotonic() + 20
    while result.count() < kill_after and not result.unexpected and time.monotonic() < deadline:
        time.sleep(0.002)
    killed.set()
    server.kill9()
    for w in workers:
        w.join(15)
    assert not any(w.is_alive() for w in workers)
    assert not result.unexpected, (seed, result.unexpected)
    assert result.count() >= kill_after, (seed, "the load never reached the kill point")

    assert assert_rows_whole(tmp_path / "store.db") >= result.count()
    server = procs.spawn(config)
    for rid, body in result.told.items():
        assert body_of(server, rid) == body, (seed, rid)
        items = orjson.loads(input_items_of(server, rid))["data"]
        assert [c["text"] for c in items[-1]["content"]] == [result.inputs[rid]], (seed, rid)


@pytest.fixture
def fake_openai() -> Iterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI(api_key=UPSTREAM_KEY)
    with ServerThread(fake.app) as upstream:
        yield fake, upstream.url


def test_native_passthrough_response_survives_kill9(
        tmp_path: Path, procs: ProxyProcesses, fake_openai: tuple[FakeOpenAI, str]) -> None:
    fake, url = fake_openai
    models = f"""
model_list:
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_base: "{url}/v1", api_key: "{UPSTREAM_KEY}"}}
"""
    config = write_config(tmp_path, models)
    server = procs.spawn(config)
    with sdk(server) as client:
        told = [create_json(client, model="gpt-4o", input="native json")]
        streamed = create_streamed(client, model="gpt-4o", input="native stream")
        assert streamed is not None
        told.append(streamed)
    items_before = {rid: input_items_of(server, rid) for rid, _ in told}
    assert len(fake.responses) == 2  # both really went upstream

    server.kill9()
    server = procs.spawn(config)
    for rid, body in told:
        assert body_of(server, rid) == body, rid
        assert input_items_of(server, rid) == items_before[rid], rid
    with sdk(server) as client:
        follow = client.responses.create(model="gpt-4o", input="recall", previous_response_id=told[-1][0])
    assert follow.output_text == "native stream"  # the upstream still holds the chain it was given


def test_native_background_response_is_not_failed_by_a_restart(
        tmp_path: Path, procs: ProxyProcesses, fake_openai: tuple[FakeOpenAI, str]) -> None:
    """The upstream, not the gateway, runs a passthrough background response: a gateway restart must not
    end it, and a later retrieve reports how the upstream finished it."""
    fake, url = fake_openai
    models = f"""
model_list:
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_base: "{url}/v1", api_key: "{UPSTREAM_KEY}"}}
"""
    config = write_config(tmp_path, models)
    server = procs.spawn(config)
    with sdk(server) as client:
        queued = client.responses.create(model="gpt-4o", input="in the background", background=True)
    assert queued.status in ("queued", "in_progress")
    server.kill9()
    server = procs.spawn(config)
    deadline = time.monotonic() + 10
    with sdk(server) as client:
        got = client.responses.retrieve(queued.id)
        while got.status in ("queued", "in_progress") and time.monotonic() < deadline:
            time.sleep(0.02)
            got = client.responses.retrieve(queued.id)
    upstream = next(iter(fake.responses.values())).body
    assert got.status == upstream["status"] == "completed", got.error
    assert got.output_text == "Echo: in the background"
