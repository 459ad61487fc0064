"""The API checks SigV4 like API Gateway with AWS_IAM: every refusal is a 403 in API Gateway's shape."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import requests
from requests_aws4auth import AWS4Auth

from airflow_cognito_iam.devstack.stack import DevStack

from .conftest import signed_request

pytestmark = pytest.mark.integration


def _refusal(response: requests.Response, error_type: str) -> str:
    assert response.status_code == 403, response.text
    assert response.headers["x-amzn-ErrorType"] == error_type
    message: str = response.json()["message"]
    return message


def test_signed_request_is_served(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    response = signed_request("GET", f"{stack.api_url}/orders?date=2026-11-01&limit=5", aws_creds, stack.region)

    assert response.status_code == 200
    assert len(response.json()["records"]) == 5


def test_unsigned_request_is_refused(stack: DevStack) -> None:
    response = requests.get(f"{stack.api_url}/whoami", timeout=10)

    assert _refusal(response, "MissingAuthenticationTokenException") == "Missing Authentication Token"


def test_moto_fixed_credentials_are_unknown_to_the_api(stack: DevStack) -> None:
    moto_creds = {"AccessKeyId": "TESTACCESSKEY12345", "SecretKey": "ABCSECRETKEY", "SessionToken": "ABC12345"}

    response = signed_request("GET", f"{stack.api_url}/whoami", moto_creds, stack.region)

    assert "security token included in the request is invalid" in _refusal(response, "UnrecognizedClientException")


def test_expired_credentials_are_refused_as_expired_token(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    assert signed_request("GET", f"{stack.api_url}/whoami", aws_creds, stack.region).status_code == 200
    stack.expire_credentials()

    response = signed_request("GET", f"{stack.api_url}/whoami", aws_creds, stack.region)

    assert _refusal(response, "ExpiredTokenException") == "The security token included in the request is expired"


def test_tampered_body_is_refused(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    response = signed_request(
        "POST", f"{stack.api_url}/jobs", aws_creds, stack.region, body=b'{"polls": 1}', send_body=b'{"polls": 9}'
    )

    assert "signature we calculated does not match" in _refusal(response, "InvalidSignatureException")


def test_tampered_query_is_refused(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="GET", url=f"{stack.api_url}/orders?date=2026-11-01")
    SigV4Auth(
        Credentials(aws_creds["AccessKeyId"], aws_creds["SecretKey"], aws_creds["SessionToken"]),
        "execute-api",
        stack.region,
    ).add_auth(request)

    response = requests.get(f"{stack.api_url}/orders?date=2026-11-02", headers=dict(request.headers), timeout=10)

    _refusal(response, "InvalidSignatureException")


def test_wrong_session_token_is_refused(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    response = signed_request(
        "GET", f"{stack.api_url}/whoami", aws_creds, stack.region, session_token=aws_creds["SessionToken"][:-4] + "AAAA"
    )

    _refusal(response, "UnrecognizedClientException")


def test_missing_session_token_is_refused(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    without_token = {key: value for key, value in aws_creds.items() if key != "SessionToken"}

    response = signed_request("GET", f"{stack.api_url}/whoami", without_token, stack.region)

    _refusal(response, "UnrecognizedClientException")


@pytest.mark.parametrize("minutes", [-10, 10])
def test_clock_skew_over_five_minutes_is_refused(stack: DevStack, aws_creds: dict[str, Any], minutes: int) -> None:
    at = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)

    response = signed_request("GET", f"{stack.api_url}/whoami", aws_creds, stack.region, at=at)

    message = _refusal(response, "InvalidSignatureException")
    assert message.startswith("Signature expired" if minutes < 0 else "Signature not yet current")


def test_small_clock_skew_is_tolerated(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=3)

    assert signed_request("GET", f"{stack.api_url}/whoami", aws_creds, stack.region, at=at).status_code == 200


def test_wrong_region_or_service_scope_is_refused(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    wrong_region = signed_request("GET", f"{stack.api_url}/whoami", aws_creds, "eu-west-3")
    wrong_service = signed_request("GET", f"{stack.api_url}/whoami", aws_creds, stack.region, service="s3")

    assert "region" in _refusal(wrong_region, "InvalidSignatureException")
    assert "execute-api" in _refusal(wrong_service, "InvalidSignatureException")


def test_iam_denied_route_names_the_role(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    response = signed_request("GET", f"{stack.api_url}/admin/users", aws_creds, stack.region)

    message = _refusal(response, "AccessDeniedException")
    assert message.startswith(
        "User: arn:aws:sts::123456789012:assumed-role/Cognito_DevstackAuth_Role/CognitoIdentityCredentials "
        "is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:"
    )


def test_requests_aws4auth_signatures_verify_with_botocore(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    """The client library the hook uses and the server's reference signer agree on ordinary requests."""
    auth = AWS4Auth(
        aws_creds["AccessKeyId"],
        aws_creds["SecretKey"],
        stack.region,
        "execute-api",
        session_token=aws_creds["SessionToken"],
    )

    get = requests.get(f"{stack.api_url}/orders", params={"date": "2026-11-01", "limit": "3"}, auth=auth, timeout=10)
    post = requests.post(f"{stack.api_url}/jobs", json={"polls": 1}, auth=auth, timeout=10)

    assert get.status_code == 200, get.text
    assert post.status_code == 202, post.text


@pytest.mark.parametrize(
    "path",
    ["/echo/plain", "/echo/with%20space", "/echo/semi;colon", "/echo/caf%C3%A9", "/echo/a%2Fb"],
)
def test_botocore_signed_odd_paths_verify(stack: DevStack, aws_creds: dict[str, Any], path: str) -> None:
    response = signed_request("GET", f"{stack.api_url}{path}?q=a%20b&z=1&a=", aws_creds, stack.region)

    assert response.status_code == 200, response.text
    assert response.json()["raw_path"] == path


def test_reserved_characters_and_repeated_keys_in_the_query_verify(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    query = "k=2&k=1&plus=a%2Bb&eq=x%3Dy&tilde=~t&u=%C3%A9&space=a%20b&empty="
    botocore_signed = signed_request("GET", f"{stack.api_url}/echo/q?{query}", aws_creds, stack.region)
    auth = AWS4Auth(
        aws_creds["AccessKeyId"],
        aws_creds["SecretKey"],
        stack.region,
        "execute-api",
        session_token=aws_creds["SessionToken"],
    )
    params = {"k": ["2", "1"], "plus": "a+b", "eq": "x=y", "tilde": "~t", "u": "é", "space": "a b", "empty": ""}
    aws4auth_signed = requests.get(f"{stack.api_url}/echo/q", params=params, auth=auth, timeout=10)

    assert botocore_signed.status_code == 200, botocore_signed.text
    assert aws4auth_signed.status_code == 200, aws4auth_signed.text
    expected = [["k", "2"], ["k", "1"], ["plus", "a+b"], ["eq", "x=y"], ["tilde", "~t"], ["u", "é"], ["space", "a b"]]
    assert botocore_signed.json()["query"][:-1] == expected
    assert aws4auth_signed.json()["query"][:-1] == expected
