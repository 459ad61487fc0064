"""Identity-exchange error mapping without a network (Stubber on a real client); flows that a
devstack cannot produce, such as a broken role trust policy, are covered here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import Stubber

from airflow_cognito_iam.auth.errors import AuthenticationError, ConfigurationError, TransientError
from airflow_cognito_iam.auth.identity_pool import IdentityPoolExchanger, IdTokenRejectedError
from airflow_cognito_iam.auth.retry import RetryPolicy
from airflow_cognito_iam.auth.settings import CognitoSettings
from airflow_cognito_iam.auth.user_pool import build_cognito_client

ID_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
POOL = "eu-west-1:0123abcd-0000-4000-8000-000000000000"


def exchanger(**extra: Any) -> tuple[IdentityPoolExchanger, Stubber, list[float]]:
    values = {
        "user_pool_id": "eu-west-1_AbC123",
        "client_id": "clientabc",
        "identity_pool_id": POOL,
        "cognito_identity_endpoint_url": "http://127.0.0.1:9",
    }
    values.update(extra)
    settings = CognitoSettings.from_connection(host=None, login="alice", password="pw-Secret-1", extra=values)
    client = build_cognito_client("cognito-identity", settings)
    stub = Stubber(client)
    stub.activate()
    waits: list[float] = []
    return IdentityPoolExchanger(settings, client, retry_policy=RetryPolicy(sleep=waits.append)), stub, waits


def credentials(identity_id: str = "eu-west-1:abc") -> dict[str, Any]:
    return {
        "IdentityId": identity_id,
        "Credentials": {
            "AccessKeyId": "ASIAEXAMPLE",
            "SecretKey": "secret-key-value",
            "SessionToken": "session-token-value",
            "Expiration": datetime(2030, 1, 1, tzinfo=UTC),
        },
    }


def test_logins_key_and_custom_role_are_sent() -> None:
    role = "arn:aws:iam::123456789012:role/Reader"
    ex, stub, _ = exchanger(custom_role_arn=role)
    logins = {"cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123": ID_TOKEN}
    stub.add_response("get_id", {"IdentityId": "eu-west-1:abc"}, {"IdentityPoolId": POOL, "Logins": logins})
    stub.add_response(
        "get_credentials_for_identity",
        credentials(),
        {"IdentityId": "eu-west-1:abc", "Logins": logins, "CustomRoleArn": role},
    )
    creds = ex.get_credentials(ID_TOKEN)
    assert (creds.identity_id, creds.access_key_id) == ("eu-west-1:abc", "ASIAEXAMPLE")
    assert "secret-key-value" not in repr(creds)
    stub.assert_no_pending_responses()


ERRORS = [
    (
        "NotAuthorizedException",
        "Invalid login token. Token expired: 1700000000 >= 1690000000",
        IdTokenRejectedError,
        "refused the ID token",
    ),
    (
        "NotAuthorizedException",
        "Invalid login token. Issuer doesn't match providerName",
        AuthenticationError,
        "does not trust user pool eu-west-1_AbC123",
    ),
    (
        "InvalidIdentityPoolConfigurationException",
        "Invalid identity pool configuration. Check assigned IAM roles.",
        AuthenticationError,
        "trust policy",
    ),
    ("ResourceNotFoundException", "IdentityPool 'x' not found.", ConfigurationError, "has no identity pool"),
    ("InvalidParameterException", "CustomRoleArn is not valid", ConfigurationError, "custom_role_arn"),
]


@pytest.mark.parametrize(("code", "server_message", "expected", "words"), ERRORS)
def test_exchange_errors_say_what_to_fix_without_the_token(
    code: str, server_message: str, expected: type[Exception], words: str
) -> None:
    ex, stub, waits = exchanger()
    stub.add_client_error("get_id", code, f"{server_message} {ID_TOKEN}")
    with pytest.raises(expected) as info:
        ex.get_credentials(ID_TOKEN)
    assert words in str(info.value)
    assert ID_TOKEN not in str(info.value)
    assert "eyJ" not in str(info.value)
    assert waits == []


def test_a_deleted_identity_is_replaced_by_asking_for_the_users_identity_again() -> None:
    ex, stub, _ = exchanger()
    stub.add_response("get_id", {"IdentityId": "eu-west-1:old"})
    stub.add_response("get_credentials_for_identity", credentials("eu-west-1:old"))
    ex.get_credentials(ID_TOKEN)
    stub.add_client_error("get_credentials_for_identity", "ResourceNotFoundException", "Identity not found")
    stub.add_response("get_id", {"IdentityId": "eu-west-1:new"})
    stub.add_response("get_credentials_for_identity", credentials("eu-west-1:new"))
    assert ex.get_credentials(ID_TOKEN).identity_id == "eu-west-1:new"
    assert ex.identity_id == "eu-west-1:new"
    stub.assert_no_pending_responses()


def test_a_missing_identity_pool_is_not_asked_twice() -> None:
    ex, stub, _ = exchanger()
    stub.add_client_error("get_id", "ResourceNotFoundException", "IdentityPool not found")
    with pytest.raises(ConfigurationError, match="has no identity pool"):
        ex.get_credentials(ID_TOKEN)
    stub.assert_no_pending_responses()


def test_throttling_is_retried_and_then_reported_as_transient() -> None:
    ex, stub, waits = exchanger(max_attempts=2)
    ex = IdentityPoolExchanger(ex.settings, stub.client, retry_policy=RetryPolicy(max_attempts=2, sleep=waits.append))
    for _ in range(2):
        stub.add_client_error("get_id", "TooManyRequestsException", "Rate exceeded")
    with pytest.raises(TransientError, match=f"get_id in identity pool {POOL} still failing after 2"):
        ex.get_credentials(ID_TOKEN)
    assert len(waits) == 1
