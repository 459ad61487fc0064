"""Pools whose login is not the username: an AliasAttributes e-mail, and e-mail as the username."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from botocore.exceptions import ClientError
from pycognito.aws_srp import AWSSRP

from airflow_cognito_iam.devstack.cognito_layer import secret_hash
from airflow_cognito_iam.devstack.stack import DevStack

pytestmark = pytest.mark.integration


def _srp(stack: DevStack, idp: Any, name: str, login: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(PASSWORD_VERIFIER challenge parameters, tokens) of a pycognito SRP sign-in with the seeded client."""
    seeded = stack.seeded_clients[name]
    srp = AWSSRP(
        username=login or seeded.username,
        password=seeded.password,
        pool_id=seeded.user_pool_id,
        client_id=seeded.client_id,
        client_secret=seeded.client_secret,
        client=idp,
    )
    auth_params = srp.get_auth_params()
    challenge = idp.initiate_auth(ClientId=seeded.client_id, AuthFlow="USER_SRP_AUTH", AuthParameters=auth_params)
    answer = idp.respond_to_auth_challenge(
        ClientId=seeded.client_id,
        ChallengeName="PASSWORD_VERIFIER",
        ChallengeResponses=srp.process_challenge(challenge["ChallengeParameters"], auth_params),
    )
    return challenge["ChallengeParameters"], answer["AuthenticationResult"]


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def test_srp_with_a_verified_email_alias_names_the_internal_username(stack: DevStack, idp: Any) -> None:
    params, tokens = _srp(stack, idp, "alias")

    assert stack.alias_login != stack.alias_username
    assert params["USERNAME"] == stack.alias_username
    assert params["USER_ID_FOR_SRP"] == stack.alias_username
    assert _claims(tokens["IdToken"])["cognito:username"] == stack.alias_username


def test_password_auth_and_refresh_with_an_email_alias(stack: DevStack, idp: Any) -> None:
    answer = idp.initiate_auth(
        ClientId=stack.alias_client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={
            "USERNAME": stack.alias_login,
            "PASSWORD": stack.alias_password,
            "SECRET_HASH": secret_hash(stack.alias_client_secret, stack.alias_login, stack.alias_client_id),
        },
    )["AuthenticationResult"]

    renewed = idp.initiate_auth(
        ClientId=stack.alias_client_id,
        AuthFlow="REFRESH_TOKEN_AUTH",
        AuthParameters={
            "REFRESH_TOKEN": answer["RefreshToken"],
            "SECRET_HASH": secret_hash(stack.alias_client_secret, stack.alias_username, stack.alias_client_id),
        },
    )
    assert renewed["AuthenticationResult"]["IdToken"]


def test_an_unverified_alias_does_not_sign_in(stack: DevStack, idp: Any) -> None:
    admin = stack.client("cognito-idp")
    admin.admin_update_user_attributes(
        UserPoolId=stack.alias_user_pool_id,
        Username=stack.alias_username,
        UserAttributes=[{"Name": "email_verified", "Value": "false"}],
    )
    try:
        with pytest.raises(ClientError) as refused:
            _srp(stack, idp, "alias")
        assert refused.value.response["Error"]["Code"] == "UserNotFoundException"
        assert _srp(stack, idp, "alias", login=stack.alias_username)[1]["IdToken"]
    finally:
        admin.admin_update_user_attributes(
            UserPoolId=stack.alias_user_pool_id,
            Username=stack.alias_username,
            UserAttributes=[{"Name": "email_verified", "Value": "true"}],
        )


def test_email_username_pool_puts_the_email_in_the_id_token(stack: DevStack, idp: Any, identity: Any) -> None:
    params, tokens = _srp(stack, idp, "email")
    claims = _claims(tokens["IdToken"])

    assert claims["email"] == stack.email_login
    assert claims["cognito:username"] == claims["sub"] == params["USER_ID_FOR_SRP"]
    assert params["USER_ID_FOR_SRP"] != stack.email_login
    logins = {f"cognito-idp.{stack.region}.amazonaws.com/{stack.email_user_pool_id}": tokens["IdToken"]}
    assert identity.get_id(IdentityPoolId=stack.identity_pool_id, Logins=logins)["IdentityId"]


def test_seeded_login_pools_are_described(stack: DevStack) -> None:
    described = stack.describe()

    assert described["alias_login"] == f"{stack.alias_username}@example.com"
    assert described["email_login"] == stack.email_login
    assert stack.conn_dict_for("alias")["login"] == stack.alias_login
