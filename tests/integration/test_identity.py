"""Identity pool exchange over real HTTP against the devstack, which (unlike bare moto) verifies the
Logins map: the provider must be linked to the identity pool, the ID token signed by the pool and
issued to a linked client, and CustomRoleArn one of the pool's roles.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from airflow_cognito_iam.auth.errors import AuthenticationError, ConfigurationError
from airflow_cognito_iam.auth.identity_pool import IdentityPoolExchanger
from airflow_cognito_iam.auth.retry import RetryPolicy
from airflow_cognito_iam.auth.settings import CognitoSettings
from airflow_cognito_iam.auth.user_pool import UserPoolAuthenticator

pytestmark = pytest.mark.integration

Stack = Any  # airflow_cognito_iam.devstack.DevStack


@pytest.fixture
def stack(cognito_iam_conn: Stack) -> Stack:
    """The shared devstack, with faults cleared and counters zeroed for this test."""
    return cognito_iam_conn


def settings_for(stack: Stack, **extra: Any) -> CognitoSettings:
    conn = stack.conn_dict()
    values = dict(conn["extra"])
    login = extra.pop("login", conn["login"])
    password = extra.pop("password", conn["password"])
    values.update(extra)
    values = {k: v for k, v in values.items() if v is not None}
    return CognitoSettings.from_connection(host=conn.get("host"), login=login, password=password, extra=values)


def id_token(settings: CognitoSettings) -> str:
    return UserPoolAuthenticator(settings).sign_in().id_token


def calls(stack: Stack) -> dict[str, int]:
    return dict(stack.stats()["cognito"])


def test_id_token_is_exchanged_for_credentials_of_the_users_identity(stack: Stack) -> None:
    settings = settings_for(stack)
    token = id_token(settings)
    stack.reset_stats()
    exchanger = IdentityPoolExchanger(settings)
    creds = exchanger.get_credentials(token)
    assert exchanger.identity_id == creds.identity_id
    assert creds.identity_id.startswith(f"{stack.region}:")
    assert creds.expiration > datetime.now(UTC)
    issued = stack.registry.get(creds.access_key_id)
    assert issued is not None
    assert issued.identity_id == creds.identity_id
    assert issued.role_arn == stack.auth_role_arn
    assert calls(stack) == {"GetId": 1, "GetCredentialsForIdentity": 1}
    assert creds.secret_access_key not in repr(creds)
    assert creds.session_token not in repr(creds)


def test_the_identity_id_is_remembered_between_exchanges(stack: Stack) -> None:
    settings = settings_for(stack)
    token = id_token(settings)
    exchanger = IdentityPoolExchanger(settings)
    first = exchanger.get_credentials(token)
    stack.reset_stats()
    second = exchanger.get_credentials(token)
    assert calls(stack) == {"GetCredentialsForIdentity": 1}
    assert second.identity_id == first.identity_id


@pytest.fixture
def extra_role(stack: Stack) -> Iterator[str]:
    account = stack.auth_role_arn.split(":")[4]
    role = f"arn:aws:iam::{account}:role/Cognito_ReadOnly_{secrets.token_hex(3)}"
    stack.allowed_role_arns.add(role)
    yield role
    stack.allowed_role_arns.discard(role)


def test_custom_role_arn_is_requested(stack: Stack, extra_role: str) -> None:
    settings = settings_for(stack, custom_role_arn=extra_role)
    creds = IdentityPoolExchanger(settings).get_credentials(id_token(settings))
    issued = stack.registry.get(creds.access_key_id)
    assert issued is not None
    assert issued.role_arn == extra_role


def test_a_custom_role_the_pool_does_not_have_is_refused_clearly(stack: Stack) -> None:
    role = "arn:aws:iam::123456789012:role/NotThisPoolsRole"
    settings = settings_for(stack, custom_role_arn=role)
    token = id_token(settings)
    with pytest.raises(ConfigurationError, match="custom_role_arn") as info:
        IdentityPoolExchanger(settings).get_credentials(token)
    assert token not in str(info.value)


@pytest.fixture
def unlinked_pool(stack: Stack) -> Iterator[CognitoSettings]:
    """A second user pool with a user, which the stack's identity pool does not list as a provider."""
    idp = stack.client("cognito-idp")
    pool_id = idp.create_user_pool(PoolName=f"unlinked-{secrets.token_hex(3)}")["UserPool"]["Id"]
    client_id = idp.create_user_pool_client(
        UserPoolId=pool_id, ClientName="unlinked", ExplicitAuthFlows=["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    )["UserPoolClient"]["ClientId"]
    password = f"Ul{secrets.token_urlsafe(10)}5!"
    idp.admin_create_user(UserPoolId=pool_id, Username="outsider", MessageAction="SUPPRESS")
    idp.admin_set_user_password(UserPoolId=pool_id, Username="outsider", Password=password, Permanent=True)
    yield settings_for(
        stack, login="outsider", password=password, user_pool_id=pool_id, client_id=client_id, client_secret=None
    )
    idp.delete_user_pool(UserPoolId=pool_id)


def test_a_user_pool_not_linked_to_the_identity_pool_is_an_admin_error(
    stack: Stack, unlinked_pool: CognitoSettings
) -> None:
    token = id_token(unlinked_pool)
    stack.reset_stats()
    with pytest.raises(AuthenticationError) as info:
        IdentityPoolExchanger(unlinked_pool).get_credentials(token)
    message = str(info.value)
    assert f"does not trust user pool {unlinked_pool.user_pool_id}" in message
    assert stack.identity_pool_id in message
    assert "authentication provider" in message
    assert token not in message
    assert calls(stack) == {"GetId": 1}  # refused, not retried


def test_an_app_client_not_linked_to_the_identity_pool_is_refused(stack: Stack) -> None:
    idp = stack.client("cognito-idp")
    client_id = idp.create_user_pool_client(
        UserPoolId=stack.user_pool_id,
        ClientName=f"unlisted-{secrets.token_hex(3)}",
        ExplicitAuthFlows=["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    try:
        settings = settings_for(stack, client_id=client_id, client_secret=None)
        with pytest.raises(AuthenticationError, match=f"app client {client_id}"):
            IdentityPoolExchanger(settings).get_credentials(id_token(settings))
    finally:
        idp.delete_user_pool_client(UserPoolId=stack.user_pool_id, ClientId=client_id)


def test_missing_identity_pool_id_fails_before_any_call(stack: Stack) -> None:
    settings = settings_for(stack, identity_pool_id=None)
    with pytest.raises(ConfigurationError, match="identity_pool_id"):
        IdentityPoolExchanger(settings).get_credentials("eyJhbGciOiJub25lIn0.e30.")
    assert calls(stack) == {}


def test_an_identity_pool_that_does_not_exist_is_a_configuration_error(stack: Stack) -> None:
    settings = settings_for(stack, identity_pool_id=f"{stack.region}:00000000-0000-0000-0000-000000000000")
    token = id_token(settings)
    with pytest.raises(ConfigurationError, match="has no identity pool"):
        IdentityPoolExchanger(settings).get_credentials(token)


def test_throttled_exchange_is_retried(stack: Stack) -> None:
    settings = settings_for(stack)
    token = id_token(settings)
    stack.reset_stats()
    waits: list[float] = []
    stack.set_cognito_faults(count=2, actions=["GetCredentialsForIdentity"])
    creds = IdentityPoolExchanger(settings, retry_policy=RetryPolicy(sleep=waits.append)).get_credentials(token)
    assert creds.access_key_id
    assert calls(stack) == {"GetId": 1, "GetCredentialsForIdentity": 3}
    assert len(waits) == 2
