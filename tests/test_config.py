"""config.yaml loading: LiteLLM's format, env references, errors that name the key, no secret leaks."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from respgate.config import (
    DEFAULT_MAX_REQUEST_BODY_BYTES,
    load_config,
    provider_env_defaults,
)
from respgate.errors import ConfigError

# config.yaml examples taken from LiteLLM's /responses documentation
LITELLM_DOC_CONFIGS = Path(__file__).parent / "data" / "litellm_configs"
SECRET = "sk-very-secret-value-123"
PROVIDER_VARS = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_API_BASE",
    "AZURE_API_KEY",
    "AZURE_API_BASE",
    "AZURE_API_VERSION",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_API_BASE",
    "GEMINI_API_KEY",
    "RESPGATE_MASTER_KEY",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROVIDER_VARS:
        monkeypatch.delenv(name, raising=False)


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def test_litellm_shaped_config_becomes_deployments(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            """
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: sk-inline
      api_base: https://example.test/v1
      timeout: 30
      stream_timeout: 10
      max_retries: 2
      rpm: 100
      tpm: 5000
      weight: 2
      organization: org-1
    model_info:
      id: dep-a
      mode: responses
  - model_name: bare
    litellm_params:
      model: gpt-4.1-mini
      api_key: k
""",
        )
    )
    first, bare = cfg.deployments
    assert (first.model_name, first.provider, first.upstream_model) == ("gpt-4o", "openai", "gpt-4o")
    assert first.id == "dep-a"
    assert (first.api_base, first.api_key, first.timeout, first.max_retries, first.rpm, first.tpm) == (
        "https://example.test/v1",
        "sk-inline",
        30.0,
        2,
        100,
        5000,
    )
    assert first.extra == {"stream_timeout": 10, "weight": 2, "organization": "org-1"}
    assert first.model_info == {"id": "dep-a", "mode": "responses"}
    assert (bare.provider, bare.upstream_model) == ("openai", "gpt-4.1-mini")  # bare name = OpenAI's
    assert cfg.source.endswith("config.yaml")


def test_yaml_date_api_version_becomes_string(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            """
model_list:
  - model_name: a
    litellm_params: {model: azure/gpt-4-turbo, api_key: k, api_version: 2024-06-01, api_base: https://x}
""",
        )
    )
    assert cfg.deployments[0].api_version == "2024-06-01"


def test_repeated_entries_get_distinct_ids(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            """
model_list:
  - {model_name: a, litellm_params: {model: mock/echo}}
  - {model_name: a, litellm_params: {model: mock/echo}}
""",
        )
    )
    ids = [d.id for d in cfg.deployments]
    assert len(set(ids)) == 2


def test_env_reference_resolved_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", SECRET)
    monkeypatch.setenv("MY_DB", "postgresql://db")
    monkeypatch.setenv("REDIS_PW", "pw")
    cfg = load_config(
        write(
            tmp_path,
            """
model_list:
  - model_name: a
    litellm_params: {model: openai/x, api_key: os.environ/MY_KEY}
general_settings:
  master_key: os.environ/MY_KEY
  database_url: os.environ/MY_DB
router_settings:
  redis_password: os.environ/REDIS_PW
litellm_settings:
  cache_params: {password: os.environ/REDIS_PW, hosts: [os.environ/MY_DB]}
""",
        )
    )
    assert cfg.deployments[0].api_key == SECRET
    assert cfg.general.master_key == SECRET
    assert cfg.general.database_url == "postgresql://db"
    assert cfg.router_settings["redis_password"] == "pw"
    assert cfg.litellm_settings.extra["cache_params"] == {"password": "pw", "hosts": ["postgresql://db"]}


def test_environment_variables_section_feeds_references(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            """
environment_variables: {SECTION_KEY: from-section}
model_list:
  - {model_name: a, litellm_params: {model: openai/x, api_key: os.environ/SECTION_KEY}}
""",
        )
    )
    assert cfg.deployments[0].api_key == "from-section"


def test_unset_env_reference_is_null_with_warning_naming_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="respgate.config")
    cfg = load_config(
        write(
            tmp_path,
            """
model_list:
  - {model_name: a, litellm_params: {model: mock/echo, api_key: os.environ/RESPGATE_TEST_UNSET}}
""",
        )
    )
    assert cfg.deployments[0].api_key is None
    messages = [r.getMessage() for r in caplog.records if r.name == "respgate.config"]
    assert any("model_list[0].litellm_params.api_key" in m and "RESPGATE_TEST_UNSET" in m for m in messages)


def test_no_secret_in_logs_or_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("MY_KEY", SECRET)
    load_config(
        write(
            tmp_path,
            f"""
model_list:
  - model_name: a
    litellm_params: {{model: openai/x, api_key: os.environ/MY_KEY, surprise: os.environ/NOT_SET_X}}
general_settings:
  master_key: {SECRET}
  unknown_thing: {SECRET}
""",
        )
    )
    # wrong type on a secret-bearing key: the error names the key, not the value
    with pytest.raises(ConfigError) as excinfo:
        load_config(
            write(
                tmp_path,
                f"""
general_settings:
  master_key: [{SECRET}]
""",
            )
        )
    assert excinfo.value.key == "general_settings.master_key"
    with pytest.raises(ConfigError) as syntax:
        load_config(
            write(
                tmp_path,
                f"""
general_settings:
  master_key: "{SECRET}
""",
            )
        )
    for text in [str(excinfo.value), str(syntax.value), *(r.getMessage() for r in caplog.records)]:
        assert SECRET not in text


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("- just\n- a list\n", "(root)"),
        ("model_list: {a: 1}\n", "model_list"),
        ("model_list: [42]\n", "model_list[0]"),
        ("model_list:\n  - litellm_params: {model: openai/x}\n", "model_list[0].model_name"),
        ("model_list:\n  - {model_name: 7, litellm_params: {model: openai/x}}\n", "model_list[0].model_name"),
        ("model_list:\n  - {model_name: a}\n", "model_list[0].litellm_params"),
        ("model_list:\n  - {model_name: a, litellm_params: [x]}\n", "model_list[0].litellm_params"),
        (
            "model_list:\n  - {model_name: a, litellm_params: {api_key: k}}\n",
            "model_list[0].litellm_params.model",
        ),
        (
            "model_list:\n  - {model_name: a, litellm_params: {model: openai/}}\n",
            "model_list[0].litellm_params.model",
        ),
        (
            "model_list:\n  - {model_name: a, litellm_params: {model: mock/echo}}\n"
            "  - {model_name: b, litellm_params: {model: mock/echo}}\n"
            "  - {model_name: c, litellm_params: {model: openai/x, rpm: fast}}\n",
            "model_list[2].litellm_params.rpm",
        ),
        (
            "model_list:\n  - {model_name: a, litellm_params: {model: openai/x, tpm: -1}}\n",
            "model_list[0].litellm_params.tpm",
        ),
        (
            "model_list:\n  - {model_name: a, litellm_params: {model: openai/x, timeout: -5}}\n",
            "model_list[0].litellm_params.timeout",
        ),
        (
            "model_list:\n  - {model_name: a, litellm_params: {model: openai/x, timeout: true}}\n",
            "model_list[0].litellm_params.timeout",
        ),
        (
            "model_list:\n  - {model_name: a, litellm_params: {model: openai/x, stream_timeout: 0}}\n",
            "model_list[0].litellm_params.stream_timeout",
        ),
        (
            "model_list:\n  - {model_name: a, litellm_params: {model: openai/x, max_retries: 1.5}}\n",
            "model_list[0].litellm_params.max_retries",
        ),
        (
            "model_list:\n  - {model_name: a, litellm_params: {model: openai/x, api_base: 3}}\n",
            "model_list[0].litellm_params.api_base",
        ),
        (
            "model_list:\n  - {model_name: a, litellm_params: {model: openai/x}, model_info: 3}\n",
            "model_list[0].model_info",
        ),
        (
            "model_list:\n  - {model_name: a, litellm_params: {model: mock/a}, model_info: {id: x}}\n"
            "  - {model_name: b, litellm_params: {model: mock/b}, model_info: {id: x}}\n",
            "model_list[1].model_info.id",
        ),
        ("general_settings: [1]\n", "general_settings"),
        ("general_settings: {max_request_body_bytes: big}\n", "general_settings.max_request_body_bytes"),
        ("general_settings: {max_request_size_mb: -1}\n", "general_settings.max_request_size_mb"),
        ("general_settings: {request_timeout: 0}\n", "general_settings.request_timeout"),
        (
            "general_settings: {allow_unauthenticated_public: yes please}\n",
            "general_settings.allow_unauthenticated_public",
        ),
        ("litellm_settings: {drop_params: 1}\n", "litellm_settings.drop_params"),
        ("litellm_settings: {num_retries: many}\n", "litellm_settings.num_retries"),
        ("litellm_settings: {callbacks: {a: 1}}\n", "litellm_settings.callbacks"),
        ("router_settings: {num_retries: -1}\n", "router_settings.num_retries"),
        ("router_settings: {timeout: slow}\n", "router_settings.timeout"),
        ("router_settings: {fallbacks: gpt-4}\n", "router_settings.fallbacks"),
    ],
)
def test_invalid_config_names_the_key(tmp_path: Path, yaml_text: str, key: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, yaml_text))
    assert excinfo.value.key == key
    assert key in str(excinfo.value)


def test_yaml_syntax_error_names_position(tmp_path: Path) -> None:
    path = write(tmp_path, "model_list:\n  - model_name: a\n   litellm_params: [\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert re.fullmatch(re.escape(path) + r":\d+:\d+", excinfo.value.key)


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert excinfo.value.key == path


def test_empty_file_is_an_empty_config(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ""))
    assert cfg.deployments == []
    assert cfg.general.max_request_body_bytes == DEFAULT_MAX_REQUEST_BODY_BYTES
    assert cfg.general.request_timeout == 600.0
    assert cfg.litellm_settings.drop_params is False


def test_settings_sections(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            """
general_settings:
  master_key: sk-1234
  max_request_size_mb: 2
  request_timeout: 30
  allow_unauthenticated_public: true
  store_model_in_db: true
  my_future_setting: 1
litellm_settings:
  drop_params: true
  num_retries: 3
  request_timeout: 20
  callbacks: otel
  success_callback: [langfuse]
  set_verbose: false
router_settings:
  routing_strategy: simple-shuffle
  num_retries: 2
""",
        )
    )
    g = cfg.general
    assert (g.master_key, g.max_request_body_bytes, g.request_timeout, g.allow_unauthenticated_public) == (
        "sk-1234",
        2 * 1024 * 1024,
        30.0,
        True,
    )
    assert g.extra == {"store_model_in_db": True, "my_future_setting": 1}
    ls = cfg.litellm_settings
    assert (ls.drop_params, ls.num_retries, ls.request_timeout) == (True, 3, 20.0)
    assert (ls.callbacks, ls.success_callback, ls.failure_callback) == (["otel"], ["langfuse"], [])
    assert ls.extra == {"set_verbose": False}
    assert cfg.router_settings == {"routing_strategy": "simple-shuffle", "num_retries": 2}


def test_max_request_body_bytes_wins_over_litellm_mb(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, "general_settings: {max_request_body_bytes: 1000, max_request_size_mb: 5}\n")
    )
    assert cfg.general.max_request_body_bytes == 1000


def test_unknown_keys_warn_by_name(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="respgate.config")
    load_config(
        write(
            tmp_path,
            """
model_lsit: []
general_settings: {master_key: a, mastr_key: b, alerting: [slack], store_model_in_db: true}
router_settings: {routing_strategy: simple-shuffle, redis_hots: x, cooldown_time: 5}
litellm_settings: {drop_params: true, dorp_params: true, cache: true}
""",
        )
    )
    text = "\n".join(r.getMessage() for r in caplog.records)
    for bad in (
        "model_lsit",
        "general_settings.mastr_key",
        "router_settings.redis_hots",
        "litellm_settings.dorp_params",
    ):
        assert bad in text
    for good in ("alerting", "store_model_in_db", "cooldown_time", "cache"):
        assert good not in text


def seed_configs() -> list[str]:
    blocks = []
    for path in sorted(LITELLM_DOC_CONFIGS.glob("*.yaml")):
        blocks.append(path.read_text())
    return blocks


def test_litellm_doc_configs_load_without_noise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocks = seed_configs()
    assert blocks
    for name in (
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ):
        monkeypatch.setenv(name, "set")
    caplog.set_level(logging.WARNING, logger="respgate.config")
    for text in blocks:
        cfg = load_config(write(tmp_path, text))
        assert all(d.model_name for d in cfg.deployments)
    # The only noise allowed: providers that respgate does not serve yet.
    noise = [r.getMessage() for r in caplog.records if "is not supported by respgate yet" not in r.getMessage()]
    assert noise == []


def test_unknown_provider_is_an_error_and_a_litellm_provider_not_built_yet_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, "model_list:\n  - model_name: a\n    litellm_params: {model: opneai/gpt-4o}\n"))
    assert excinfo.value.key == "model_list[0].litellm_params.model"
    caplog.set_level(logging.WARNING, logger="respgate.config")
    cfg = load_config(write(tmp_path, "model_list:\n  - model_name: a\n    litellm_params: {model: mock/echo}\n"
                                      "  - model_name: b\n    litellm_params: {model: cohere/command-r}\n"))
    assert [d.model_name for d in cfg.deployments] == ["a"]
    assert "model_list[1]" in caplog.text and "cohere" in caplog.text


def test_default_config_without_provider_keys_is_mock_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="respgate.config")
    cfg = load_config(None)
    names = [d.model_name for d in cfg.deployments]
    assert names == ["mock/echo", "mock/recall", "mock/tool", "mock/reasoning", "mock/fail"]
    assert all(
        d.provider == "mock" and d.upstream_model == d.model_name.split("/", 1)[1] for d in cfg.deployments
    )
    assert cfg.general.master_key is None
    assert caplog.records == []  # the packaged file's absent keys are not the user's mistake
    assert "example_config.yaml" in cfg.source


def test_default_config_adds_openai_and_azure_with_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-o")
    monkeypatch.setenv("AZURE_API_KEY", "az")
    monkeypatch.setenv("AZURE_API_BASE", "https://r.openai.azure.com")
    monkeypatch.setenv("AZURE_API_VERSION", "2025-03-01-preview")
    monkeypatch.setenv("RESPGATE_MASTER_KEY", "sk-master")
    cfg = load_config(None)
    by_name = {d.model_name: d for d in cfg.deployments}
    assert by_name["openai/*"].api_key == "sk-o"
    azure = by_name["azure/*"]
    assert (azure.provider, azure.api_key, azure.api_base, azure.api_version) == (
        "azure",
        "az",
        "https://r.openai.azure.com",
        "2025-03-01-preview",
    )
    assert cfg.general.master_key == "sk-master"


def test_provider_env_fallbacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_API_BASE", "https://old.test/v1")
    cfg = load_config(
        write(
            tmp_path,
            """
model_list:
  - {model_name: a, litellm_params: {model: openai/gpt-4o}}
  - {model_name: b, litellm_params: {model: openai/gpt-4o, api_key: explicit}}
""",
        )
    )
    a, b = cfg.deployments
    assert (a.api_key, a.api_base) == ("sk-env", "https://old.test/v1")
    assert b.api_key == "explicit"


def test_provider_env_defaults_table() -> None:
    env = {
        "OPENAI_API_KEY": "k",
        "OPENAI_BASE_URL": "https://new",
        "OPENAI_API_BASE": "https://old",
        "AZURE_API_KEY": "az",
        "AZURE_API_BASE": "https://az",
        "AZURE_API_VERSION": "v",
    }
    assert provider_env_defaults("openai", env) == {"api_key": "k", "api_base": "https://new"}
    assert provider_env_defaults("azure", env) == {
        "api_key": "az",
        "api_base": "https://az",
        "api_version": "v",
    }
    assert provider_env_defaults("openai", {"OPENAI_API_BASE": "https://old"}) == {"api_base": "https://old"}
    assert provider_env_defaults("mock", env) == {}
