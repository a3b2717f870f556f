"""Shared fixtures: a proxy on a loopback port for a given config, and the official openai client."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from fakes.server import ServerThread
from respgate.config import load_config
from respgate.proxy.app import Proxy

MASTER_KEY = "sk-test-master-0123456789"

MOCK_MODELS = """
model_list:
  - model_name: mock/echo
    litellm_params: {model: mock/echo}
  - model_name: mock/recall
    litellm_params: {model: mock/recall}
  - model_name: mock/tool
    litellm_params: {model: mock/tool}
  - model_name: mock/reasoning
    litellm_params: {model: mock/reasoning}
  - model_name: mock/fail
    litellm_params: {model: mock/fail}
"""


@pytest.fixture(autouse=True)
def _no_real_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests talk to 127.0.0.1 only; a connection anywhere else is a bug that would call a real provider."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else str(address)
        if isinstance(host, str) and host not in ("127.0.0.1", "::1", "localhost") and "/" not in host:
            raise RuntimeError(f"test tried to reach the network: {host}")
        return real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)
    for name in ("OPENAI_API_KEY", "AZURE_API_KEY", "AZURE_API_BASE", "AZURE_API_VERSION", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


ProxyFactory = Callable[..., ServerThread]


@pytest.fixture
def start_proxy(tmp_path: Path) -> Iterator[ProxyFactory]:
    """`start_proxy(yaml_text, master_key=...)` -> a running proxy; stopped after the test."""
    servers: list[ServerThread] = []

    def start(config_text: str = MOCK_MODELS, *, master_key: str | None = MASTER_KEY,
              general: str = "") -> ServerThread:
        db = tmp_path / f"store-{len(servers)}.db"
        text = config_text + f"\ngeneral_settings:\n  database_url: sqlite:///{db}\n"
        if master_key:
            text += f"  master_key: {master_key}\n"
        text += general
        path = tmp_path / f"config-{len(servers)}.yaml"
        path.write_text(text)
        server = ServerThread(Proxy(load_config(str(path))).app).start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def proxy(start_proxy: ProxyFactory) -> ServerThread:
    return start_proxy()


@pytest.fixture
def client(proxy: ServerThread) -> Iterator[OpenAI]:
    with OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as c:
        yield c
