"""`respgate serve` as a user runs it: the default config, config mistakes, secrets, exposure, workers."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from conftest import MASTER_KEY, MOCK_MODELS
from procs import ProxyProcesses, free_port, run_cli

pytestmark = pytest.mark.slow

MOCK_NAMES = {"mock/echo", "mock/recall", "mock/tool", "mock/reasoning", "mock/fail"}


@pytest.fixture
def procs() -> Iterator[ProxyProcesses]:
    with ProxyProcesses() as owner:
        yield owner


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The child inherits this environment: nothing of the developer's may change what it serves."""
    for name in ("RESPGATE_MASTER_KEY", "RESPGATE_DB", "RESPGATE_CONFIG", "SOME_SECRET"):
        monkeypatch.delenv(name, raising=False)


def nobody_listens(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_serve_without_config_serves_the_mock_models(tmp_path: Path, procs: ProxyProcesses) -> None:
    db = tmp_path / "default.db"
    server = procs.spawn(None, env={"RESPGATE_DB": str(db)}, cwd=tmp_path)
    models = httpx.get(server.url + "/v1/models").json()
    assert {m["id"] for m in models["data"]} == MOCK_NAMES
    with OpenAI(base_url=server.url + "/v1", api_key="sk-anything", max_retries=0) as client:
        r = client.responses.create(model="mock/echo", input="Hello there")
        assert r.output_text == "Hello there"
        assert client.responses.retrieve(r.id).output_text == "Hello there"
    assert db.exists()  # the store went where RESPGATE_DB said, not ./respgate.db
    assert not (tmp_path / "respgate.db").exists()


INVALID_CONFIGS = {
    "yaml": ("model_list:\n  - model_name: a\n    litellm_params: {model: mock/echo\n", ["YAML syntax error", ":4:"]),
    "no_model_name": ("model_list:\n  - litellm_params: {model: mock/echo}\n", ["model_list[0].model_name"]),
    "rpm_not_int": ("model_list:\n  - model_name: a\n    litellm_params: {model: mock/echo, rpm: fast}\n",
                    ["model_list[0].litellm_params.rpm", "integer"]),
}


@pytest.mark.parametrize("case", sorted(INVALID_CONFIGS))
def test_invalid_config_exits_without_serving(tmp_path: Path, case: str) -> None:
    text, expected = INVALID_CONFIGS[case]
    path = tmp_path / "config.yaml"
    path.write_text(text)
    port = free_port()
    done = run_cli(["serve", "--config", str(path), "--port", str(port)], cwd=tmp_path)
    assert done.returncode != 0
    for fragment in expected:
        assert fragment in done.stderr, done.stderr
    assert "serving on" not in done.stderr and "Uvicorn running" not in done.stderr
    assert nobody_listens(port)


def test_upstream_key_from_the_environment_never_reaches_the_logs(tmp_path: Path, procs: ProxyProcesses) -> None:
    secret = "sk-live-" + "7f3a9c" * 6
    master = "sk-master-" + "b41d" * 6
    closed = free_port()  # nothing listens there: the upstream call fails
    path = tmp_path / "config.yaml"
    path.write_text(f"""
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: http://127.0.0.1:{closed}/v1
      api_key: os.environ/SOME_SECRET
general_settings:
  master_key: os.environ/SOME_MASTER
  database_url: sqlite:///{tmp_path / "store.db"}
""")
    server = procs.spawn(path, env={"SOME_SECRET": secret, "SOME_MASTER": master}, args=["--log-level", "debug"])
    headers = {"Authorization": f"Bearer {master}"}
    failed = httpx.post(server.url + "/v1/responses", headers=headers, json={"model": "gpt-4o", "input": "hi"})
    streamed = httpx.post(server.url + "/v1/responses", headers=headers,
                          json={"model": "gpt-4o", "input": "hi", "stream": True})
    assert failed.status_code >= 500 and streamed.status_code >= 500, (failed.text, streamed.text)
    for r in (failed, streamed):
        assert secret not in r.text and master not in r.text
    server.stop()
    log = server.stderr_text()
    assert "Started server process" in log  # the verbose level really took effect (hidden at "warning")
    assert secret not in log
    assert master not in log, log


def test_public_host_without_master_key_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(MOCK_MODELS)
    port = free_port()
    done = run_cli(["serve", "--config", str(path), "--host", "0.0.0.0", "--port", str(port)], cwd=tmp_path)
    assert done.returncode == 2
    assert "master_key" in done.stderr and "--allow-unauthenticated" in done.stderr, done.stderr
    assert nobody_listens(port)


def test_allow_unauthenticated_opens_a_public_host(tmp_path: Path, procs: ProxyProcesses) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(MOCK_MODELS + f"general_settings:\n  database_url: sqlite:///{tmp_path / 'store.db'}\n")
    server = procs.spawn(path, host="0.0.0.0", args=["--allow-unauthenticated"])
    r = httpx.post(server.url + "/v1/responses", json={"model": "mock/echo", "input": "open"})
    assert r.status_code == 200 and r.json()["output"][0]["content"][0]["text"] == "open"


def test_two_workers_share_the_store(tmp_path: Path, procs: ProxyProcesses) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(MOCK_MODELS + f"general_settings:\n  database_url: sqlite:///{tmp_path / 'store.db'}\n"
                    f"  master_key: {MASTER_KEY}\n")
    server = procs.spawn(path, args=["--workers", "2"])
    assert len(server.group_members()) >= 3  # the supervisor and two workers
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    created = {}
    for i in range(6):
        # A fresh connection per request, so the kernel spreads them over both workers' accepts.
        r = httpx.post(server.url + "/v1/responses", headers=headers, json={"model": "mock/echo", "input": f"n{i}"})
        assert r.status_code == 200, r.text
        created[r.json()["id"]] = r.content
    for rid, body in created.items():
        for _ in range(4):
            got = httpx.get(f"{server.url}/v1/responses/{rid}", headers=headers)
            assert got.status_code == 200 and got.content == body, (rid, got.text)
    assert server.stop() == 0
    deadline = time.monotonic() + 5  # killed workers may take a moment to leave the process table
    while server.group_members() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.group_members() == []
