"""Each rule the strict layer adds: moto alone accepts the request, the stack refuses it like Cognito."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pyotp
import pytest
from botocore.exceptions import ClientError
from pycognito.aws_srp import AWSSRP

from airflow_cognito_iam.devstack.cognito_layer import secret_hash
from airflow_cognito_iam.devstack.stack import ACCOUNT_ID, DevStack

from .conftest import srp_sign_in

pytestmark = pytest.mark.integration


def _error_code(exc_info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc_info.value.response["Error"]["Code"])


def _garbage_password_verifier(stack: DevStack, client: Any) -> dict[str, Any]:
    """Start USER_SRP_AUTH properly, then answer PASSWORD_VERIFIER with a made-up signature."""
    srp = AWSSRP(
        username=stack.username,
        password=stack.password,
        pool_id=stack.user_pool_id,
        client_id=stack.client_id,
        client_secret=stack.client_secret,
        client=client,
    )
    challenge = client.initiate_auth(
        ClientId=stack.client_id, AuthFlow="USER_SRP_AUTH", AuthParameters=srp.get_auth_params()
    )
    params = challenge["ChallengeParameters"]
    responses = {
        "USERNAME": params["USERNAME"],
        "PASSWORD_CLAIM_SECRET_BLOCK": params["SECRET_BLOCK"],
        "PASSWORD_CLAIM_SIGNATURE": base64.b64encode(b"x" * 32).decode(),
        "TIMESTAMP": AWSSRP.get_cognito_formatted_timestamp(dt.datetime.now(dt.UTC)),
        "SECRET_HASH": secret_hash(stack.client_secret, params["USERNAME"], stack.client_id),
    }
    result: dict[str, Any] = client.respond_to_auth_challenge(
        ClientId=stack.client_id, ChallengeName="PASSWORD_VERIFIER", ChallengeResponses=responses
    )
    return result


def test_garbage_srp_proof_is_accepted_by_moto_but_refused_by_the_stack(
    stack: DevStack, idp: Any, raw_idp: Any
) -> None:
    assert "IdToken" in _garbage_password_verifier(stack, raw_idp)["AuthenticationResult"]

    with pytest.raises(ClientError) as refused:
        _garbage_password_verifier(stack, idp)

    assert _error_code(refused) == "NotAuthorizedException"
    assert "Incorrect username or password" in str(refused.value)


def test_srp_with_a_wrong_password_is_refused(stack: DevStack, idp: Any) -> None:
    with pytest.raises(ClientError) as refused:
        srp_sign_in(stack, idp, password=stack.password + "x")

    assert _error_code(refused) == "NotAuthorizedException"


def test_srp_secret_block_cannot_be_replayed(stack: DevStack, idp: Any) -> None:
    srp = AWSSRP(
        username=stack.username,
        password=stack.password,
        pool_id=stack.user_pool_id,
        client_id=stack.client_id,
        client_secret=stack.client_secret,
        client=idp,
    )
    auth_params = srp.get_auth_params()
    challenge = idp.initiate_auth(ClientId=stack.client_id, AuthFlow="USER_SRP_AUTH", AuthParameters=auth_params)
    responses = srp.process_challenge(challenge["ChallengeParameters"], auth_params)
    idp.respond_to_auth_challenge(
        ClientId=stack.client_id, ChallengeName="PASSWORD_VERIFIER", ChallengeResponses=responses
    )

    with pytest.raises(ClientError) as refused:
        idp.respond_to_auth_challenge(
            ClientId=stack.client_id, ChallengeName="PASSWORD_VERIFIER", ChallengeResponses=responses
        )

    assert _error_code(refused) == "NotAuthorizedException"


def test_user_password_auth_without_secret_hash_is_accepted_by_moto_but_refused_by_the_stack(
    stack: DevStack, idp: Any, raw_idp: Any
) -> None:
    params = {"USERNAME": stack.username, "PASSWORD": stack.password}
    moto_answer = raw_idp.initiate_auth(ClientId=stack.client_id, AuthFlow="USER_PASSWORD_AUTH", AuthParameters=params)
    assert "IdToken" in moto_answer["AuthenticationResult"]

    with pytest.raises(ClientError) as refused:
        idp.initiate_auth(ClientId=stack.client_id, AuthFlow="USER_PASSWORD_AUTH", AuthParameters=params)

    assert _error_code(refused) == "NotAuthorizedException"
    assert "SECRET_HASH was not received" in str(refused.value)


def test_user_password_auth_with_a_wrong_secret_hash_is_refused(stack: DevStack, idp: Any) -> None:
    wrong = secret_hash("not-the-secret", stack.username, stack.client_id)

    with pytest.raises(ClientError) as refused:
        idp.initiate_auth(
            ClientId=stack.client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": stack.username, "PASSWORD": stack.password, "SECRET_HASH": wrong},
        )

    assert _error_code(refused) == "NotAuthorizedException"
    assert "Unable to verify secret hash" in str(refused.value)


def test_user_password_auth_with_the_right_secret_hash_signs_in(stack: DevStack, idp: Any) -> None:
    answer = idp.initiate_auth(
        ClientId=stack.client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={
            "USERNAME": stack.username,
            "PASSWORD": stack.password,
            "SECRET_HASH": secret_hash(stack.client_secret, stack.username, stack.client_id),
        },
    )

    assert "IdToken" in answer["AuthenticationResult"]


def test_flow_missing_from_explicit_auth_flows_is_accepted_by_moto_but_refused_by_the_stack(
    stack: DevStack, idp: Any, raw_idp: Any
) -> None:
    params = {"USERNAME": stack.username, "PASSWORD": stack.password}
    moto_answer = raw_idp.initiate_auth(
        ClientId=stack.public_client_id, AuthFlow="USER_PASSWORD_AUTH", AuthParameters=params
    )
    assert "IdToken" in moto_answer["AuthenticationResult"]

    with pytest.raises(ClientError) as refused:
        idp.initiate_auth(ClientId=stack.public_client_id, AuthFlow="USER_PASSWORD_AUTH", AuthParameters=params)

    assert _error_code(refused) == "InvalidParameterException"
    assert "USER_PASSWORD_AUTH flow not enabled for this client" in str(refused.value)


def test_public_client_signs_in_with_srp_without_secret_hash(stack: DevStack, idp: Any) -> None:
    srp = AWSSRP(
        username=stack.username,
        password=stack.password,
        pool_id=stack.user_pool_id,
        client_id=stack.public_client_id,
        client=idp,
    )

    assert "IdToken" in srp.authenticate_user()["AuthenticationResult"]


def test_refresh_needs_the_secret_hash_of_the_token_owner(stack: DevStack, idp: Any) -> None:
    tokens = srp_sign_in(stack, idp)
    refresh = {"REFRESH_TOKEN": tokens["RefreshToken"]}

    with pytest.raises(ClientError) as refused:
        idp.initiate_auth(ClientId=stack.client_id, AuthFlow="REFRESH_TOKEN_AUTH", AuthParameters=refresh)
    assert _error_code(refused) == "NotAuthorizedException"

    sub = stack.client("cognito-idp").admin_get_user(UserPoolId=stack.user_pool_id, Username=stack.username)
    sub_value = next(a["Value"] for a in sub["UserAttributes"] if a["Name"] == "sub")
    for name in (stack.username, sub_value):
        answer = idp.initiate_auth(
            ClientId=stack.client_id,
            AuthFlow="REFRESH_TOKEN_AUTH",
            AuthParameters={**refresh, "SECRET_HASH": secret_hash(stack.client_secret, name, stack.client_id)},
        )
        assert "IdToken" in answer["AuthenticationResult"]


def test_refresh_token_of_another_client_is_refused(stack: DevStack, idp: Any) -> None:
    tokens = srp_sign_in(stack, idp)

    with pytest.raises(ClientError) as refused:
        idp.initiate_auth(
            ClientId=stack.public_client_id,
            AuthFlow="REFRESH_TOKEN_AUTH",
            AuthParameters={"REFRESH_TOKEN": tokens["RefreshToken"]},
        )

    assert _error_code(refused) == "NotAuthorizedException"


def _srp_for(stack: DevStack, idp: Any, username: str, password: str) -> dict[str, Any]:
    srp = AWSSRP(
        username=username,
        password=password,
        pool_id=stack.user_pool_id,
        client_id=stack.client_id,
        client_secret=stack.client_secret,
        client=idp,
    )
    auth_params = srp.get_auth_params()
    challenge = idp.initiate_auth(ClientId=stack.client_id, AuthFlow="USER_SRP_AUTH", AuthParameters=auth_params)
    answer: dict[str, Any] = idp.respond_to_auth_challenge(
        ClientId=stack.client_id,
        ChallengeName="PASSWORD_VERIFIER",
        ChallengeResponses=srp.process_challenge(challenge["ChallengeParameters"], auth_params),
    )
    return answer


def test_totp_user_gets_software_token_mfa_and_signs_in_with_the_code(stack: DevStack, idp: Any) -> None:
    challenge = _srp_for(stack, idp, stack.mfa_username, stack.mfa_password)
    assert challenge["ChallengeName"] == "SOFTWARE_TOKEN_MFA"

    answer = idp.respond_to_auth_challenge(
        ClientId=stack.client_id,
        ChallengeName="SOFTWARE_TOKEN_MFA",
        Session=challenge["Session"],
        ChallengeResponses={
            "USERNAME": stack.mfa_username,
            "SOFTWARE_TOKEN_MFA_CODE": pyotp.TOTP(stack.totp_secret).now(),
            "SECRET_HASH": secret_hash(stack.client_secret, stack.mfa_username, stack.client_id),
        },
    )

    assert "IdToken" in answer["AuthenticationResult"]


def test_totp_user_with_a_wrong_code_is_refused(stack: DevStack, idp: Any) -> None:
    challenge = _srp_for(stack, idp, stack.mfa_username, stack.mfa_password)
    right = pyotp.TOTP(stack.totp_secret).now()
    wrong = f"{(int(right) + 500_000) % 1_000_000:06d}"

    with pytest.raises(ClientError) as refused:
        idp.respond_to_auth_challenge(
            ClientId=stack.client_id,
            ChallengeName="SOFTWARE_TOKEN_MFA",
            Session=challenge["Session"],
            ChallengeResponses={
                "USERNAME": stack.mfa_username,
                "SOFTWARE_TOKEN_MFA_CODE": wrong,
                "SECRET_HASH": secret_hash(stack.client_secret, stack.mfa_username, stack.client_id),
            },
        )

    assert _error_code(refused) == "CodeMismatchException"


def test_user_in_force_change_password_gets_new_password_required(stack: DevStack, idp: Any) -> None:
    challenge = _srp_for(stack, idp, stack.new_password_username, stack.new_password_password)

    assert challenge["ChallengeName"] == "NEW_PASSWORD_REQUIRED"
    assert challenge["Session"]


# -- identity pool -----------------------------------------------------------------------------------


def _expired_id_token(stack: DevStack) -> str:
    """An ID token as the pool issued it an hour ago (moto's own signer, already expired)."""
    from moto.cognitoidp.models import cognitoidp_backends

    pool = cognitoidp_backends[ACCOUNT_ID][stack.region].user_pools[stack.user_pool_id]
    token, _ = pool.create_jwt(stack.client_id, stack.username, "id", expires_in=-60)
    return str(token)


def test_wrong_logins_key_is_accepted_by_moto_but_refused_by_the_stack(
    stack: DevStack, idp: Any, identity: Any, raw_identity: Any
) -> None:
    id_token = srp_sign_in(stack, idp)["IdToken"]
    wrong_key = {f"cognito-idp.{stack.region}.amazonaws.com/{stack.region}_NotThePool": id_token}
    moto_id = raw_identity.get_id(IdentityPoolId=stack.identity_pool_id, Logins=wrong_key)["IdentityId"]
    assert raw_identity.get_credentials_for_identity(IdentityId=moto_id, Logins=wrong_key)["Credentials"]

    with pytest.raises(ClientError) as refused:
        identity.get_id(IdentityPoolId=stack.identity_pool_id, Logins=wrong_key)

    assert _error_code(refused) == "NotAuthorizedException"


def test_expired_id_token_is_accepted_by_moto_but_refused_by_the_stack(
    stack: DevStack, idp: Any, identity: Any, raw_identity: Any
) -> None:
    fresh = {stack.provider_name: srp_sign_in(stack, idp)["IdToken"]}
    identity_id = identity.get_id(IdentityPoolId=stack.identity_pool_id, Logins=fresh)["IdentityId"]
    expired = {stack.provider_name: _expired_id_token(stack)}
    assert raw_identity.get_credentials_for_identity(IdentityId=identity_id, Logins=expired)["Credentials"]

    with pytest.raises(ClientError) as refused:
        identity.get_credentials_for_identity(IdentityId=identity_id, Logins=expired)

    assert _error_code(refused) == "NotAuthorizedException"
    assert "expired" in str(refused.value)


def test_forged_or_access_tokens_are_refused_as_logins(stack: DevStack, idp: Any, identity: Any) -> None:
    tokens = srp_sign_in(stack, idp)
    header, payload, signature = tokens["IdToken"].split(".")
    forged = ".".join((header, payload, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")))

    for token in (forged, tokens["AccessToken"], "not-a-jwt"):
        with pytest.raises(ClientError) as refused:
            identity.get_id(IdentityPoolId=stack.identity_pool_id, Logins={stack.provider_name: token})
        assert _error_code(refused) == "NotAuthorizedException"


def test_unauthenticated_identities_are_refused(stack: DevStack, identity: Any, raw_identity: Any) -> None:
    assert raw_identity.get_id(IdentityPoolId=stack.identity_pool_id)["IdentityId"]

    with pytest.raises(ClientError) as refused:
        identity.get_id(IdentityPoolId=stack.identity_pool_id)

    assert _error_code(refused) == "NotAuthorizedException"


def test_credentials_for_another_users_identity_are_refused(stack: DevStack, idp: Any, identity: Any) -> None:
    mine = {stack.provider_name: srp_sign_in(stack, idp)["IdToken"]}
    identity_id = identity.get_id(IdentityPoolId=stack.identity_pool_id, Logins=mine)["IdentityId"]
    challenge = _srp_for(stack, idp, stack.mfa_username, stack.mfa_password)
    other = idp.respond_to_auth_challenge(
        ClientId=stack.client_id,
        ChallengeName="SOFTWARE_TOKEN_MFA",
        Session=challenge["Session"],
        ChallengeResponses={
            "USERNAME": stack.mfa_username,
            "SOFTWARE_TOKEN_MFA_CODE": pyotp.TOTP(stack.totp_secret).now(),
            "SECRET_HASH": secret_hash(stack.client_secret, stack.mfa_username, stack.client_id),
        },
    )["AuthenticationResult"]["IdToken"]

    with pytest.raises(ClientError) as refused:
        identity.get_credentials_for_identity(IdentityId=identity_id, Logins={stack.provider_name: other})

    assert _error_code(refused) == "NotAuthorizedException"
    assert "Logins don't match" in str(refused.value)


def test_moto_alone_hands_everyone_the_same_short_lived_credentials(
    stack: DevStack, idp: Any, raw_identity: Any
) -> None:
    """Why the stack mints its own: moto's are shared and fixed, so a client cache bug could not show."""
    logins = {stack.provider_name: srp_sign_in(stack, idp)["IdToken"]}
    identity_id = raw_identity.get_id(IdentityPoolId=stack.identity_pool_id, Logins=logins)["IdentityId"]
    first = raw_identity.get_credentials_for_identity(IdentityId=identity_id, Logins=logins)["Credentials"]
    second = raw_identity.get_credentials_for_identity(IdentityId=identity_id, Logins=logins)["Credentials"]

    assert first["AccessKeyId"] == second["AccessKeyId"]


def test_cognito_faults_throttle_the_next_calls_then_recover(stack: DevStack, idp: Any) -> None:
    stack.set_cognito_faults(count=2, actions=["InitiateAuth"])

    for _ in range(2):
        with pytest.raises(ClientError) as throttled:
            srp_sign_in(stack, idp)
        assert _error_code(throttled) == "TooManyRequestsException"
    assert "IdToken" in srp_sign_in(stack, idp)

    assert stack.stats()["cognito"]["InitiateAuth"] == 3
    assert stack.stats()["cognito_rejected"]["InitiateAuth"] == 2


def test_boto3_standard_retries_ride_through_a_throttle(stack: DevStack) -> None:
    from botocore import UNSIGNED
    from botocore.config import Config

    client = stack.client(
        "cognito-idp", config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 3, "mode": "standard"})
    )
    stack.set_cognito_faults(count=1, actions=["InitiateAuth"])

    assert "IdToken" in srp_sign_in(stack, client)
    assert stack.stats()["cognito"]["InitiateAuth"] == 2


def test_sign_up_without_secret_hash_is_accepted_by_moto_but_refused_by_the_stack(
    stack: DevStack, idp: Any, raw_idp: Any
) -> None:
    import secrets

    password = f"Pw{secrets.token_hex(6)}9!"
    raw_idp.sign_up(ClientId=stack.client_id, Username=f"moto-{secrets.token_hex(4)}", Password=password)

    with pytest.raises(ClientError) as refused:
        idp.sign_up(ClientId=stack.client_id, Username=f"strict-{secrets.token_hex(4)}", Password=password)

    assert _error_code(refused) == "NotAuthorizedException"


def test_errors_never_echo_the_session_sent_unlike_moto(stack: DevStack, idp: Any, raw_idp: Any) -> None:
    bogus = "AYABeBogusSessionValue0123456789"
    call = {
        "ClientId": stack.public_client_id,
        "ChallengeName": "NEW_PASSWORD_REQUIRED",
        "Session": bogus,
        "ChallengeResponses": {"USERNAME": stack.new_password_username, "NEW_PASSWORD": "N3w-password!"},
    }
    with pytest.raises(ClientError) as from_moto:
        raw_idp.respond_to_auth_challenge(**call)
    assert bogus in str(from_moto.value)

    with pytest.raises(ClientError) as from_stack:
        idp.respond_to_auth_challenge(**call)

    assert bogus not in str(from_stack.value)


def test_custom_role_arn_must_be_a_role_of_the_pool(stack: DevStack, idp: Any, identity: Any) -> None:
    logins = {stack.provider_name: srp_sign_in(stack, idp)["IdToken"]}
    identity_id = identity.get_id(IdentityPoolId=stack.identity_pool_id, Logins=logins)["IdentityId"]
    granted = identity.get_credentials_for_identity(
        IdentityId=identity_id, Logins=logins, CustomRoleArn=stack.auth_role_arn
    )["Credentials"]

    with pytest.raises(ClientError) as refused:
        identity.get_credentials_for_identity(
            IdentityId=identity_id, Logins=logins, CustomRoleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/SomethingElse"
        )

    assert stack.registry.get(granted["AccessKeyId"]) is not None
    assert _error_code(refused) == "InvalidParameterException"
