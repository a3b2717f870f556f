"""AWS SigV4 for Bedrock with botocore: credentials and region from litellm_params, the env, or a profile.

Where the deployment names no keys, botocore's own chain finds them (AWS_ACCESS_KEY_ID / ..._SECRET /
..._SESSION_TOKEN, AWS_PROFILE or `aws_profile_name`, shared files, container or instance roles), and
refreshes temporary ones itself. A deployment with an `api_key` (or AWS_BEARER_TOKEN_BEDROCK) uses a
Bedrock API key as a bearer token instead of signing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

import botocore.session  # type: ignore[import-untyped]
from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]

from ...deployments import Deployment
from ...errors import BadGatewayError

__all__ = ["SIGNING_NAME", "BedrockSigner", "region_of"]

SIGNING_NAME: Final = "bedrock"  # bedrock-runtime signs as "bedrock"
_REGION_ENV: Final = ("AWS_REGION", "AWS_DEFAULT_REGION")


def region_of(d: Deployment, env: Mapping[str, str] | None = None) -> str:
    """`aws_region_name`, else the env, else the profile's region; the signature needs one."""
    env = os.environ if env is None else env
    region = d.extra.get("aws_region_name") or next((env[n] for n in _REGION_ENV if env.get(n)), None)
    if not region:
        region = _session(d).get_config_variable("region")
    if not region:
        raise BadGatewayError(f"No AWS region for model `{d.model_name}`: set aws_region_name in its "
                              "litellm_params or AWS_REGION.", code="upstream_auth_failed")
    return str(region)


def _session(d: Deployment) -> Any:
    profile = d.extra.get("aws_profile_name")
    return botocore.session.Session(profile=profile) if profile else botocore.session.Session()


class BedrockSigner:
    """Signs requests for one deployment; credentials are resolved once (botocore refreshes them)."""

    __slots__ = ("_bearer", "_credentials", "_deployment", "region")

    def __init__(self, d: Deployment, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self._deployment = d
        self.region = region_of(d, env)
        self._bearer = d.api_key or (None if d.extra.get("aws_access_key_id") else
                                     env.get("AWS_BEARER_TOKEN_BEDROCK"))
        self._credentials: Any = None if self._bearer else self._resolve()

    def _resolve(self) -> Any:
        x = self._deployment.extra
        if x.get("aws_access_key_id") and x.get("aws_secret_access_key"):
            return Credentials(x["aws_access_key_id"], x["aws_secret_access_key"], x.get("aws_session_token"))
        found = _session(self._deployment).get_credentials()
        if found is None:
            raise BadGatewayError(f"No AWS credentials for model `{self._deployment.model_name}`: set "
                                  "aws_access_key_id / aws_secret_access_key, a profile, or the AWS_* env vars.",
                                  code="upstream_auth_failed")
        return found

    def headers(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        """`headers` plus the authentication ones for this exact request."""
        if self._bearer:
            return {**headers, "Authorization": f"Bearer {self._bearer}"}
        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        SigV4Auth(self._credentials.get_frozen_credentials(), SIGNING_NAME, self.region).add_auth(request)
        return {k: str(v) for k, v in request.headers.items()}
