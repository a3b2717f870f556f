"""Secrets never reach a log line or a client: a proxy with a master key, virtual keys and provider keys,
upstreams that fail in every way — refusing our key and quoting it back, quoting it in a 400's message,
param and code, in a 500's text (past the excerpt's cut, too), in a 429, a stream that breaks, an address
where nothing listens — and every log record (DEBUG, uvicorn's included) and every byte sent to a client
searched for each key."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from fakes.server import ServerThread
from procs import free_port
from respgate.config import load_config
from respgate.observe import logs
from respgate.proxy.app import Proxy

MASTER = "sk-master-3f9a1c77e2d04b5b"
PROVIDER_KEYS = {"openai": "prov-openai-7Qx2Lm9Vb4Zk8Wn1", "deepseek": "prov-chat-Hs6Tq3Jd0Rf5Yc2Pe",
                 "anthropic": "prov-anthropic-Uk4Ng7Ma1Xe9Bt3", "gemini": "prov-gemini-Zr8Kw2Df5Gh1Lp7"}
MODES = ("m401", "m403", "m400", "m500text", "m500long", "m429", "mstream")


def echo_upstream() -> Starlette:
    """Any path: fails as the body's `model` says, quoting the key it was sent wherever it can."""

    async def handle(request: Request) -> Response:
        key = (request.headers.get("x-api-key") or request.headers.get("api-key")
               or request.headers.get("x-goog-api-key") or request.query_params.get("key")
               or request.headers.get("authorization", "").removeprefix("Bearer "))
        body = await request.json()
        mode = body.get("model") or request.url.path.rsplit("/", 1)[-1].split(":")[0]  # Gemini: in the path
        if mode == "m401":
            return JSONResponse({"error": {"message": f"Incorrect API key provided: {key}.", "type":
                                           "invalid_request_error", "code": "invalid_api_key"}}, 401)
        if mode == "m403":
            return PlainTextResponse(f"forbidden for {key}", 403)
        if mode == "m400":
            return JSONResponse({"error": {"message": f"your key {key} cannot do that", "param": key,
                                           "code": f"bad_{key}", "type": "invalid_request_error"}}, 400)
        if mode == "m500text":
            return PlainTextResponse(f"Traceback: KeyError while handling api_key={key}", 500)
        if mode == "m500long":  # the key straddles the 300-byte excerpt the gateway keeps of a text body
            return PlainTextResponse("x" * 290 + key + " tail", 500)
        if mode == "m429":
            return JSONResponse({"error": {"message": f"Rate limit reached for key {key}", "type": "requests",
                                           "code": "rate_limit_exceeded"}}, 429, headers={"retry-after": "1"})

        async def broken() -> Any:
            yield b"event: error\ndata: {\"message\": \"stream broke for " + key.encode() + b"\"}\n\n"
            raise RuntimeError("the upstream died mid-stream")

        return StreamingResponse(broken(), media_type="text/event-stream", status_code=200)

    return Starlette(routes=[Route("/{path:path}", handle, methods=["POST", "GET"])])


def config_text(upstream: str, db: Path) -> str:
    lines = ["model_list:"]
    for provider, key in PROVIDER_KEYS.items():
        base = upstream if provider in ("anthropic", "gemini") else upstream + "/v1"
        for mode in MODES:
            lines += [f"  - model_name: {provider}-{mode}",
                      f"    litellm_params: {{model: {provider}/{mode}, api_base: \"{base}\", api_key: {key}}}"]
    lines += ["  - model_name: gone",
              f"    litellm_params: {{model: openai/gone, api_base: \"http://127.0.0.1:{free_port()}/v1\", "
              f"api_key: {PROVIDER_KEYS['openai']}}}",
              "general_settings:", f"  master_key: {MASTER}", f"  database_url: sqlite:///{db}"]
    return "\n".join(lines) + "\n"


def fragments(secret: str) -> list[str]:
    """The secret and two 12-character windows of it: a cut-off copy is a leak too."""
    return [secret, secret[4:16], secret[-16:-4]]


@pytest.fixture
def upstream() -> Iterator[str]:
    with ServerThread(echo_upstream()) as server:
        yield server.url


@contextlib.contextmanager
def uvicorn_logs_to(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """uvicorn's records at DEBUG too, access log included: its loggers do not propagate to the root,
    and uvicorn sets them up when a server is made, so this goes after that."""
    own = [logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    before = [lg.level for lg in own]
    for lg in own:
        lg.addHandler(caplog.handler)
        lg.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        for lg, level in zip(own, before, strict=True):
            lg.removeHandler(caplog.handler)
            lg.setLevel(level)


def test_no_key_reaches_a_log_line_or_a_client(tmp_path: Path, upstream: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(config_text(upstream, tmp_path / "store.db"))
    config = load_config(str(path))
    logs.install(config)  # as `respgate serve` does: request ids and redaction on every record
    sent: list[str] = []
    try:
        with (caplog.at_level(logging.DEBUG), ServerThread(Proxy(config).app) as server, uvicorn_logs_to(caplog),
              httpx.Client(base_url=server.url, timeout=30) as http):
            master = {"Authorization": f"Bearer {MASTER}"}
            made = http.post("/key/generate", json={"key_alias": "client"}, headers=master)
            virtual = made.json()["key"]
            mine = {"Authorization": f"Bearer {virtual}"}
            answers = [http.get("/key/info", params={"key": virtual}, headers=master),
                       http.get("/key/info", params={"key": virtual}, headers=mine),
                       http.post("/v1/responses", json={"model": "openai-m400", "input": "hi"},
                                 headers={"Authorization": f"Bearer {virtual}x"}),  # a near miss
                       http.post("/v1/responses", json={"model": "openai-m400", "input": "hi"},
                                 headers={"api-key": MASTER[:-1]})]
            for provider in PROVIDER_KEYS:
                for mode in MODES:
                    for stream in (False, True):
                        body = {"model": f"{provider}-{mode}", "input": "hi", "stream": stream}
                        answers.append(http.post("/v1/responses", json=body, headers=mine))
                    chat = {"model": f"{provider}-{mode}", "messages": [{"role": "user", "content": "hi"}]}
                    answers.append(http.post("/v1/chat/completions", json=chat, headers=mine))
            for stream in (False, True):
                answers.append(http.post("/v1/responses", json={"model": "gone", "input": "x", "stream": stream},
                                         headers=mine))
            answers.append(http.get("/health", headers=master))  # calls every deployment, reports errors
            answers += [http.get(path, headers=who) for path in ("/model/info", "/model_group/info", "/v1/models")
                        for who in (master, mine)]
            for r in answers:
                sent.append(f"{r.status_code} {r.headers} {r.text}")
            statuses = {r.status_code for r in answers}
    finally:
        logs.uninstall()
    assert {401, 400, 429, 500, 502}.issubset(statuses)  # the failures really happened
    records = [f"{r.name} {r.getMessage()} {r.exc_text or ''} {r.stack_info or ''}" for r in caplog.records]
    assert any(r.startswith("uvicorn.access") for r in records) and len(records) > 100
    leaks = {text[:400] for secret in (MASTER, virtual, *PROVIDER_KEYS.values()) for piece in fragments(secret)
             for text in sent + records if piece in text}
    assert not leaks, "secrets leaked:\n" + "\n".join(sorted(leaks))
