"""Vertex AI bearer tokens from google-auth: a service-account file or JSON string
(`vertex_credentials`), or application default credentials.

Loading credentials and refreshing a token block (file reads, an HTTP call to Google's token
endpoint), so both run in a worker thread, never on the event loop; one refresh at a time per
deployment, `REFRESH_MARGIN` seconds before the token expires, so no request carries a token that
expires in flight. Tests inject credentials (any `google.auth.credentials.Credentials`) or point a
service account's `token_uri` at a local fake.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from collections.abc import Callable
from typing import Any, Final

import orjson
from google.auth.credentials import Credentials

from ...deployments import Deployment
from ...errors import BadGatewayError

SCOPES: Final = ("https://www.googleapis.com/auth/cloud-platform",)
REFRESH_MARGIN: Final = 300.0

_EPOCH: Final = dt.datetime(1970, 1, 1)


def load_credentials(d: Deployment) -> tuple[Credentials, str | None]:
    """Blocking: the deployment's credentials and the project they name (if any)."""
    import google.auth
    from google.oauth2 import credentials as user_credentials
    from google.oauth2 import service_account

    source = d.extra.get("vertex_credentials")
    if source is None:
        creds, project = google.auth.default(scopes=list(SCOPES))
        return creds, project
    info: Any = source
    if isinstance(source, str):
        text = source.strip()
        if not text.startswith("{"):
            with open(os.path.expanduser(text), "rb") as f:
                text = f.read().decode()
        info = orjson.loads(text)
    if not isinstance(info, dict):
        raise BadGatewayError(f"vertex_credentials of model `{d.model_name}` is not a credentials JSON object.")
    if info.get("type") == "authorized_user":
        user: Credentials = user_credentials.Credentials.from_authorized_user_info(  # type: ignore[no-untyped-call]
            info, scopes=list(SCOPES))
        return user, info.get("quota_project_id")
    account: Credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        info, scopes=list(SCOPES))
    return account, info.get("project_id")


def _refresh(creds: Credentials) -> None:
    from google.auth.transport.requests import Request

    creds.refresh(Request())  # type: ignore[no-untyped-call]


class VertexToken:
    """The bearer token of one deployment, refreshed off the event loop before it expires."""

    def __init__(self, d: Deployment, *, credentials: Credentials | None = None,
                 loader: Callable[[Deployment], tuple[Credentials, str | None]] = load_credentials,
                 refresh: Callable[[Credentials], None] = _refresh,
                 clock: Callable[[], float] = time.time) -> None:
        self._deployment = d
        self._credentials = credentials
        self._project: str | None = None
        self._loader = loader
        self._refresh = refresh
        self._clock = clock
        self._lock = asyncio.Lock()

    async def project(self) -> str | None:
        await self._ensure_loaded()
        return self._project

    async def bearer(self) -> str:
        token = self._fresh()
        if token is not None:
            return token
        async with self._lock:  # one refresh; the others wait for it and reuse its token
            token = self._fresh()
            if token is not None:
                return token
            await self._ensure_loaded()
            assert self._credentials is not None
            try:
                await asyncio.to_thread(self._refresh, self._credentials)
            except Exception as e:  # google.auth raises its own tree and transport errors
                raise BadGatewayError(f"Could not get a Vertex AI access token for model "
                                      f"`{self._deployment.model_name}` ({type(e).__name__}).",
                                      code="upstream_auth_failed") from e
            token = self._credentials.token
            if not token:
                raise BadGatewayError("google-auth returned no access token.", code="upstream_auth_failed")
            return str(token)

    def _fresh(self) -> str | None:
        creds = self._credentials
        if creds is None or not creds.token:
            return None
        expiry = creds.expiry
        # google-auth keeps naive UTC datetimes
        if expiry is not None and (expiry - _EPOCH).total_seconds() - REFRESH_MARGIN <= self._clock():
            return None
        return str(creds.token)

    async def _ensure_loaded(self) -> None:
        if self._credentials is None:
            self._credentials, self._project = await asyncio.to_thread(self._loader, self._deployment)
