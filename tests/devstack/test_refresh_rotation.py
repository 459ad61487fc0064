"""Refresh-token rotation and GetTokensFromRefreshToken, driven with boto3 as any client would."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError
from pycognito.aws_srp import AWSSRP

from airflow_cognito_iam.devstack.stack import DevStack

pytestmark = pytest.mark.integration


def _code(exc_info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc_info.value.response["Error"]["Code"])


def _sign_in(stack: DevStack, idp: Any, client: str = "rotation") -> dict[str, Any]:
    seeded = stack.seeded_clients[client]
    srp = AWSSRP(
        username=seeded.username,
        password=seeded.password,
        pool_id=seeded.user_pool_id,
        client_id=seeded.client_id,
        client_secret=seeded.client_secret or None,
        client=idp,
    )
    result: dict[str, Any] = srp.authenticate_user()["AuthenticationResult"]
    return result


def _refresh(stack: DevStack, idp: Any, token: str, client: str = "rotation", **kwargs: Any) -> dict[str, Any]:
    seeded = stack.seeded_clients[client]
    call: dict[str, Any] = {"RefreshToken": token, "ClientId": seeded.client_id}
    if seeded.client_secret:
        call["ClientSecret"] = seeded.client_secret
    call.update(kwargs)
    result: dict[str, Any] = idp.get_tokens_from_refresh_token(**call)["AuthenticationResult"]
    return result


def test_rotation_issues_a_new_refresh_token_and_the_old_one_is_single_use(stack: DevStack, idp: Any) -> None:
    first = _sign_in(stack, idp)["RefreshToken"]

    renewed = _refresh(stack, idp, first)
    assert renewed["IdToken"]
    assert renewed["AccessToken"]
    assert renewed["TokenType"] == "Bearer"
    assert renewed["ExpiresIn"] == 3600
    second = renewed["RefreshToken"]
    assert second != first

    with pytest.raises(ClientError) as reused:
        _refresh(stack, idp, first)
    assert _code(reused) == "RefreshTokenReuseException"

    third = _refresh(stack, idp, second)["RefreshToken"]
    assert third not in (first, second)


def test_rotated_id_token_still_opens_the_identity_pool(stack: DevStack, idp: Any, identity: Any) -> None:
    renewed = _refresh(stack, idp, _sign_in(stack, idp)["RefreshToken"])
    logins = {stack.provider_name: renewed["IdToken"]}

    identity_id = identity.get_id(IdentityPoolId=stack.identity_pool_id, Logins=logins)["IdentityId"]

    assert identity.get_credentials_for_identity(IdentityId=identity_id, Logins=logins)["Credentials"]


def test_without_rotation_no_refresh_token_comes_back_and_the_old_one_stays_valid(stack: DevStack, idp: Any) -> None:
    token = _sign_in(stack, idp, client="default")["RefreshToken"]

    for _ in range(2):
        renewed = _refresh(stack, idp, token, client="default")
        assert "RefreshToken" not in renewed
        assert renewed["IdToken"]


def test_refresh_token_auth_is_refused_on_a_rotation_client(stack: DevStack, idp: Any) -> None:
    from airflow_cognito_iam.devstack.cognito_layer import secret_hash

    token = _sign_in(stack, idp)["RefreshToken"]

    with pytest.raises(ClientError) as refused:
        idp.initiate_auth(
            ClientId=stack.rotation_client_id,
            AuthFlow="REFRESH_TOKEN_AUTH",
            AuthParameters={
                "REFRESH_TOKEN": token,
                "SECRET_HASH": secret_hash(stack.rotation_client_secret, stack.username, stack.rotation_client_id),
            },
        )

    assert _code(refused) == "InvalidParameterException"
    assert "GetTokensFromRefreshToken" in str(refused.value)


@pytest.mark.parametrize("secret", [None, "not-the-secret-" + "x" * 24])
def test_client_secret_is_required_and_checked(stack: DevStack, idp: Any, secret: str | None) -> None:
    token = _sign_in(stack, idp)["RefreshToken"]
    call = {"RefreshToken": token, "ClientId": stack.rotation_client_id}
    if secret is not None:
        call["ClientSecret"] = secret

    with pytest.raises(ClientError) as refused:
        idp.get_tokens_from_refresh_token(**call)

    assert _code(refused) == "NotAuthorizedException"
    assert stack.rotation_client_secret not in str(refused.value)
    assert _refresh(stack, idp, token)["RefreshToken"]  # a refused call does not spend the token


def test_unknown_or_foreign_refresh_tokens_are_invalid(stack: DevStack, idp: Any) -> None:
    foreign = _sign_in(stack, idp, client="default")["RefreshToken"]

    for token in ("not-a-refresh-token", foreign):
        with pytest.raises(ClientError) as refused:
            _refresh(stack, idp, token)
        assert _code(refused) == "NotAuthorizedException"
        assert "Invalid Refresh Token" in str(refused.value)


def test_grace_period_lets_the_old_token_retry_then_ends(stack: DevStack, idp: Any) -> None:
    stack.set_refresh_grace_period(1)
    first = _sign_in(stack, idp)["RefreshToken"]
    rotated_at = time.monotonic()
    _refresh(stack, idp, first)

    retried = _refresh(stack, idp, first)  # a client retrying after a lost response
    assert retried["RefreshToken"] != first

    refusal = ""
    deadline = rotated_at + 10
    while not refusal and time.monotonic() < deadline:
        try:
            _refresh(stack, idp, first)
        except ClientError as exc:
            refusal = str(exc.response["Error"]["Code"])
        else:
            time.sleep(0.1)

    assert refusal == "RefreshTokenReuseException", "still accepted long after the grace period"
    assert time.monotonic() - rotated_at >= 1.0


def test_grace_period_over_the_control_route_and_reset(stack: DevStack, idp: Any) -> None:
    answer = requests.post(f"{stack.api_url}/_control/refresh-grace-period", json={"seconds": 30}, timeout=10)
    assert answer.status_code == 200
    token = _sign_in(stack, idp)["RefreshToken"]
    _refresh(stack, idp, token)
    assert _refresh(stack, idp, token)["RefreshToken"]

    bad = requests.post(f"{stack.api_url}/_control/refresh-grace-period", json={"seconds": 61}, timeout=10)
    assert bad.status_code == 400

    stack.reset()
    token = _sign_in(stack, idp)["RefreshToken"]
    _refresh(stack, idp, token)
    with pytest.raises(ClientError):
        _refresh(stack, idp, token)


def test_two_racing_refreshes_with_one_token_only_one_wins(stack: DevStack, idp: Any) -> None:
    token = _sign_in(stack, idp)["RefreshToken"]
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def attempt() -> None:
        start.wait()
        try:
            _refresh(stack, idp, token)
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(str(exc.response["Error"]["Code"]))

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["RefreshTokenReuseException"] * 3 + ["ok"]


def test_revoke_token_ends_the_whole_rotated_family(stack: DevStack, idp: Any) -> None:
    stack.set_refresh_grace_period(60)
    first = _sign_in(stack, idp)["RefreshToken"]
    second = _refresh(stack, idp, first)["RefreshToken"]
    other_session = _sign_in(stack, idp)["RefreshToken"]

    idp.revoke_token(Token=second, ClientId=stack.rotation_client_id, ClientSecret=stack.rotation_client_secret)

    for token in (first, second):
        with pytest.raises(ClientError) as refused:
            _refresh(stack, idp, token)
        assert _code(refused) == "NotAuthorizedException"
        assert "revoked" in str(refused.value)
    assert _refresh(stack, idp, other_session)["RefreshToken"]


def test_revoke_token_checks_the_secret_and_the_token_type(stack: DevStack, idp: Any) -> None:
    tokens = _sign_in(stack, idp)

    with pytest.raises(ClientError) as wrong_secret:
        idp.revoke_token(Token=tokens["RefreshToken"], ClientId=stack.rotation_client_id, ClientSecret="n" * 40)
    with pytest.raises(ClientError) as access_token:
        idp.revoke_token(
            Token=tokens["AccessToken"], ClientId=stack.rotation_client_id, ClientSecret=stack.rotation_client_secret
        )

    assert _code(wrong_secret) == "UnauthorizedException"
    assert _code(access_token) == "UnsupportedTokenTypeException"
    assert _refresh(stack, idp, tokens["RefreshToken"])


def test_rotation_settings_are_validated_and_stored_like_cognito(stack: DevStack) -> None:
    admin = stack.client("cognito-idp")
    with pytest.raises(ClientError) as refused:
        admin.create_user_pool_client(
            UserPoolId=stack.user_pool_id,
            ClientName="bad-grace",
            RefreshTokenRotation={"Feature": "ENABLED", "RetryGracePeriodSeconds": 61},
        )
    assert _code(refused) == "InvalidParameterException"

    created = admin.create_user_pool_client(
        UserPoolId=stack.user_pool_id,
        ClientName="rotating",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        RefreshTokenRotation={"Feature": "ENABLED", "RetryGracePeriodSeconds": 10},
    )["UserPoolClient"]
    described = admin.describe_user_pool_client(UserPoolId=stack.user_pool_id, ClientId=created["ClientId"])

    assert described["UserPoolClient"]["RefreshTokenRotation"] == {"Feature": "ENABLED", "RetryGracePeriodSeconds": 10}


def test_stats_count_get_tokens_from_refresh_token(stack: DevStack, idp: Any) -> None:
    token = _sign_in(stack, idp)["RefreshToken"]
    stack.reset_stats()
    _refresh(stack, idp, token)
    with pytest.raises(ClientError):
        _refresh(stack, idp, token)

    stats = stack.stats()
    assert stats["cognito"]["GetTokensFromRefreshToken"] == 2
    assert stats["cognito_rejected"]["GetTokensFromRefreshToken"] == 1


def test_seeded_rotation_client_is_described_and_gives_a_connection(stack: DevStack) -> None:
    described = stack.describe()
    conn = stack.conn_dict_for("rotation")

    assert described["rotation_client_id"] == stack.rotation_client_id
    assert described["clients"]["rotation"]["client_secret"] == stack.rotation_client_secret
    assert conn["extra"]["client_id"] == stack.rotation_client_id
    assert conn["extra"]["client_secret"] == stack.rotation_client_secret
    assert conn["login"] == stack.username
    assert stack.rotation_client_secret not in repr(stack.seeded_clients["rotation"])
