"""Keys are isolated and admin routes are the admin's: another key's responses, input items, chains,
conversations, spend and key info stay out of reach (the official openai SDK as each key); every route
the proxy registers is walked — none answers without a key except the probes and the docs, and every
admin route refuses a key that is not an admin's; the master key is compared in constant time."""

from __future__ import annotations

import asyncio
import hmac
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from starlette.routing import Route

from conftest import MASTER_KEY
from fakes.server import ServerThread
from respgate.config import load_config
from respgate.errors import AuthenticationError
from respgate.proxy.app import Proxy
from respgate.proxy.auth import Authenticator

MODELS = """
model_list:
  - model_name: mock/echo
    litellm_params: {model: mock/echo}
  - model_name: mock/recall
    litellm_params: {model: mock/recall}
  - model_name: mock/slow
    litellm_params: {model: mock/echo, mock_latency_ms: 3000}
"""
MASTER = {"Authorization": f"Bearer {MASTER_KEY}"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Proxy, ServerThread]]:
    path = tmp_path / "config.yaml"
    path.write_text(MODELS + f"general_settings:\n  master_key: {MASTER_KEY}\n"
                             f"  database_url: sqlite:///{tmp_path / 'store.db'}\n")
    proxy = Proxy(load_config(str(path)))
    with ServerThread(proxy.app) as server:
        yield proxy, server


def new_key(server: ServerThread, **body: Any) -> str:
    r = httpx.post(server.url + "/key/generate", json=body, headers=MASTER)
    assert r.status_code == 200, r.text
    key: str = r.json()["key"]
    return key


def sdk(server: ServerThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_another_keys_things_are_out_of_reach(served: tuple[Proxy, ServerThread]) -> None:
    _, server = served
    key_a, key_b = new_key(server, key_alias="a"), new_key(server, key_alias="b")
    with sdk(server, key_a) as a, sdk(server, key_b) as b:
        mine = a.responses.create(model="mock/echo", input="secret of a")
        running = a.responses.create(model="mock/slow", input="still going", background=True)
        conversation = a.conversations.create(items=[{"type": "message", "role": "user", "content": "hello"}])
        turn = a.responses.create(model="mock/echo", input="in the conversation", conversation=conversation.id)
        item_id = a.conversations.items.list(conversation.id).data[0].id
        assert item_id is not None

        not_found: list[Callable[[], Any]] = [
            lambda: b.responses.retrieve(mine.id),
            lambda: b.responses.retrieve(turn.id),
            lambda: b.responses.delete(mine.id),
            lambda: b.responses.cancel(running.id),
            lambda: b.responses.input_items.list(mine.id),
            lambda: list(b.responses.retrieve(running.id, stream=True)),
            lambda: b.conversations.retrieve(conversation.id),
            lambda: b.conversations.update(conversation.id, metadata={"x": "y"}),
            lambda: b.conversations.items.list(conversation.id),
            lambda: b.conversations.items.retrieve(item_id, conversation_id=conversation.id),
            lambda: b.conversations.items.create(conversation.id, items=[
                {"type": "message", "role": "user", "content": "intrusion"}]),
            lambda: b.conversations.items.delete(item_id, conversation_id=conversation.id),
            lambda: b.conversations.delete(conversation.id),
            lambda: b.responses.create(model="mock/echo", input="join", conversation=conversation.id),
        ]
        for attempt in not_found:
            with pytest.raises(openai.NotFoundError) as e:
                attempt()
            assert "secret" not in str(e.value.body)
        # A chain through another key's response: OpenAI's own answer for an unknown previous id (400).
        for make in (lambda: b.responses.create(model="mock/recall", input="next", previous_response_id=mine.id),
                     lambda: b.responses.input_tokens.count(model="mock/recall", input="x",
                                                            previous_response_id=mine.id)):
            with pytest.raises((openai.NotFoundError, openai.BadRequestError)) as err:
                make()
            assert err.value.body["param"] == "previous_response_id"  # type: ignore[index]
        compact = httpx.post(server.url + "/v1/responses/compact", headers={"Authorization": f"Bearer {key_b}"},
                             json={"model": "mock/echo", "previous_response_id": mine.id})
        assert compact.status_code in (400, 404) and "secret" not in compact.text

        # ... while the owner still has all of it, untouched.
        assert a.responses.retrieve(mine.id).output_text == "secret of a"
        assert [i.type for i in a.conversations.items.list(conversation.id).data] == ["message"] * 3
        assert a.responses.create(model="mock/recall", input="more", previous_response_id=mine.id).output_text == (
            "secret of a | more")
        a.responses.cancel(running.id)


def spend_rows(server: ServerThread, key: str, **params: str) -> list[dict[str, Any]]:
    r = httpx.get(server.url + "/spend/logs", params=params, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()
    return rows


def test_another_keys_spend_and_key_info_are_out_of_reach(served: tuple[Proxy, ServerThread]) -> None:
    _, server = served
    key_a, key_b = new_key(server, key_alias="a"), new_key(server, key_alias="b")
    with sdk(server, key_a) as a, sdk(server, key_b) as b:
        ids_a = {a.responses.with_raw_response.create(model="mock/echo", input=f"a{i}").headers["x-request-id"]
                 for i in range(3)}
        id_b = b.responses.with_raw_response.create(model="mock/echo", input="b").headers["x-request-id"]
    # The admin sees every row once they are written ...
    assert eventually(lambda: ids_a | {id_b} <= {r["request_id"] for r in spend_rows(server, MASTER_KEY)})
    # ... a key only its own, whatever it asks for.
    for params in ({}, {"api_key": key_a}, {"request_id": next(iter(ids_a))}, {"user_id": ""}):
        seen = {r["request_id"] for r in spend_rows(server, key_b, **params)}
        assert not seen & ids_a and seen <= {id_b}
    assert {r["request_id"] for r in spend_rows(server, key_b)} == {id_b}
    report = httpx.get(server.url + "/spend/report", headers={"Authorization": f"Bearer {key_b}"})
    assert report.status_code == 200 and key_a not in report.text
    as_b = {"Authorization": f"Bearer {key_b}"}
    info = httpx.get(server.url + "/key/info", params={"key": key_a}, headers=as_b)
    assert info.status_code == 403 and info.json()["error"]["param"] == "key" and key_a not in info.text
    assert httpx.get(server.url + "/key/info", headers=as_b).json()["info"]["key_alias"] == "b"
    for path in ("/global/spend/report", "/global/spend/keys", "/global/spend"):
        assert httpx.get(server.url + path, headers=as_b).status_code == 403


# -- every route: who may call it ---------------------------------------------------------------------

# Answer without any key: the orchestrator's probes and the API description (and the UI's static page,
# whose login form asks for a key).
PUBLIC = re.compile(r"/health/(liveliness|liveness|readiness)|/openapi\.json|/ui|/ui/|/ui/static/.*")
# The admin's: the master key or a key of a proxy_admin user, nothing less.
ADMIN = re.compile(
    r"/(key|team|user)/(?!info$).*|/(customer|end_user)/.*|/global/spend.*|/metrics/?|/ui/api/.*|/prompts/(?!list$).*")
ADMIN_WRITES = {("/prompts", "POST")}
# Any key (each answers only with what that key may see).
KEYED = re.compile(
    r"(/v1)?/(responses|models|chat/completions|conversations)(/.*)?|/(key|team|user)/info|/spend/(logs|report)"
    r"|(/v1)?/model(_group)?/info|/health|/mcp/?|/prompts/list")


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def every_route(proxy: Proxy) -> list[tuple[str, str]]:
    found = [(route.path, method) for route in proxy.routes.routes if isinstance(route, Route)
             for method in sorted(route.methods or ()) if method != "HEAD"]
    return [*found, ("/v1/responses", "POST"), ("/responses", "POST")]  # the hot path, outside Starlette


def test_every_route_needs_a_key_and_admin_routes_an_admins(served: tuple[Proxy, ServerThread]) -> None:
    proxy, server = served
    plain = {"Authorization": f"Bearer {new_key(server)}"}
    unclassified = []
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for path, method in every_route(proxy):
            url = concrete(path)
            admin = bool(ADMIN.fullmatch(path)) or (path, method) in ADMIN_WRITES
            if PUBLIC.fullmatch(path):
                assert http.request(method, url).status_code not in (401, 403), (method, path)
                continue
            if not admin and not KEYED.fullmatch(path):
                unclassified.append((method, path))
                continue
            anonymous = http.request(method, url, json={})
            assert anonymous.status_code == 401, (method, path, anonymous.status_code)
            assert anonymous.json()["error"]["code"] == "missing_api_key"
            wrong = http.request(method, url, json={}, headers={"Authorization": "Bearer sk-not-a-key-123456"})
            assert wrong.status_code == 401, (method, path, wrong.status_code)
            if admin:
                refused = http.request(method, url, json={}, headers=plain)
                assert refused.status_code == 403, (method, path, refused.status_code, refused.text)
    assert not unclassified, f"routes nobody decided who may call: {unclassified}"


def test_the_master_key_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Virtual keys are looked up by their sha256 (keys/tokens.py): how long a lookup takes depends on a
    hash the caller cannot steer, not on how many leading characters of a real key they guessed. The
    master key is the one secret compared directly, and it goes through hmac.compare_digest."""
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # proxy/auth.py calls it through the module
    guard = Authenticator(MASTER_KEY)

    async def check() -> None:
        principal = await guard.authenticate(f"Bearer {MASTER_KEY}", None)
        assert principal.is_admin
        for near in (MASTER_KEY[:-1] + "X", MASTER_KEY[:-1], MASTER_KEY + "0"):
            with pytest.raises(AuthenticationError):
                await guard.authenticate(None, near)

    asyncio.run(check())
    assert compared[0] == (MASTER_KEY.encode(), MASTER_KEY.encode()) and len(compared) == 4
