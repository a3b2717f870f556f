"""Virtual keys end to end: the admin API through a real proxy, then the official openai SDK as each
key (model access, rpm, calls in flight, budgets, response isolation and team sharing), keys stored
hashed, limits held across two proxies on one Redis and one database (SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openai
import pytest

from conftest import MASTER_KEY, ProxyFactory
from fakes.server import ServerThread
from respgate.config import load_config
from respgate.keys.tokens import hash_token
from respgate.proxy.app import Proxy
from test_keys_helpers import PG_DSN

MODELS = """
model_list:
  - model_name: mock/echo
    litellm_params: {model: mock/echo}
  - model_name: mock/recall
    litellm_params: {model: mock/recall}
  - model_name: mock/slow
    litellm_params: {model: mock/echo, mock_latency_ms: 5000}
  - model_name: mock/priced
    litellm_params: {model: mock/echo}
    model_info: {input_cost_per_token: 0.001, output_cost_per_token: 0.001}
"""
MASTER = {"Authorization": f"Bearer {MASTER_KEY}"}


class Api:
    """The admin API of one proxy, as raw HTTP (to see statuses and shapes exactly)."""

    def __init__(self, server: ServerThread, headers: dict[str, str] | None = None) -> None:
        self.url = server.url
        self.headers = headers or MASTER

    def post(self, path: str, body: Any, status: int = 200) -> Any:
        r = httpx.post(self.url + path, json=body, headers=self.headers)
        assert r.status_code == status, r.text
        return r.json()

    def get(self, path: str, status: int = 200, **params: str) -> Any:
        r = httpx.get(self.url + path, params=params, headers=self.headers)
        assert r.status_code == status, r.text
        return r.json()


def client(server: ServerThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll `check` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.005)
    return False


def admitted(sdk: openai.OpenAI, text: str) -> bool:
    try:
        sdk.responses.create(model="mock/echo", input=text)
    except openai.RateLimitError:
        return False
    return True


@pytest.fixture
def proxy(start_proxy: ProxyFactory) -> ServerThread:
    return start_proxy(MODELS)


def test_admin_api_for_keys_end_to_end(proxy: ServerThread) -> None:
    api = Api(proxy)
    made = api.post("/key/generate", {"key_alias": "svc", "models": ["mock/echo"], "max_budget": 10.0,
                                      "budget_duration": "30d", "rpm_limit": 100, "tpm_limit": 1000,
                                      "max_parallel_requests": 5, "metadata": {"env": "test"}, "duration": "1h"})
    key, token = made["key"], made["token"]
    assert key.startswith("sk-") and token == hash_token(key)
    for name in ("key_alias", "expires", "models", "max_budget", "budget_duration", "budget_reset_at", "spend",
                 "rpm_limit", "tpm_limit", "max_parallel_requests", "metadata", "team_id", "user_id"):
        assert name in made
    assert made["spend"] == 0.0 and made["expires"] is not None and made["budget_reset_at"] is not None
    info = api.get("/key/info", key=key)
    assert info["key"] == token and info["info"]["key_alias"] == "svc" and "token" not in info["info"]
    assert Api(proxy, {"Authorization": f"Bearer {key}"}).get("/key/info")["info"]["key_alias"] == "svc"
    listed = api.get("/key/list", key_alias="svc")
    assert listed["keys"] == [token] and listed["total_count"] == 1
    full = api.get("/key/list", key_alias="svc", return_full_object="true")
    assert full["keys"][0]["token"] == token
    updated = api.post("/key/update", {"key": key, "rpm_limit": 7, "metadata": {"env": "prod"}})
    assert updated["rpm_limit"] == 7 and updated["metadata"] == {"env": "prod"} and updated["max_budget"] == 10.0
    bad = api.post("/key/generate", {"rpm_limit": "many"}, status=400)["error"]
    assert bad["param"] == "rpm_limit"
    assert api.post("/key/generate", {"budget_duration": "soon"}, status=400)["error"]["param"] == "budget_duration"
    assert api.post("/key/update", {"key": "sk-nope"}, status=404)["error"]["param"] == "key"
    assert api.post("/key/delete", {"keys": [key]}) == {"deleted_keys": [key]}
    assert api.get("/key/info", status=404, key=key)["error"]["code"] == "key_not_found"
    r = httpx.get(proxy.url + "/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 401


def test_only_admins_manage_keys_and_a_key_reads_only_its_own_info(proxy: ServerThread) -> None:
    api = Api(proxy)
    mine = api.post("/key/generate", {})["key"]
    other = api.post("/key/generate", {})["key"]
    as_key = Api(proxy, {"Authorization": f"Bearer {mine}"})
    for path in ("/key/generate", "/team/new", "/user/new", "/customer/new", "/key/delete"):
        assert as_key.post(path, {}, status=403)["error"]["code"] == "admin_only"
    assert as_key.get("/key/list", status=403)
    assert as_key.get("/key/info", status=403, key=other)["error"]["param"] == "key"
    admin_user = api.post("/user/new", {"user_role": "proxy_admin", "user_email": "ops@example.com"})
    as_admin = Api(proxy, {"Authorization": f"Bearer {admin_user['key']}"})
    assert as_admin.post("/key/generate", {})["key"].startswith("sk-")


def test_teams_users_and_customers_end_to_end(proxy: ServerThread) -> None:
    api = Api(proxy)
    team = api.post("/team/new", {"team_alias": "core", "max_budget": 50.0, "models": ["mock/echo"],
                                  "members_with_roles": [{"role": "admin", "user_id": "u-1"}]})
    team_id = team["team_id"]
    assert team["team_alias"] == "core" and team["spend"] == 0.0 and team["blocked"] is False
    assert api.post("/team/new", {"team_id": team_id}, status=400)["error"]["param"] == "team_id"
    assert api.post("/team/update", {"team_id": team_id, "rpm_limit": 9})["data"]["rpm_limit"] == 9
    user = api.post("/user/new", {"user_id": "u-1", "user_email": "u1@example.com", "teams": [team_id],
                                  "max_budget": 5.0})
    assert user["key"].startswith("sk-") and user["user_role"] == "internal_user" and user["teams"] == [team_id]
    team_key = api.post("/key/generate", {"team_id": team_id, "user_id": "u-1"})["key"]
    info = api.get("/team/info", team_id=team_id)
    assert info["team_info"]["rpm_limit"] == 9 and hash_token(team_key) in {k["token"] for k in info["keys"]}
    assert [t["team_id"] for t in api.get("/team/list")] == [team_id]
    added = api.post("/team/member_add", {"team_id": team_id, "member": {"role": "user", "user_id": "u-2"}})
    assert {m["user_id"] for m in added["members_with_roles"]} == {"u-1", "u-2"}
    user_info = api.get("/user/info", user_id="u-1")
    assert user_info["user_info"]["max_budget"] == 5.0 and len(user_info["keys"]) == 2
    assert [t["team_id"] for t in user_info["teams"]] == [team_id]
    assert api.get("/user/list")["total"] == 1
    assert api.post("/user/update", {"user_id": "u-1", "user_role": "sudo"}, status=400)["error"]["param"] == \
        "user_role"
    assert api.post("/user/update", {"user_id": "u-1", "max_budget": 6})["max_budget"] == 6.0
    customer = api.post("/customer/new", {"user_id": "end-1", "alias": "acme", "max_budget": 2.0,
                                          "budget_duration": "1d"})
    assert customer["litellm_budget_table"]["max_budget"] == 2.0 and customer["blocked"] is False
    assert api.post("/customer/new", {"user_id": "end-1"}, status=400)["error"]["param"] == "user_id"
    assert api.get("/customer/info", end_user_id="end-1")["alias"] == "acme"
    assert api.get("/end_user/info", end_user_id="end-1")["alias"] == "acme"
    assert api.post("/customer/update", {"user_id": "end-1", "max_budget": 3.0})["litellm_budget_table"][
        "max_budget"] == 3.0
    assert [c["user_id"] for c in api.get("/customer/list")] == ["end-1"]
    assert api.get("/customer/info", status=404, end_user_id="nobody")["error"]["param"] == "end_user_id"
    assert api.post("/customer/delete", {"user_ids": ["end-1"]})["deleted_customers"] == 1
    assert api.post("/team/delete", {"team_ids": [team_id]}) == {"deleted_teams": [team_id]}
    r = httpx.get(proxy.url + "/v1/models", headers={"Authorization": f"Bearer {team_key}"})
    assert r.status_code == 401  # a team's keys go with it
    assert api.post("/user/delete", {"user_ids": ["u-1"]}) == {"deleted_users": ["u-1"]}
    assert api.get("/user/info", status=404, user_id="u-1")


def test_the_sdk_as_a_key_meets_its_model_access(proxy: ServerThread) -> None:
    key = Api(proxy).post("/key/generate", {"models": ["mock/echo"]})["key"]
    with client(proxy, key) as sdk:
        assert sdk.responses.create(model="mock/echo", input="hello").output_text == "hello"
        with pytest.raises(openai.AuthenticationError) as refused:
            sdk.responses.create(model="mock/recall", input="hello")
        assert refused.value.status_code == 401
        assert "key not allowed to access model" in refused.value.message
        with pytest.raises(openai.AuthenticationError):
            sdk.chat.completions.create(model="mock/recall", messages=[{"role": "user", "content": "hi"}])


def test_the_sdk_as_a_key_meets_its_rpm_limit(proxy: ServerThread) -> None:
    key = Api(proxy).post("/key/generate", {"rpm_limit": 2})["key"]
    with client(proxy, key) as sdk:
        sdk.responses.create(model="mock/echo", input="one")
        sdk.responses.create(model="mock/echo", input="two")
        with pytest.raises(openai.RateLimitError) as refused:
            sdk.responses.create(model="mock/echo", input="three")
    assert refused.value.status_code == 429 and int(refused.value.response.headers["retry-after"]) >= 1
    assert "Limit type: requests" in refused.value.message


def test_the_sdk_as_a_key_meets_its_max_parallel_requests(proxy: ServerThread) -> None:
    key = Api(proxy).post("/key/generate", {"max_parallel_requests": 1})["key"]
    with client(proxy, key) as sdk:
        stream = sdk.responses.create(model="mock/slow", input="slow one", stream=True)
        first = next(iter(stream))  # the call is in flight: its slot is held
        assert first.type == "response.created"
        with pytest.raises(openai.RateLimitError) as refused:
            sdk.responses.create(model="mock/echo", input="second")
        assert "max_parallel_requests" in refused.value.message
        stream.close()  # the client leaves: the slot is given back when the gateway sees it
        assert eventually(lambda: admitted(sdk, "third")), "the slot was never given back"


def test_the_sdk_as_a_key_meets_its_budget(proxy: ServerThread) -> None:
    api = Api(proxy)
    key = api.post("/key/generate", {"max_budget": 0.005})["key"]
    with client(proxy, key) as sdk:
        raw = sdk.responses.with_raw_response.create(model="mock/priced", input="hello there")
        assert float(raw.headers["x-litellm-response-cost"]) == pytest.approx(0.006)
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.responses.create(model="mock/priced", input="hello there")
    assert refused.value.status_code == 400
    assert refused.value.body["type"] == "budget_exceeded"  # type: ignore[index]
    assert refused.value.body["message"] == "Budget has been exceeded! Current cost: 0.006, Max budget: 0.005"  # type: ignore[index]
    assert api.get("/key/info", key=key)["info"]["spend"] == pytest.approx(0.006)
    api.post("/customer/new", {"user_id": "cust-e2e", "max_budget": 0.001})
    with client(proxy, MASTER_KEY) as sdk:
        sdk.responses.create(model="mock/priced", input="hi", user="cust-e2e")
        with pytest.raises(openai.BadRequestError, match="End User=cust-e2e over budget"):
            sdk.responses.create(model="mock/priced", input="hi", user="cust-e2e")


def test_a_key_sees_only_its_own_responses_unless_its_team_shares_them(proxy: ServerThread) -> None:
    api = Api(proxy)
    a, b = api.post("/key/generate", {})["key"], api.post("/key/generate", {})["key"]
    team = api.post("/team/new", {"metadata": {"share_responses": True}})["team_id"]
    c, d = (api.post("/key/generate", {"team_id": team})["key"] for _ in range(2))
    with client(proxy, a) as as_a, client(proxy, b) as as_b, client(proxy, c) as as_c, client(proxy, d) as as_d:
        mine = as_a.responses.create(model="mock/echo", input="private")
        with pytest.raises(openai.NotFoundError):
            as_b.responses.retrieve(mine.id)
        with pytest.raises(openai.NotFoundError):
            as_b.responses.delete(mine.id)
        with pytest.raises(openai.BadRequestError):
            as_b.responses.create(model="mock/recall", input="next", previous_response_id=mine.id)
        assert as_a.responses.retrieve(mine.id).output_text == "private"
        shared = as_c.responses.create(model="mock/echo", input="team work")
        assert as_d.responses.retrieve(shared.id).output_text == "team work"
        follow = as_d.responses.create(model="mock/recall", input="more", previous_response_id=shared.id)
        assert follow.output_text == "team work | more"
        with pytest.raises(openai.NotFoundError):
            as_a.responses.retrieve(shared.id)


def test_keys_are_stored_hashed(start_proxy: ProxyFactory, tmp_path: Path) -> None:
    proxy = start_proxy(MODELS)
    key = Api(proxy).post("/key/generate", {"key_alias": "hashed"})["key"]
    with client(proxy, key) as sdk:
        sdk.responses.create(model="mock/echo", input="hi")
    dump = b""
    for db in tmp_path.glob("store-*.db*"):
        dump += db.read_bytes()
    assert hash_token(key).encode() in dump and key.encode() not in dump
    with sqlite3.connect(next(tmp_path.glob("store-*.db"))) as conn:
        rows = conn.execute("SELECT id FROM keys_entities WHERE kind = 'key'").fetchall()
    assert rows == [(hash_token(key),)]


# -- two instances ------------------------------------------------------------------------------------

@pytest.fixture
def pair_on(tmp_path: Path) -> Iterator[Any]:
    """`pair_on(database_url)` -> two proxies on that database and one Redis."""
    servers: list[ServerThread] = []

    def start(database_url: str) -> tuple[ServerThread, ServerThread]:
        text = MODELS + f"""
general_settings:
  master_key: {MASTER_KEY}
  database_url: "{database_url}"
  user_api_key_cache_ttl: 1
router_settings:
  redis_host: 127.0.0.1
  redis_port: 6379
"""
        path = tmp_path / f"config-{uuid.uuid4().hex}.yaml"
        path.write_text(text)
        for _ in range(2):
            servers.append(ServerThread(Proxy(load_config(str(path))).app).start())
        return servers[-2], servers[-1]

    yield start
    for s in servers:
        s.stop()


def limits_hold_across(one: ServerThread, two: ServerThread) -> None:
    key = Api(one).post("/key/generate", {"rpm_limit": 4, "max_parallel_requests": 1})["key"]
    with client(one, key) as first, client(two, key) as second:
        first.responses.create(model="mock/echo", input="1")  # the key was made on `one`; `two` reads it
        second.responses.create(model="mock/echo", input="2")
        stream = first.responses.create(model="mock/slow", input="3", stream=True)
        assert next(iter(stream)).type == "response.created"
        with pytest.raises(openai.RateLimitError, match="Limit type: max_parallel_requests"):
            second.responses.create(model="mock/echo", input="refused: one call in flight on the other proxy")
        stream.close()  # the slot comes back once `one` has seen the client leave
        assert eventually(lambda: admitted(second, "4")), "the slot was never given back"
        with pytest.raises(openai.RateLimitError, match="Limit type: requests"):
            first.responses.create(model="mock/echo", input="5")
    Api(two).post("/key/delete", {"keys": [key]})
    # `one` trusts its cache for user_api_key_cache_ttl (1 s) at most
    assert eventually(lambda: httpx.get(one.url + "/key/info", headers={"Authorization": f"Bearer {key}"})
                      .status_code == 401), "the deleted key kept working on the other instance"


def test_limits_hold_across_two_proxies_on_sqlite_and_redis(pair_on: Any, tmp_path: Path) -> None:
    one, two = pair_on(f"sqlite:///{tmp_path / 'shared.db'}")
    limits_hold_across(one, two)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    schema = f"keys_e2e_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_DSN)
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_DSN}?search_path={schema}"
    finally:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()


def test_limits_hold_across_two_proxies_on_postgres_and_redis(pair_on: Any, pg_url: str) -> None:
    one, two = pair_on(pg_url)
    limits_hold_across(one, two)


def test_a_regenerated_key_keeps_its_responses_and_the_old_key_stops(proxy: ServerThread) -> None:
    api = Api(proxy)
    old = api.post("/key/generate", {"key_alias": "rotating"})["key"]
    with client(proxy, old) as sdk:
        made = sdk.responses.create(model="mock/echo", input="before rotation")
    new = api.post(f"/key/{old}/regenerate", {})
    assert new["key"] != old and new["key_alias"] == "rotating" and new["token"] == hash_token(new["key"])
    with client(proxy, old) as sdk, pytest.raises(openai.AuthenticationError):
        sdk.responses.retrieve(made.id)
    with client(proxy, new["key"]) as sdk:
        assert sdk.responses.retrieve(made.id).output_text == "before rotation"
    again = api.post("/key/regenerate", {"key": new["key"]})
    assert api.post("/key/block", {"key": again["key"]})["blocked"] is True
    r = httpx.get(proxy.url + "/v1/models", headers={"Authorization": f"Bearer {again['key']}"})
    assert r.status_code == 401 and "blocked" in r.json()["error"]["message"]
