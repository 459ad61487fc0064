"""The stack end to end with real clients: pycognito SRP, boto3, botocore-signed API calls, S3."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from airflow_cognito_iam.devstack.stack import DevStack

from .conftest import signed_request, srp_sign_in

pytestmark = pytest.mark.integration


def test_srp_sign_in_identity_exchange_and_signed_call_reach_whoami(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    response = signed_request("GET", f"{stack.api_url}/whoami", aws_creds, stack.region)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["identity_id"] == aws_creds["IdentityId"]
    assert body["access_key_id"] == aws_creds["AccessKeyId"]
    assert "Cognito_DevstackAuth_Role" in body["caller_arn"]


def test_stats_count_cognito_actions_and_api_routes(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    signed_request("GET", f"{stack.api_url}/whoami", aws_creds, stack.region)

    stats = stack.stats()
    assert stats["cognito"] == {
        "InitiateAuth": 1,
        "RespondToAuthChallenge": 1,
        "GetId": 1,
        "GetCredentialsForIdentity": 1,
    }
    assert stats["api"]["routes"] == {"GET /whoami": {"200": 1}}
    assert requests.get(f"{stack.api_url}/_stats", timeout=10).json()["cognito"] == stats["cognito"]


def test_identity_pool_credentials_are_unique_per_call_and_reuse_the_identity(
    stack: DevStack, idp: Any, identity: Any
) -> None:
    logins = {stack.provider_name: srp_sign_in(stack, idp)["IdToken"]}
    first_id = identity.get_id(IdentityPoolId=stack.identity_pool_id, Logins=logins)["IdentityId"]
    second_id = identity.get_id(IdentityPoolId=stack.identity_pool_id, Logins=logins)["IdentityId"]
    first = identity.get_credentials_for_identity(IdentityId=first_id, Logins=logins)["Credentials"]
    second = identity.get_credentials_for_identity(IdentityId=first_id, Logins=logins)["Credentials"]

    assert first_id == second_id
    assert first["AccessKeyId"] != second["AccessKeyId"]
    assert first["SecretKey"] != second["SecretKey"]
    assert first["SessionToken"] != second["SessionToken"]
    assert first["AccessKeyId"].startswith("ASIA")
    assert len(first["AccessKeyId"]) == 20


def test_credential_lifetime_is_configurable(stack: DevStack, idp: Any, identity: Any) -> None:
    import datetime as dt

    stack.set_credential_lifetime(120)
    logins = {stack.provider_name: srp_sign_in(stack, idp)["IdToken"]}
    identity_id = identity.get_id(IdentityPoolId=stack.identity_pool_id, Logins=logins)["IdentityId"]
    creds = identity.get_credentials_for_identity(IdentityId=identity_id, Logins=logins)["Credentials"]

    remaining = (creds["Expiration"] - dt.datetime.now(dt.UTC)).total_seconds()
    assert 60 < remaining <= 120


def test_s3_client_reaches_the_seeded_bucket(stack: DevStack) -> None:
    s3 = stack.s3_client()
    s3.put_object(Bucket=stack.bucket, Key="happy/path.txt", Body=b"hello")

    assert s3.get_object(Bucket=stack.bucket, Key="happy/path.txt")["Body"].read() == b"hello"


def test_fixture_sets_airflow_connections_in_environment(stack: DevStack) -> None:
    import json
    import os

    conn = json.loads(os.environ["AIRFLOW_CONN_COGNITO_IAM_DEFAULT"])
    aws = json.loads(os.environ["AIRFLOW_CONN_AWS_DEFAULT"])

    assert conn["conn_type"] == "cognito_iam"
    assert conn["host"] == stack.api_url
    assert conn["extra"]["client_secret"] == stack.client_secret
    assert aws["extra"]["endpoint_url"] == stack.moto_endpoint_url


def test_conn_dict_overrides_go_to_the_right_place(stack: DevStack) -> None:
    conn = stack.conn_dict(login=stack.mfa_username, totp_secret=stack.totp_secret, client_secret=None)

    assert conn["login"] == stack.mfa_username
    assert conn["extra"]["totp_secret"] == stack.totp_secret
    assert "client_secret" not in conn["extra"]


def test_token_lifetime_is_configurable_and_reset(stack: DevStack, idp: Any) -> None:
    import jwt

    stack.set_token_lifetime(120)
    short = srp_sign_in(stack, idp)
    stack.reset_token_lifetime()
    default = srp_sign_in(stack, idp)

    claims = jwt.decode(short["IdToken"], options={"verify_signature": False})
    assert short["ExpiresIn"] == 120
    assert claims["exp"] - claims["iat"] == 120
    assert default["ExpiresIn"] == 3600
