"""SigV4 with botocore: credentials from litellm_params or the AWS env; the fake's check agrees or refuses."""

from __future__ import annotations

import pytest

from fakes.bedrock_upstream import ACCESS_KEY, SECRET_KEY, BedrockFault, verify_signature
from respgate.deployments import Deployment
from respgate.errors import BadGatewayError
from respgate.providers.bedrock.signing import BedrockSigner

URL = "http://127.0.0.1:9/model/anthropic.claude-v2%3A1/converse"
BODY = b'{"messages":[]}'


def _signed(signer: BedrockSigner) -> dict[str, str]:
    headers = signer.headers("POST", URL, BODY, {"Content-Type": "application/json"})
    return {k.lower(): v for k, v in {**headers, "Host": "127.0.0.1:9"}.items()}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                 "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_litellm_params_credentials_sign_what_the_fake_verifies() -> None:
    d = Deployment("b", "bedrock", "m", extra={"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY,
                                               "aws_region_name": "eu-west-1"})
    headers = _signed(BedrockSigner(d))
    assert "/eu-west-1/bedrock/aws4_request" in headers["authorization"]
    verify_signature("POST", URL, headers, BODY)
    with pytest.raises(BedrockFault) as refused:
        verify_signature("POST", URL, headers, BODY + b" ")  # the body is signed
    assert refused.value.name == "InvalidSignatureException"


def test_env_credentials_and_session_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "tok")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    headers = _signed(BedrockSigner(Deployment("b", "bedrock", "m")))
    assert headers["x-amz-security-token"] == "tok"
    verify_signature("POST", URL, headers, BODY, token="tok")
    with pytest.raises(BedrockFault):
        verify_signature("POST", URL, headers, BODY, secret="wrong")


def test_an_api_key_is_a_bearer_token() -> None:
    d = Deployment("b", "bedrock", "m", api_key="bedrock-api-key", extra={"aws_region_name": "us-east-1"})
    assert _signed(BedrockSigner(d))["authorization"] == "Bearer bedrock-api-key"


def test_missing_region_or_credentials_name_what_to_set() -> None:
    with pytest.raises(BadGatewayError, match="aws_region_name"):
        BedrockSigner(Deployment("b", "bedrock", "m"))
    with pytest.raises(BadGatewayError, match="aws_access_key_id"):
        BedrockSigner(Deployment("b", "bedrock", "m", extra={"aws_region_name": "us-east-1"}))
