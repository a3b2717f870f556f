"""The prompt registry without the proxy: templates, rendering, resolution rules and the stores.

The PostgreSQL store needs the server of $RESPGATE_TEST_PG_DSN; each test gets its own schema.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from respgate.calls import Principal
from respgate.errors import ConfigError, InvalidRequestError, NotFoundError
from respgate.prompts import PromptRegistry, config_prompts, parse_version, split_versioned_id
from respgate.prompts.postgres import PostgresPromptStore
from respgate.prompts.store import MemoryPromptStore, PromptStore, SqlitePromptStore
from respgate.prompts.template import PromptFormatError, check_variables, parse_template
from test_store import PG_DSN

NOBODY = Principal()
IMAGE = {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"}
PDF = {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}

SUPPORT = """---
model: gpt-4o
temperature: 0.2
max_tokens: 300
---
System: You are a support agent for {{ company }}.
Be brief.

User: My name is {{name}}. Here is the photo: {{photo}} What is wrong?
Assistant: Let me look, {{name}}.
"""


def render(params: dict[str, Any], variables: dict[str, Any] | None = None, prompt_id: str = "p") -> Any:
    template = parse_template(prompt_id, params)
    return template.render(check_variables(template, variables))


# --- templates ------------------------------------------------------------------------------------------

def test_a_dotprompt_splits_roles_and_reads_its_front_matter() -> None:
    template = parse_template("support", {"prompt_integration": "dotprompt", "dotprompt_content": SUPPORT})
    assert template.variables == ("company", "name", "photo")
    assert template.defaults == {"temperature": 0.2, "max_output_tokens": 300}
    out = template.render(check_variables(template, {"company": "Acme", "name": "Jo", "photo": IMAGE}))
    assert out.instructions == "You are a support agent for Acme.\nBe brief."
    assert out.messages == [
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "My name is Jo. Here is the photo: "}, IMAGE,
            {"type": "input_text", "text": " What is wrong?"}]},
        {"type": "message", "role": "assistant", "content": "Let me look, Jo."},
    ]


def test_text_without_role_prefixes_is_one_user_message_and_input_text_values_are_text() -> None:
    out = render({"dotprompt_content": "Translate {{word}} into French."},
                 {"word": {"type": "input_text", "text": "cheese"}})
    assert out.instructions is None
    assert out.messages == [{"type": "message", "role": "user", "content": "Translate cheese into French."}]


def test_prompt_data_and_inline_forms() -> None:
    data = {"prompt_data": {"greet": {"content": "Developer: Greet {{who}}.\nUser: hi",
                                      "metadata": {"top_p": 0.5}}}}
    out = render(data, {"who": "Ana"}, prompt_id="greet")
    assert out.instructions == "Greet Ana." and out.defaults == {"top_p": 0.5}
    inline = {"prompt_integration": "inline", "instructions": "Answer in {{lang}}.",
              "input": [{"role": "user", "content": [{"type": "input_text", "text": "Read this: {{doc}}"}, IMAGE]},
                        {"role": "system", "content": "Later system note"}]}
    out = render(inline, {"lang": "Welsh", "doc": PDF})
    assert out.instructions == "Answer in Welsh."
    assert out.messages[0]["content"] == [{"type": "input_text", "text": "Read this: "}, PDF, IMAGE]
    assert out.messages[1] == {"type": "message", "role": "system", "content": "Later system note"}  # not leading


def test_a_missing_variable_is_a_400_naming_it() -> None:
    template = parse_template("p", {"dotprompt_content": "Hi {{name}}, about {{topic}}"})
    with pytest.raises(InvalidRequestError) as err:
        check_variables(template, {"name": "x"})
    assert err.value.status == 400 and err.value.param == "prompt.variables.topic"
    assert "topic" in err.value.message


@pytest.mark.parametrize(("variables", "param"), [
    ({"name": 3}, "prompt.variables.name"),
    ({"name": {"type": "input_audio"}}, "prompt.variables.name"),
    ("not an object", "prompt.variables"),
])
def test_a_variable_of_the_wrong_kind_is_refused(variables: Any, param: str) -> None:
    template = parse_template("p", {"dotprompt_content": "Hi {{name}}"})
    with pytest.raises(InvalidRequestError) as err:
        check_variables(template, variables)
    assert err.value.param == param


def test_media_outside_a_user_message_is_refused() -> None:
    template = parse_template("p", {"dotprompt_content": "System: Look at {{img}}\nUser: hi"})
    with pytest.raises(InvalidRequestError) as err:
        check_variables(template, {"img": IMAGE})
    assert err.value.param == "prompt.variables.img"


@pytest.mark.parametrize(("params", "field"), [
    ({"prompt_integration": "langfuse"}, "prompt_integration"),
    ({}, ""),
    ({"dotprompt_content": "---\ntemperature: hot\n---\nhi"}, "dotprompt_content.temperature"),
    ({"dotprompt_content": "---\nmodel: x\nhi"}, "dotprompt_content"),
    ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
    ({"input": [{"role": "system", "content": [IMAGE]}]}, "input[0].content[0]"),
    ({"instructions": 5}, "instructions"),
])
def test_bad_definitions_name_the_field(params: dict[str, Any], field: str) -> None:
    with pytest.raises(PromptFormatError) as err:
        parse_template("p", params)
    assert err.value.field == field


def test_versions_and_versioned_ids() -> None:
    assert [parse_version(v, param="x") for v in (None, "latest", "2", "v3", 4)] == [None, None, 2, 3, 4]
    for bad in ("two", "0", True, 1.5):
        with pytest.raises(InvalidRequestError):
            parse_version(bad, param="prompt.version")
    assert split_versioned_id("jack.v2") == ("jack", 2) and split_versioned_id("jack") == ("jack", None)


# --- resolution ---------------------------------------------------------------------------------------------

async def registry_with(*entries: dict[str, Any]) -> PromptRegistry:
    registry = PromptRegistry(MemoryPromptStore(), config_prompts(list(entries)))
    await registry.start()
    return registry


GREETER = {"prompt_id": "greeter", "instructions": "You greet {{who}}.", "input": "Say hello to {{who}}."}


async def test_the_prompt_goes_before_the_request_and_leaves_the_body() -> None:
    registry = await registry_with(GREETER)
    body = {"model": "m", "prompt": {"id": "greeter", "variables": {"who": "Bo"}}, "instructions": "Be formal.",
            "input": "and me"}
    out = await registry.resolve(body, native=False, principal=NOBODY)
    assert "prompt" not in out and body["prompt"]["id"] == "greeter"  # the caller's dict is not changed
    assert out["instructions"] == "You greet Bo.\n\nBe formal."
    assert out["input"] == [{"type": "message", "role": "user", "content": "Say hello to Bo."},
                            {"type": "message", "role": "user", "content": "and me"}]
    items = [{"role": "user", "content": "x"}]
    out = await registry.resolve({"model": "m", "prompt": {"id": "greeter", "variables": {"who": "Al"}},
                                  "input": items}, native=False, principal=NOBODY)
    assert out["input"][1:] == items and out["instructions"] == "You greet Al."
    out = await registry.resolve({"model": "m", "prompt": {"id": "greeter", "variables": {"who": "Al"}}},
                                 native=False, principal=NOBODY)
    assert len(out["input"]) == 1


async def test_front_matter_fills_only_what_the_request_leaves_out() -> None:
    registry = await registry_with({"prompt_id": "t", "litellm_params": {"dotprompt_content":
                                                                          "---\ntemperature: 0.1\n---\nhi"}})
    out = await registry.resolve({"model": "m", "prompt": {"id": "t"}}, native=False, principal=NOBODY)
    assert out["temperature"] == 0.1
    out = await registry.resolve({"model": "m", "prompt": {"id": "t"}, "temperature": 1.5}, native=False,
                                 principal=NOBODY)
    assert out["temperature"] == 1.5


async def test_config_versions_resolve_by_number_and_newest_by_default() -> None:
    registry = await registry_with({"prompt_id": "v", "version": 1, "instructions": "one"},
                                   {"prompt_id": "v", "version": "2", "instructions": "two"})
    resolve = registry.resolve
    assert (await resolve({"prompt": {"id": "v"}}, native=False, principal=NOBODY))["instructions"] == "two"
    assert (await resolve({"prompt": {"id": "v", "version": "1"}}, native=False,
                          principal=NOBODY))["instructions"] == "one"
    with pytest.raises(NotFoundError) as err:
        await resolve({"prompt": {"id": "v", "version": "7"}}, native=False, principal=NOBODY)
    assert err.value.param == "prompt.version"
    with pytest.raises(NotFoundError) as err:
        await resolve({"prompt": {"id": "nope"}}, native=False, principal=NOBODY)
    assert err.value.param == "prompt.id" and err.value.status == 404


async def test_native_upstreams_keep_openai_ids_and_unknown_ones() -> None:
    registry = await registry_with(GREETER)
    for prompt in ({"id": "pmpt_abc", "version": "2", "variables": {"x": "y"}}, {"id": "not-ours"}):
        body = {"model": "m", "prompt": prompt, "input": "hi"}
        assert await registry.resolve(body, native=True, principal=NOBODY) == body
    out = await registry.resolve({"model": "m", "prompt": {"id": "greeter", "variables": {"who": "Cy"}}},
                                 native=True, principal=NOBODY)
    assert "prompt" not in out and out["instructions"] == "You greet Cy."
    with pytest.raises(InvalidRequestError) as err:  # an OpenAI id for a model OpenAI does not serve
        await registry.resolve({"model": "m", "prompt": {"id": "pmpt_abc"}}, native=False, principal=NOBODY)
    assert err.value.param == "prompt.id" and err.value.status == 400


async def test_litellm_spelling_and_malformed_prompts() -> None:
    registry = await registry_with(GREETER)
    out = await registry.resolve({"model": "m", "prompt_id": "greeter", "prompt_variables": {"who": "Di"},
                                  "prompt_version": 1}, native=False, principal=NOBODY)
    assert out["instructions"] == "You greet Di." and "prompt_id" not in out and "prompt_variables" not in out
    assert await registry.resolve({"model": "m", "prompt": None}, native=False, principal=NOBODY) == {"model": "m"}
    for prompt, param in (("greeter", "prompt"), ({"variables": {}}, "prompt.id"),
                          ({"id": "greeter", "extra": 1}, "prompt.extra"),
                          ({"id": "greeter", "version": "x"}, "prompt.version"),
                          ({"id": "greeter"}, "prompt.variables.who")):
        with pytest.raises(InvalidRequestError) as err:
            await registry.resolve({"model": "m", "prompt": prompt}, native=False, principal=NOBODY)
        assert err.value.param == param


async def test_api_prompts_are_versioned_and_config_prompts_read_only() -> None:
    registry = await registry_with(GREETER)
    first = await registry.create("faq", {"dotprompt_content": "System: v1 {{q}}"})
    second = await registry.create("faq", {"prompt_integration": "inline", "instructions": "v2 {{q}}"},
                                   {"note": "x"})
    assert (first.version, second.version) == (1, 2) and second.prompt_info == {"note": "x", "prompt_type": "db"}
    body = {"model": "m", "prompt": {"id": "faq", "variables": {"q": "?"}}}
    assert (await registry.resolve(body, native=False, principal=NOBODY))["instructions"] == "v2 ?"
    pinned = {"model": "m", "prompt": {"id": "faq", "version": "1", "variables": {"q": "?"}}}
    assert (await registry.resolve(pinned, native=False, principal=NOBODY))["instructions"] == "v1 ?"
    assert [p.prompt_id for p in await registry.latest()] == ["greeter", "faq"]
    for prompt_id in ("greeter", "pmpt_x", "a.v2", "", "bad id"):
        with pytest.raises(InvalidRequestError):
            await registry.create(prompt_id, {"instructions": "x"})
    with pytest.raises(InvalidRequestError) as err:
        await registry.create("faq", {"prompt_integration": "inline", "input": [{"role": "bot"}]})
    assert err.value.param == "litellm_params.input[0].role"
    assert await registry.delete("faq") == 2
    with pytest.raises(NotFoundError):
        await registry.resolve(body, native=False, principal=NOBODY)


# --- the config section ---------------------------------------------------------------------------------

def test_config_reads_prompt_files_and_skips_other_integrations(tmp_path: Path) -> None:
    (tmp_path / "hello.prompt").write_text("---\nmodel: x\n---\nSystem: Hello {{name}}\n")
    (tmp_path / "own.prompt").write_text("User: own file")
    prompts = config_prompts([
        {"prompt_id": "hello", "litellm_params": {"prompt_id": "hello", "prompt_integration": "dotprompt"}},
        {"prompt_id": "own", "litellm_params": {"prompt_file": str(tmp_path / "own.prompt")}},
        {"prompt_id": "lf", "litellm_params": {"prompt_integration": "langfuse"}},
    ], str(tmp_path))
    assert [(p.prompt_id, p.version, p.prompt_info["prompt_type"]) for p in prompts] == [
        ("hello", 1, "config"), ("own", 1, "config")]
    assert prompts[0].template.variables == ("name",)
    for section, key in ((["x"], "prompts[0]"), ({"a": 1}, "prompts"),
                         ([{"prompt_id": "gone", "litellm_params": {"prompt_file": str(tmp_path / "no")}}],
                          "prompts[0].litellm_params"),
                         ([{"prompt_id": "bad", "litellm_params": {"dotprompt_content": 5}}],
                          "prompts[0].litellm_params.dotprompt_content")):
        with pytest.raises(ConfigError) as err:
            config_prompts(section)
        assert err.value.key == key


# --- the stores ---------------------------------------------------------------------------------------------

@pytest.fixture
async def pg_schema_name() -> AsyncIterator[str]:
    schema = f"rg_prompts_{uuid.uuid4().hex[:12]}"
    yield schema
    admin = await asyncpg.connect(PG_DSN, timeout=5)
    try:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await admin.close()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], PromptStore]:
    if request.param == "memory":
        shared = MemoryPromptStore()
        return lambda: shared
    if request.param == "sqlite":
        return lambda: SqlitePromptStore(str(tmp_path / "prompts.db"))
    schema = request.getfixturevalue("pg_schema_name")
    return lambda: PostgresPromptStore(PG_DSN, schema=schema)


async def test_store_contract(make_store: Callable[[], PromptStore]) -> None:
    a, b = make_store(), make_store()  # two instances on one database see each other's writes
    await a.open()
    await b.open()
    try:
        assert await a.get("x", None) is None and await a.latest() == [] and await a.versions("x") == []
        one = await a.add("x", {"instructions": "one"}, {"prompt_type": "db"})
        two = await b.add("x", {"instructions": "two {{v}}"}, {"prompt_type": "db", "k": [1]})
        await a.add("y", {"input": "hi"}, {"prompt_type": "db"})
        assert (one.version, two.version) == (1, 2)
        got = await a.get("x", None)
        assert got is not None and got.version == 2 and got.prompt_info == {"prompt_type": "db", "k": [1]}
        assert got.template.variables == ("v",) and got.created_at > 0
        pinned = await b.get("x", 1)
        assert pinned is not None and pinned.litellm_params == {"instructions": "one"}
        assert await a.get("x", 3) is None
        assert [p.version for p in await b.versions("x")] == [2, 1]
        assert [(p.prompt_id, p.version) for p in await a.latest()] == [("x", 2), ("y", 1)]
        assert await b.delete("x") == 2 and await a.get("x", 1) is None and await a.delete("x") == 0
    finally:
        await a.close()
        await b.close()


async def test_sqlite_store_keeps_prompts_across_restarts(tmp_path: Path) -> None:
    path = str(tmp_path / "r.db")
    store = SqlitePromptStore(path)
    await store.open()
    await store.add("kept", {"instructions": "x"}, {"prompt_type": "db"})
    await store.close()
    reopened = PromptRegistry(SqlitePromptStore(path))
    await reopened.start()
    try:
        found = await reopened.find("kept", None)
        assert found is not None and found.version == 1
    finally:
        await reopened.close()
    with sqlite3.connect(path) as conn:  # the table is the registry's own
        assert conn.execute("SELECT count(*) FROM prompts_versions").fetchone() == (1,)


def test_the_echo_the_response_carries() -> None:
    echo = PromptRegistry.echo_of
    assert echo({"model": "m"}) is None and echo({"prompt": None}) is None
    assert echo({"prompt": {"id": "a", "variables": {"x": "y"}}}) == {"id": "a", "variables": {"x": "y"},
                                                                       "version": None}
    assert echo({"prompt_id": "a", "prompt_version": 2}) == {"id": "a", "variables": None, "version": "2"}
