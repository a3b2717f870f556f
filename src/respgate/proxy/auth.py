"""Who is calling: the key from `Authorization: Bearer …`, Azure's `api-key` header or LiteLLM's
`x-litellm-api-key` header -> a Principal.

The master key is compared in constant time and is the admin. Any other key is a virtual key,
verified by the key manager (keys/): a cached hash lookup on the hot path; unknown, expired or
blocked keys are refused with 401. Only hashes are kept as owners of what keys create.
"""

from __future__ import annotations

import hmac

from ..calls import Principal
from ..errors import AuthenticationError, PermissionDeniedError
from ..keys import KeyManager
from ..keys.tokens import owner_of

__all__ = ["Authenticator", "owner_of", "require_admin"]


class Authenticator:
    def __init__(self, master_key: str | None, keys: KeyManager | None = None) -> None:
        self._master = master_key.encode() if master_key else None
        self._keys = keys
        self._master_principal = (Principal(owner_of(master_key), is_admin=True) if master_key
                                  else Principal("", is_admin=True))

    @property
    def enabled(self) -> bool:
        return self._master is not None

    async def authenticate(self, authorization: str | None, api_key: str | None,
                           litellm_key: str | None = None) -> Principal:
        if self._master is None and self._keys is None:
            return self._master_principal
        key = _bearer(authorization) or _plain(api_key) or _plain(litellm_key)
        if not key:
            raise AuthenticationError(
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", code="missing_api_key")
        if self._master is not None and hmac.compare_digest(key.encode(), self._master):
            return self._master_principal
        if self._keys is not None:
            return await self._keys.verify(key)
        raise AuthenticationError("Incorrect API key provided.", code="invalid_api_key")


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def _plain(header: str | None) -> str | None:
    """A key header's value; LiteLLM's clients sometimes send `Bearer sk-…` there too."""
    if not header:
        return None
    return _bearer(header) or header.strip() or None


def require_admin(principal: Principal) -> None:
    """Admin routes (keys, teams, users, spend of others): the master key or an admin virtual key."""
    if not principal.is_admin:
        raise PermissionDeniedError("This route needs the master key or an admin key.", code="admin_only")
