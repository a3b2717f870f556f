"""The Authenticator over the key manager (master key, virtual keys in every header LiteLLM reads) and
`keys.build` from a config."""

from __future__ import annotations

from pathlib import Path

import pytest

from respgate.config import Config, load_config
from respgate.errors import AuthenticationError, ConfigError
from respgate.keys import build
from respgate.keys.storage import MemoryStorage
from respgate.keys.storage_sql import SqliteStorage
from respgate.keys.tokens import hash_token, owner_of
from respgate.proxy.auth import Authenticator
from respgate.store.factory import DatabaseTarget
from test_keys_helpers import manager, new_key

MASTER = "sk-master-for-auth-tests"


async def test_master_and_virtual_keys_in_every_header() -> None:
    keys = manager()
    auth = Authenticator(MASTER, keys)
    key = await new_key(keys)
    master = await auth.authenticate(f"Bearer {MASTER}", None)
    assert master.is_admin and master.owner == owner_of(MASTER) and master.token == ""
    for authorization, api_key, litellm_key in ((f"Bearer {key}", None, None), (None, key, None),
                                                (None, None, key), (None, None, f"Bearer {key}")):
        principal = await auth.authenticate(authorization, api_key, litellm_key)
        assert principal.token == hash_token(key) and not principal.is_admin
    with pytest.raises(AuthenticationError) as missing:
        await auth.authenticate(None, None)
    assert missing.value.code == "missing_api_key"
    with pytest.raises(AuthenticationError) as unknown:
        await auth.authenticate("Bearer sk-wrong", None)
    assert unknown.value.type == "token_not_found_in_db" and "sk-wrong" not in unknown.value.message


async def test_without_a_master_key_nothing_is_checked() -> None:
    principal = await Authenticator(None).authenticate(None, None)
    assert principal.owner == "" and principal.is_admin


def _config(tmp_path: Path, general: str, router: str = "") -> Config:
    path = tmp_path / "config.yaml"
    path.write_text("model_list:\n  - model_name: m\n    litellm_params: {model: mock/echo}\n"
                    "    model_info: {access_groups: [beta]}\n"
                    f"general_settings:\n{general}{router}")
    return load_config(str(path))


def test_build_needs_a_master_key_and_reads_litellms_settings(tmp_path: Path) -> None:
    no_master = _config(tmp_path, "  database_url: memory://\n")
    assert build(no_master, DatabaseTarget("memory")) is None
    config = _config(tmp_path, f"  master_key: {MASTER}\n  user_api_key_cache_ttl: 2\n  proxy_batch_write_at: 5s\n")
    keys = build(config, DatabaseTarget("sqlite", str(tmp_path / "k.db")))
    assert keys is not None and isinstance(keys.storage, SqliteStorage) and keys.cache_ttl == 2.0
    assert keys.shared is None and keys.admin is not None and keys.access.allows(("beta",), "m")
    memory = build(config, DatabaseTarget("memory"))
    assert memory is not None and isinstance(memory.storage, MemoryStorage)
    bad = _config(tmp_path, f"  master_key: {MASTER}\n  user_api_key_cache_ttl: -1\n")
    with pytest.raises(ConfigError, match="user_api_key_cache_ttl"):
        build(bad, DatabaseTarget("memory"))


async def test_build_with_redis_router_settings_shares_the_limits(tmp_path: Path) -> None:
    config = _config(tmp_path, f"  master_key: {MASTER}\n",
                     "router_settings:\n  redis_host: 127.0.0.1\n  redis_port: 6379\n")
    keys = build(config, DatabaseTarget("memory"))
    assert keys is not None and keys.shared is not None
    await keys.start()
    await keys.close()
