"""The admin UI end to end in headless Chromium (Debian's `chromium`, driven by Playwright; no browser
download): log in, create a key, make requests with it through the openai SDK (a chain across three
providers), find them in Responses, open the chain, watch spend move, check the models, stream in the
playground, revoke the key and see its requests fail; a key that is not an admin's cannot log in.

A screenshot of each page goes to $RESPGATE_TEST_ARTIFACTS (default: the test's tmp_path).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from conftest import MASTER_KEY, ProxyFactory
from fakes.chat_upstream import FakeChat
from fakes.openai_upstream import FakeOpenAI
from fakes.server import ServerThread

CHROMIUM = os.environ.get("RESPGATE_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: apt-get install -y chromium (scripts/test.sh does).",
                    pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("RESPGATE_TEST_ARTIFACTS") or tmp_path) / "ui"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 860})
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.set_default_timeout(10_000)
    yield p
    context.close()
    assert errors == [], errors  # no script error on any page


@pytest.fixture
def upstreams() -> Iterator[tuple[str, str]]:
    with ServerThread(FakeOpenAI(api_key="sk-oa").app) as o, ServerThread(FakeChat(api_key="sk-ds").app) as c:
        yield o.url, c.url


def shoot(page: Page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def open_page(page: Page, url: str, name: str) -> None:
    """Navigate by the header's links, as a person would, and wait until the page shows its data."""
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()
    expect(page.locator("html")).to_have_attribute("data-ready", re.compile(r"\w"))


def login(page: Page, base: str, key: str) -> None:
    page.goto(base + "/ui/")
    page.get_by_label("Master key or admin key").fill(key)
    page.get_by_role("button", name="Log in").click()


def test_the_admin_ui_end_to_end(page: Page, start_proxy: ProxyFactory, upstreams: tuple[str, str],
                                 artifacts: Path) -> None:
    oa, ds = upstreams
    proxy = start_proxy(f"""
model_list:
  - model_name: mock/echo
    litellm_params: {{model: mock/echo}}
    model_info: {{input_cost_per_token: 0.001, output_cost_per_token: 0.002}}
  - model_name: mock/stream
    litellm_params: {{model: mock/echo, mock_tokens_per_second: 200}}
  - model_name: gpt
    litellm_params: {{model: openai/gpt-4o, api_base: "{oa}/v1", api_key: sk-oa}}
  - model_name: ds
    litellm_params: {{model: deepseek/deepseek-chat, api_base: "{ds}/v1", api_key: sk-ds}}
""", general="  proxy_batch_write_at: 0.05\n")
    base = proxy.url

    # Log in: a wrong key is refused, the master key gets in.
    page.goto(base + "/ui/")
    expect(page.get_by_role("heading", name="respgate admin")).to_be_visible()
    shoot(page, artifacts, "01-login")
    login(page, base, "sk-wrong")
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    login(page, base, MASTER_KEY)
    expect(page.locator("html")).to_have_attribute("data-ready", "responses")

    # Create a key: shown once, in a dialog.
    open_page(page, base, "Keys & teams")
    page.get_by_label("Alias").first.fill("ui-e2e")
    page.locator("#nk-max_budget").fill("25")
    page.locator("#nk-rpm_limit").fill("1000")
    page.get_by_role("button", name="Create key").click()
    dialog = page.get_by_role("dialog", name="Your new key")
    expect(dialog).to_be_visible()
    key = page.locator("#new-key-value").inner_text()
    assert key.startswith("sk-")
    dialog.get_by_role("button", name="I have stored it").click()
    row = page.get_by_role("row").filter(has_text="ui-e2e")
    expect(row).to_contain_text("$0 / $25.00")
    shoot(page, artifacts, "02-keys")

    # Requests with the new key through the openai SDK: a chain across three providers.
    with openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0) as sdk:
        t1 = sdk.responses.create(model="mock/echo", input="first turn on the mock")
        t2 = sdk.responses.create(model="gpt", input="second turn on openai", previous_response_id=t1.id)
        t3 = sdk.responses.create(model="ds", input="third turn on deepseek", previous_response_id=t2.id)

    # Find them in Responses, filtered by the key, then by searching an id.
    open_page(page, base, "Responses")
    page.get_by_label("Key", exact=True).select_option(label="ui-e2e")
    page.get_by_role("button", name="Apply").click()
    table = page.get_by_role("table", name="Stored responses, newest first")
    expect(table.get_by_role("row")).to_have_count(4)  # the header and three turns
    expect(table.get_by_role("row").nth(1)).to_contain_text("ds")
    page.get_by_label("Search id or model").fill(t2.id)
    page.get_by_role("button", name="Apply").click()
    expect(table.get_by_role("row")).to_have_count(2)
    shoot(page, artifacts, "03-responses")

    # Open the newest turn: its chain is a timeline across providers, with cost and items.
    page.get_by_label("Search id or model").fill("")
    page.get_by_role("button", name="Apply").click()
    expect(table.get_by_role("row")).to_have_count(4)
    table.get_by_role("link", name=re.compile(t3.id[:22])).click()
    expect(page.locator("html")).to_have_attribute("data-ready", "response")
    chain = page.get_by_role("region", name=re.compile("Chain"))
    expect(chain.get_by_role("img")).to_have_attribute("aria-label", re.compile("3 turns across 3 providers"))
    expect(chain.get_by_role("listitem")).to_have_count(3)
    for provider in ("mock", "openai", "deepseek"):
        expect(chain).to_contain_text(provider)
    expect(page.get_by_role("region", name=re.compile("Input items"))).to_contain_text("third turn on deepseek")
    page.get_by_text("Show all events").click()  # the stream, made when opened
    expect(page.get_by_role("region", name=re.compile("Stream events")).get_by_role("row").last).to_contain_text(
        "response.completed")
    shoot(page, artifacts, "04-response-chain")
    chain.get_by_role("link", name=re.compile(t1.id[:22])).click()  # walk back to the first turn
    expect(page.locator("html")).to_have_attribute("data-ready", "response")
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text("mock/echo")
    assert t1.usage is not None
    cost = t1.usage.input_tokens * 0.001 + t1.usage.output_tokens * 0.002
    expect(facts).to_contain_text(f"${cost:.4f}".rstrip("0"))
    expect(page.locator("#cost")).not_to_contain_text("estimated")  # the spend log's figure came in

    # Spend: the totals move with a new request.
    open_page(page, base, "Spend")
    expect(page.locator("#total-requests")).to_have_text("3")
    expect(page.get_by_role("region", name="By key")).to_contain_text("ui-e2e")
    with openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0) as sdk:
        sdk.responses.create(model="mock/echo", input="one more for the spend page")
    page.get_by_role("button", name="Apply").click()
    page.reload()
    expect(page.locator("#total-requests")).to_have_text("4")
    shoot(page, artifacts, "05-spend")

    # Models: live requests per minute, and health on demand.
    open_page(page, base, "Models")
    echo = page.get_by_role("region", name=re.compile(r"^mock\/echo "))
    expect(echo.get_by_role("cell").nth(3)).to_have_text("2")  # requests in the last minute: t1 and one more
    page.get_by_role("button", name="Check health").click()
    expect(page.get_by_text("healthy", exact=True)).to_have_count(4)
    shoot(page, artifacts, "06-models")

    # Playground: a stream, event by event.
    open_page(page, base, "Playground")
    page.get_by_label("Model").fill("mock/stream")
    page.get_by_label("Input", exact=True).fill("stream these words one by one please")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#p-result")).to_contain_text("completed")
    expect(page.locator("#p-output")).to_have_text("stream these words one by one please")
    assert page.locator("#p-events li").count() >= 10
    expect(page.locator("#p-events")).to_contain_text("response.output_text.delta")
    shoot(page, artifacts, "07-playground")

    # Revoke the key: its requests fail from then on.
    open_page(page, base, "Keys & teams")
    page.get_by_role("button", name="Revoke ui-e2e").click()
    page.get_by_role("dialog", name="Revoke key").get_by_role("button", name="Revoke key").click()
    expect(page.get_by_role("row").filter(has_text="ui-e2e")).to_have_count(0)
    shoot(page, artifacts, "08-keys-revoked")
    with openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0) as sdk, \
            pytest.raises(openai.AuthenticationError):
        sdk.responses.create(model="mock/echo", input="after revocation")


def test_a_key_that_is_not_an_admins_cannot_log_in(page: Page, start_proxy: ProxyFactory, artifacts: Path) -> None:
    proxy = start_proxy()
    plain = httpx.post(proxy.url + "/key/generate", json={"key_alias": "plain"},
                       headers={"Authorization": f"Bearer {MASTER_KEY}"}).json()["key"]
    login(page, proxy.url, plain)
    expect(page.get_by_role("alert")).to_contain_text("not an admin key")
    shoot(page, artifacts, "09-login-refused")
    admin = httpx.post(proxy.url + "/user/new", json={"user_role": "proxy_admin", "user_email": "ops@example.com"},
                       headers={"Authorization": f"Bearer {MASTER_KEY}"}).json()["key"]
    login(page, proxy.url, admin)
    expect(page.locator("html")).to_have_attribute("data-ready", "responses")
    expect(page.locator(".who")).to_contain_text("admin key")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_label("Master key or admin key")).to_be_visible()


# Every form control named by a label (or aria-label), every button and link with a name, every table
# header cell scoped: what a screen reader needs, on the page as it is now.
_UNNAMED = """() => {
  const labels = (el) => (el.labels ? [...el.labels].map((l) => l.textContent).join(' ') : '');
  const name = (el) => (el.getAttribute('aria-label') || labels(el) || el.textContent || el.getAttribute('title') || '')
    .trim();
  const bad = [];
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href]')) {
    if (!name(el)) bad.push(el.outerHTML.slice(0, 80));
  }
  for (const th of document.querySelectorAll('thead th')) {
    if (th.getAttribute('scope') !== 'col') bad.push(th.outerHTML);
  }
  return bad;
}"""


def test_keyboard_only(page: Page, start_proxy: ProxyFactory, artifacts: Path) -> None:
    proxy = start_proxy()
    with openai.OpenAI(base_url=proxy.url + "/v1", api_key=MASTER_KEY, max_retries=0) as sdk:
        first = sdk.responses.create(model="mock/echo", input="typed, not clicked")
    page.goto(proxy.url + "/ui/")
    expect(page.get_by_label("Master key or admin key")).to_be_focused()  # the form starts where typing goes
    page.keyboard.type(MASTER_KEY)
    page.keyboard.press("Enter")
    expect(page.locator("html")).to_have_attribute("data-ready", "responses")
    assert page.evaluate(_UNNAMED) == []

    page.keyboard.press("Tab")  # the first stop is the skip link, then the navigation in order
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    for name in ("Responses", "Keys & teams"):
        page.keyboard.press("Tab")
        expect(page.get_by_role("navigation", name="Main").get_by_role("link", name=name)).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1, name="Keys & teams")).to_be_focused()  # a new page: its heading
    expect(page.locator("html")).to_have_attribute("data-ready", "keys")
    assert page.evaluate(_UNNAMED) == []

    page.keyboard.press("Tab")
    expect(page.get_by_label("Alias").first).to_be_focused()  # the heading, then the first field
    page.keyboard.type("by-keyboard")
    page.keyboard.press("Enter")  # submits the form
    dialog = page.get_by_role("dialog", name="Your new key")
    expect(dialog).to_be_visible()
    assert page.evaluate("document.querySelector('dialog[open]').contains(document.activeElement)")
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(page.get_by_role("row").filter(has_text="by-keyboard")).to_have_count(1)

    for hash_, ready in (("#/spend", "spend"), ("#/models", "models"), ("#/playground", "playground"),
                         (f"#/responses/{first.id}", "response")):
        page.goto(proxy.url + "/ui/" + hash_)
        expect(page.locator("html")).to_have_attribute("data-ready", ready)
        assert page.evaluate(_UNNAMED) == [], hash_
    shoot(page, artifacts, "10-keyboard")
