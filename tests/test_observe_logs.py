"""Request ids in every log record and no secret in any (observe/logs.py): unit, then a real proxy whose
callback fails with the keys in its exception, logging from the callback worker."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import MASTER_KEY, MOCK_MODELS
from fakes.server import ServerThread
from respgate.config import load_config
from respgate.observe import logs
from respgate.proxy.app import Proxy

UPSTREAM_KEY = "upstream-provider-key-0987654321"
VIRTUAL_KEY = "sk-virtual-abcdefghijklmnop"
AWS_SECRET = "aws-secret-value-ZYXWVUT"


@pytest.fixture
def installed() -> Iterator[None]:
    yield
    logs.uninstall()


def config_text(tmp_path: Path, extra: str = "") -> str:
    return (MOCK_MODELS + f"""  - model_name: upstream
    litellm_params:
      model: openai/gpt-test
      api_key: {UPSTREAM_KEY}
      api_base: http://127.0.0.1:9
  - model_name: bedrock-model
    litellm_params:
      model: bedrock/anthropic.claude
      aws_secret_access_key: {AWS_SECRET}
router_settings:
  redis_password: redis-pass-12345
general_settings:
  master_key: {MASTER_KEY}
  database_url: sqlite:///{tmp_path}/db.sqlite
""" + extra)


def load(tmp_path: Path, extra: str = "") -> Any:
    path = tmp_path / "c.yaml"
    path.write_text(config_text(tmp_path, extra))
    return load_config(str(path))


def test_redactor_knows_the_configs_secrets_and_the_shapes_of_others(tmp_path: Path) -> None:
    r = logs.Redactor.from_config(load(tmp_path))
    text = (f"master {MASTER_KEY} upstream {UPSTREAM_KEY} aws {AWS_SECRET} redis redis-pass-12345 "
            f"virtual {VIRTUAL_KEY} header Authorization: Bearer tok_abcdefgh api-key: azure-key-123456 "
            "url postgres://app:pg-password@db/x")
    scrubbed = r.scrub(text)
    for secret in (MASTER_KEY, UPSTREAM_KEY, AWS_SECRET, "redis-pass-12345", VIRTUAL_KEY, "tok_abcdefgh",
                   "azure-key-123456", "pg-password"):
        assert secret not in scrubbed
    assert "Authorization: Bearer [REDACTED]" in scrubbed and "postgres://app:[REDACTED]@db/x" in scrubbed
    assert r.scrub("task-abcdefghijkl and a bearer token") == "task-abcdefghijkl and a bearer token"


def test_every_record_gets_the_request_id_and_loses_its_secrets(
        tmp_path: Path, installed: None, caplog: pytest.LogCaptureFixture) -> None:
    logs.install(load(tmp_path))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(logs.FORMAT))
    logger = logging.getLogger("test.observe.logs")
    logger.addHandler(handler)
    try:
        token = logs.bind_request_id("req-123")
        with caplog.at_level(logging.INFO):
            logger.info("calling with key %s", UPSTREAM_KEY)
            try:
                raise ValueError(f"upstream said: bad key {VIRTUAL_KEY}")
            except ValueError:
                logger.exception("failed")
        logs.reset_request_id(token)
        logger.warning("outside a request")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "[req-123] calling with key [REDACTED]" in out
    assert "ValueError: upstream said: bad key [REDACTED]" in out
    assert "[-] outside a request" in out
    assert UPSTREAM_KEY not in out and VIRTUAL_KEY not in out
    assert UPSTREAM_KEY not in caplog.text and VIRTUAL_KEY not in caplog.text
    assert [r.request_id for r in caplog.records] == ["req-123", "req-123", "-"]  # type: ignore[attr-defined]


def test_filters_for_a_handler_of_your_own(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(logs.FORMAT))
    handler.addFilter(logs.RequestIdFilter())
    handler.addFilter(logs.RedactionFilter(logs.Redactor.from_config(load(tmp_path))))
    logger = logging.getLogger("test.observe.filters")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("key=%s", MASTER_KEY)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    assert stream.getvalue().endswith("[-] key=[REDACTED]\n")


def test_proxy_logs_carry_request_ids_and_no_key(tmp_path: Path, installed: None,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "leaky_callbacks.py").write_text(f"""
import logging
log = logging.getLogger("user.callbacks")

def leaky(kwargs, response, start, end):
    log.warning("my callback sees model %s; my keys are {MASTER_KEY} and {UPSTREAM_KEY}", kwargs["model"])
    raise RuntimeError("Authorization: Bearer {MASTER_KEY} api_key={UPSTREAM_KEY} {VIRTUAL_KEY}")
""")
    config = load(tmp_path, "litellm_settings:\n  success_callback: [leaky_callbacks.leaky]\n")
    logs.install(config)
    proxy = Proxy(config)
    server = ServerThread(proxy.app).start()
    try:
        with caplog.at_level(logging.WARNING):
            r = httpx.post(server.url + "/v1/responses", headers={"Authorization": f"Bearer {MASTER_KEY}",
                                                                  "x-request-id": "client-req-42"},
                           json={"model": "mock/echo", "input": "hello"}, timeout=10)
            assert r.status_code == 200 and r.headers["x-request-id"] == "client-req-42"
            observe = proxy.gateway.platform.observe
            assert observe is not None
            deadline = 200  # poll: the callback runs on the worker, after the response
            while observe.dispatcher.failed < 1 and deadline:
                time.sleep(0.01)
                deadline -= 1
    finally:
        server.stop()
    mine = [rec for rec in caplog.records if rec.name in ("user.callbacks", "respgate.observe")]
    assert len(mine) == 2
    assert all(rec.request_id == "client-req-42" for rec in mine)  # type: ignore[attr-defined]
    assert "RuntimeError: Authorization: Bearer [REDACTED]" in caplog.text
    for secret in (MASTER_KEY, UPSTREAM_KEY, VIRTUAL_KEY):
        assert secret not in caplog.text


def test_arguments_stay_arguments_unless_a_secret_spans_the_template(installed: None) -> None:
    logs.install(None)
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger = logging.getLogger("test.observe.args")
    logger.addHandler(Keep())
    logger.propagate = False
    try:
        logger.warning('%s - "%s %s" %d', "127.0.0.1", "GET", "/v1/models?x=sk-abcdefghijklmnop", 200)
        logger.warning("Authorization: Bearer %s", "tok_abcdefghijkl")  # the shape needs both parts
    finally:
        logger.handlers.clear()
        logger.propagate = True
    access, split = seen
    assert access.args == ("127.0.0.1", "GET", "/v1/models?x=[REDACTED]", 200)  # uvicorn's formatter reads these
    assert split.getMessage() == "Authorization: Bearer [REDACTED]"
