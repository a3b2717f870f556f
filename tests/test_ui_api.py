"""The admin UI's server side through a real proxy: its page and files (public, cached, gzipped, with a
strict CSP), and its JSON API (admins only: every /ui/api route refuses a key that is not an admin's),
answering with real responses, chains, spend, keys and models made through the openai SDK."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openai
import pytest

from conftest import MASTER_KEY
from fakes.server import ServerThread
from respgate.config import load_config
from respgate.proxy.app import Proxy
from test_store import PG_DSN

MASTER = {"Authorization": f"Bearer {MASTER_KEY}"}
MODELS = """
model_list:
  - model_name: mock/echo
    litellm_params: {model: mock/echo}
    model_info: {input_cost_per_token: 0.001, output_cost_per_token: 0.002}
  - model_name: mock/recall
    litellm_params: {model: mock/recall}
  - model_name: mock/fail
    litellm_params: {model: mock/fail}
"""


def serve(tmp_path: Path, database_url: str) -> Iterator[tuple[Proxy, ServerThread]]:
    path = tmp_path / "config.yaml"
    path.write_text(MODELS + f"general_settings:\n  database_url: {database_url}\n"
                             f"  master_key: {MASTER_KEY}\n  proxy_batch_write_at: 0.05\n")
    proxy = Proxy(load_config(str(path)))
    with ServerThread(proxy.app) as server:
        yield proxy, server


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Proxy, ServerThread]]:
    yield from serve(tmp_path, f"sqlite:///{tmp_path / 'ui.db'}")


@pytest.fixture(params=["sqlite", "postgres"])
def on_each_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Proxy, ServerThread]]:
    """The proxy on SQLite, and on PostgreSQL in a schema of its own (dropped afterwards)."""
    if request.param == "sqlite":
        yield from serve(tmp_path, f"sqlite:///{tmp_path / 'ui.db'}")
        return
    schema = f"ui_test_{uuid.uuid4().hex[:12]}"
    with pg_schema(schema):
        yield from serve(tmp_path, f"{PG_DSN}?search_path={schema}")


@contextlib.contextmanager
def pg_schema(schema: str) -> Iterator[None]:
    """CREATE SCHEMA / DROP SCHEMA through asyncpg, from this (synchronous) test."""
    async def run(sql: str) -> None:
        try:
            conn = await asyncpg.connect(PG_DSN, timeout=5)
        except (OSError, asyncpg.PostgresError) as exc:
            pytest.fail(f"PostgreSQL is not reachable ({type(exc).__name__}); scripts/test.sh starts it.",
                        pytrace=False)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE SCHEMA "{schema}"'))
    try:
        yield
    finally:
        asyncio.run(run(f'DROP SCHEMA "{schema}" CASCADE'))


def get(server: ServerThread, path: str, auth: str = MASTER_KEY, expect: int = 200, **params: str) -> Any:
    r = httpx.get(server.url + path, params=params, headers={"Authorization": f"Bearer {auth}"})
    assert r.status_code == expect, r.text
    return r.json()


def post(server: ServerThread, path: str, body: Any, auth: str = MASTER_KEY, expect: int = 200) -> Any:
    r = httpx.post(server.url + path, json=body, headers={"Authorization": f"Bearer {auth}"}, timeout=30)
    assert r.status_code == expect, r.text
    return r.json()


def sdk(server: ServerThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def test_every_ui_api_route_is_for_admins_only(served: tuple[Proxy, ServerThread]) -> None:
    proxy, server = served
    ui_routes = [(r.path, sorted(r.methods or ())) for r in proxy.routes.routes  # type: ignore[attr-defined]
                 if getattr(r, "path", "").startswith("/ui/api/")]
    assert len(ui_routes) == 8
    plain = post(server, "/key/generate", {"key_alias": "plain"})["key"]
    admin_key = post(server, "/user/new", {"user_role": "proxy_admin", "user_email": "ops@example.com"})["key"]
    for path, methods in ui_routes:
        url = server.url + path.replace("{response_id}", "resp_x")
        for method in (m for m in methods if m != "HEAD"):
            none = httpx.request(method, url)
            assert none.status_code == 401, (path, none.text)
            refused = httpx.request(method, url, headers={"Authorization": f"Bearer {plain}"})
            assert refused.status_code == 403, (path, refused.text)
            assert refused.json()["error"]["code"] == "admin_only"
            allowed = httpx.request(method, url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30)
            assert allowed.status_code == (404 if "resp_x" in url else 200), (path, allowed.text)
    assert get(server, "/ui/api/session", admin_key)["admin"] is True
    assert get(server, "/ui/api/session")["who"] == "master key"


def test_the_page_and_its_files_are_public_cached_and_locked_down(served: tuple[Proxy, ServerThread]) -> None:
    _, server = served
    r = httpx.get(server.url + "/ui")
    assert r.status_code == 308 and r.headers["location"].endswith("/ui/")
    page = httpx.get(server.url + "/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "http" not in csp
    assert page.headers["cache-control"] == "no-cache"
    [version] = re.findall(r'<script type="module" src="static/([0-9a-f]{16})/app.js">', page.text)
    assert f'<link rel="modulepreload" href="static/{version}/pages/keys.js">' in page.text
    static = f"{server.url}/ui/static/{version}"
    js = httpx.get(static + "/app.js", headers={"Accept-Encoding": "gzip"})
    assert js.headers["content-type"].startswith("text/javascript") and js.headers["content-encoding"] == "gzip"
    assert js.headers["cache-control"] == "public, max-age=31536000, immutable"  # the version changes instead
    assert "render(" in js.text  # httpx undid the gzip
    again = httpx.get(static + "/app.js", headers={"If-None-Match": js.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    older = httpx.get(server.url + "/ui/static/0123456789abcdef/app.js")  # a page from before an upgrade
    assert older.text == js.text and older.headers["cache-control"] == "no-cache"
    vendor = httpx.get(static + "/vendor/htm-preact.js")
    assert vendor.status_code == 200 and len(vendor.content) < 20_000
    for path in ("/nothing.js", "/%2e%2e/%2e%2e/pyproject.toml", "/"):
        assert httpx.get(static + path).status_code in (404, 405), path
    everything = b"".join(httpx.get(f"{static}/{p}").content for p in (
        "app.js", "lib.js", "pages/responses.js", "pages/keys.js", "pages/spend.js", "pages/models.js",
        "pages/playground.js", "style.css"))
    assert b"http://" not in everything and b"https://" not in everything  # nothing from elsewhere: works offline


def test_responses_list_and_detail(on_each_database: tuple[Proxy, ServerThread]) -> None:
    _, server = on_each_database
    key = post(server, "/key/generate", {"key_alias": "svc"})["key"]
    token = get(server, "/key/info", key, key=key)["key"]
    other = post(server, "/key/generate", {"key_alias": "other"})["key"]
    client = sdk(server, key)
    r1 = client.responses.create(model="mock/echo", input="one")
    r2 = client.responses.create(model="mock/recall", input="two", previous_response_id=r1.id, user="end-7")
    r3 = client.responses.create(model="mock/echo", input="three", previous_response_id=r2.id)
    failed = client.responses.create(model="mock/fail", input="boom")
    theirs = sdk(server, other).responses.create(model="mock/echo", input="not mine")
    everything = get(server, "/ui/api/responses")
    assert [r["id"] for r in everything["data"]] == [theirs.id, failed.id, r3.id, r2.id, r1.id]
    assert everything["has_more"] is False
    mine = get(server, "/ui/api/responses", key=token)
    assert [r["id"] for r in mine["data"]] == [failed.id, r3.id, r2.id, r1.id]
    assert {r["owner_label"] for r in mine["data"]} == {"svc"}
    owners = {o["label"]: o["owner"] for o in everything["owners"]}
    assert everything["models"] == ["mock/echo", "mock/fail", "mock/recall"]
    assert {"master key", "svc", "other"} <= set(owners)
    assert [r["id"] for r in get(server, "/ui/api/responses", owner=owners["other"])["data"]] == [theirs.id]
    assert [r["id"] for r in get(server, "/ui/api/responses", status="failed")["data"]] == [failed.id]
    assert [r["id"] for r in get(server, "/ui/api/responses", model="mock/recall")["data"]] == [r2.id]
    assert [r["id"] for r in get(server, "/ui/api/responses", q=r2.id)["data"]] == [r2.id]
    assert [r["id"] for r in get(server, "/ui/api/responses", q="RECALL")["data"]] == [r2.id]
    page = get(server, "/ui/api/responses", limit="2")
    assert page["has_more"] is True and page["last_id"] == failed.id
    assert [r["id"] for r in get(server, "/ui/api/responses", limit="2", after=page["last_id"])["data"]] == [
        r3.id, r2.id]
    later = time.time() + 3600
    assert get(server, "/ui/api/responses", since=str(later))["data"] == []
    assert len(get(server, "/ui/api/responses", until=str(later))["data"]) == 5
    assert len(get(server, "/ui/api/responses", since="2000-01-01T00:00:00Z")["data"]) == 5
    assert get(server, "/ui/api/responses", expect=400, since="yesterday")["error"]["param"] == "since"
    assert get(server, "/ui/api/responses", expect=400, limit="500")["error"]["param"] == "limit"

    detail = get(server, f"/ui/api/responses/{r3.id}")
    assert [t["id"] for t in detail["chain"]] == [r1.id, r2.id, r3.id] and detail["chain_complete"] is True
    assert [t["model"] for t in detail["chain"]] == ["mock/echo", "mock/recall", "mock/echo"]
    assert detail["id"] == r3.id and detail["owner_label"] == "svc" and detail["status"] == "completed"
    assert detail["response"]["output"][0]["content"][0]["text"] == "three"
    assert detail["input_items"][0]["content"] in ("three", [{"type": "input_text", "text": "three"}])
    usage = r3.usage
    assert usage is not None
    cost = usage.input_tokens * 0.001 + usage.output_tokens * 0.002
    assert detail["cost"] == pytest.approx(cost) and detail["cost_source"] == "estimated"  # priced from its usage
    logged = get(server, f"/ui/api/responses/{r3.id}/spend")["turns"]
    assert set(logged) == {r1.id, r2.id, r3.id}
    assert logged[r3.id]["cost"] == pytest.approx(cost) and logged[r3.id]["key_alias"] == "svc"
    assert logged[r3.id]["latency_ms"] > 0 and logged[r2.id]["end_user"] == "end-7" and logged[r2.id]["cost"] == 0.0
    assert get(server, "/ui/api/responses/resp_nope/spend", expect=404)["error"]["param"] == "response_id"
    assert detail["events_source"] == "replayed"
    types = [e["type"] for e in detail["events"]]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert get(server, f"/ui/api/responses/{failed.id}")["error"]["code"] == "server_error"
    assert get(server, "/ui/api/responses/resp_nope", expect=404)["error"]["param"] == "response_id"


def test_a_background_response_shows_its_stored_events(served: tuple[Proxy, ServerThread]) -> None:
    _, server = served
    client = sdk(server, MASTER_KEY)
    queued = client.responses.create(model="mock/echo", input="in the background", background=True)
    deadline = time.monotonic() + 10
    while client.responses.retrieve(queued.id).status in ("queued", "in_progress"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    detail = get(server, f"/ui/api/responses/{queued.id}")
    assert detail["background"] is True and detail["events_source"] == "stored"
    assert [e["type"] for e in detail["events"]][:2] == ["response.created", "response.queued"]
    assert detail["events_total"] == len(detail["events"])


def test_spend_keys_and_models(on_each_database: tuple[Proxy, ServerThread]) -> None:
    _, server = on_each_database
    team = post(server, "/team/new", {"team_alias": "core", "max_budget": 5})
    key = post(server, "/key/generate", {"key_alias": "svc", "team_id": team["team_id"], "rpm_limit": 50})["key"]
    client = sdk(server, key)
    for text in ("a", "bb", "ccc"):
        client.responses.create(model="mock/echo", input=text, user="end-1")
    client.responses.create(model="mock/recall", input="d")
    charts = get(server, "/ui/api/spend")["charts"]
    assert list(charts) == ["day", "key", "team", "end_user", "model"]
    by_key = charts["key"]
    assert [b["label"] for b in by_key["bars"]] == ["svc"] and by_key["bars"][0]["requests"] == 4
    assert charts["team"]["bars"][0]["label"] == "core"
    ends = {b["label"]: b["requests"] for b in charts["end_user"]["bars"]}
    assert ends == {"end-1": 3, "no end user": 1}
    models = {b["label"]: b for b in charts["model"]["bars"]}
    assert models["mock/echo"]["requests"] == 3 and models["mock/echo"]["spend"] > 0
    assert sum(b["requests"] for b in charts["day"]["bars"]) == 4 and len(charts["day"]["bars"]) == 30
    days = get(server, "/ui/api/spend", by="day", start_date="2000-01-01", end_date="2000-01-03")
    assert list(days["charts"]) == ["day"] and days["start_date"] == "2000-01-01"
    assert [b["id"] for b in days["charts"]["day"]["bars"]] == ["2000-01-01", "2000-01-02", "2000-01-03"]
    assert get(server, "/ui/api/spend", expect=400, by="day,week")["error"]["param"] == "by"
    assert get(server, "/ui/api/spend", expect=400, start_date="May 1")["error"]["param"] == "start_date"
    assert get(server, "/ui/api/spend", expect=400, start_date="2001-01-02",
               end_date="2001-01-01")["error"]["param"] == "end_date"

    keys = get(server, "/ui/api/keys")
    assert keys["enabled"] is True and keys["models"] == ["mock/echo", "mock/fail", "mock/recall"]
    [svc] = keys["keys"]
    assert svc["key_alias"] == "svc" and svc["team_alias"] == "core" and svc["rpm_limit"] == 50
    assert svc["spend"] > 0 and svc["owner"]
    assert [r["owner_label"] for r in get(server, "/ui/api/responses", owner=svc["owner"])["data"]] == ["svc"] * 4
    assert keys["teams"][0]["key_count"] == 1 and keys["teams"][0]["max_budget"] == 5

    models_view = get(server, "/ui/api/models")
    groups = {g["name"]: g for g in models_view["groups"]}
    assert set(groups) == {"mock/echo", "mock/recall", "mock/fail"}
    echo = groups["mock/echo"]["deployments"][0]
    assert echo["live"]["requests"] == 3 and echo["live"]["tokens"] > 0 and echo["cooling_down"] is False
    assert echo["input_per_million"] == pytest.approx(1000.0)
    health = post(server, "/ui/api/health", None)
    assert {e["model_name"] for e in health["healthy_endpoints"]} == {"mock/echo", "mock/recall"}
    assert [e["model_name"] for e in health["unhealthy_endpoints"]] == ["mock/fail"]


def test_a_proxy_without_keys_serves_the_ui_to_anyone(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(MODELS + f"general_settings:\n  database_url: sqlite:///{tmp_path / 'open.db'}\n")
    with ServerThread(Proxy(load_config(str(path))).app) as server:
        sdk(server, "anything").responses.create(model="mock/echo", input="open")
        session = httpx.get(server.url + "/ui/api/session").json()
        assert session["auth"] is False and session["keys"] is False
        listed = httpx.get(server.url + "/ui/api/responses").json()["data"]
        assert [r["owner_label"] for r in listed] == ["no key"]
        assert httpx.get(server.url + "/ui/api/keys").json()["enabled"] is False
