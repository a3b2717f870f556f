"""Who is calling: the key from `Authorization: Bearer …` or Azure's `api-key` header -> a Principal.

Keys are compared in constant time and only their hash is kept as the owner of what they create.
Virtual keys (the platform issue) will be looked up here too; the routes do not change.
"""

from __future__ import annotations

import hashlib
import hmac

from ..errors import AuthenticationError
from ..gateway import Principal


def owner_of(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class Authenticator:
    def __init__(self, master_key: str | None) -> None:
        self._master = master_key.encode() if master_key else None
        self._master_principal = Principal(owner_of(master_key)) if master_key else Principal("")

    @property
    def enabled(self) -> bool:
        return self._master is not None

    def authenticate(self, authorization: str | None, api_key: str | None) -> Principal:
        if self._master is None:
            return self._master_principal
        key = _bearer(authorization) or (api_key.strip() if api_key else None)
        if not key:
            raise AuthenticationError(
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", code="missing_api_key")
        if not hmac.compare_digest(key.encode(), self._master):
            raise AuthenticationError("Incorrect API key provided.", code="invalid_api_key")
        return self._master_principal


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None
