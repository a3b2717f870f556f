"""Virtual key values and their hashes. A plain key is shown once, at generation; only its hash is kept.

`hash_token` is LiteLLM's (sha256 hex of the whole key), so a token id means the same thing in both.
`owner_of` is the owner a key's stored objects carry: the first half of that hash.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "sk-"
_HEX = frozenset("0123456789abcdef")


def hash_token(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def owner_of(key: str) -> str:
    return hash_token(key)[:32]


def new_key() -> str:
    """LiteLLM's shape: `sk-` and 22 url-safe characters (128 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(16)


def key_name(key: str) -> str:
    """LiteLLM's `key_name`: the key abbreviated to its last four characters."""
    return f"sk-...{key[-4:]}"


def looks_hashed(value: str) -> bool:
    """A token id (sha256 hex) rather than a plain key: admin routes accept either."""
    return len(value) == 64 and not value.startswith(KEY_PREFIX) and set(value) <= _HEX


def token_of(value: str) -> str:
    """The token id of a value an admin passed: a plain key is hashed, a token id kept."""
    return value if looks_hashed(value) else hash_token(value)
