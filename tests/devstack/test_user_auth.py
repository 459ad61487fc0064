"""USER_AUTH, choice-based sign-in, driven with boto3 and pycognito's SRP client math."""

from __future__ import annotations

from typing import Any

import pyotp
import pytest
from botocore.exceptions import ClientError
from pycognito.aws_srp import AWSSRP

from airflow_cognito_iam.devstack.cognito_layer import secret_hash
from airflow_cognito_iam.devstack.stack import DevStack

pytestmark = pytest.mark.integration


def _code(exc_info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc_info.value.response["Error"]["Code"])


def _hash(stack: DevStack, username: str) -> str:
    return secret_hash(stack.user_auth_client_secret, username, stack.user_auth_client_id)


def _srp(stack: DevStack, idp: Any, username: str, password: str) -> AWSSRP:
    return AWSSRP(
        username=username,
        password=password,
        pool_id=stack.user_pool_id,
        client_id=stack.user_auth_client_id,
        client_secret=stack.user_auth_client_secret,
        client=idp,
    )


def _start(stack: DevStack, idp: Any, username: str, **auth: str) -> dict[str, Any]:
    result: dict[str, Any] = idp.initiate_auth(
        ClientId=stack.user_auth_client_id,
        AuthFlow="USER_AUTH",
        AuthParameters={"USERNAME": username, "SECRET_HASH": _hash(stack, username), **auth},
    )
    return result


def _respond(stack: DevStack, idp: Any, name: str, session: str | None, **responses: str) -> dict[str, Any]:
    call: dict[str, Any] = {
        "ClientId": stack.user_auth_client_id,
        "ChallengeName": name,
        "ChallengeResponses": {**responses, "SECRET_HASH": _hash(stack, responses["USERNAME"])},
    }
    if session is not None:
        call["Session"] = session
    result: dict[str, Any] = idp.respond_to_auth_challenge(**call)
    return result


def _finish_srp(
    stack: DevStack, idp: Any, srp: AWSSRP, auth_params: dict[str, str], challenge: dict[str, Any]
) -> dict[str, Any]:
    assert challenge["ChallengeName"] == "PASSWORD_VERIFIER"
    claim = srp.process_challenge(challenge["ChallengeParameters"], auth_params)
    return _respond(stack, idp, "PASSWORD_VERIFIER", challenge["Session"], **claim)


def test_preferred_password_srp_signs_in_with_real_srp(stack: DevStack, idp: Any) -> None:
    srp = _srp(stack, idp, stack.username, stack.password)
    auth_params = srp.get_auth_params()

    challenge = _start(stack, idp, stack.username, PREFERRED_CHALLENGE="PASSWORD_SRP", SRP_A=auth_params["SRP_A"])
    answer = _finish_srp(stack, idp, srp, auth_params, challenge)

    assert answer["AuthenticationResult"]["IdToken"]
    assert answer["AuthenticationResult"]["RefreshToken"]


def test_password_srp_with_a_wrong_password_is_refused(stack: DevStack, idp: Any) -> None:
    srp = _srp(stack, idp, stack.username, stack.password + "x")
    auth_params = srp.get_auth_params()
    challenge = _start(stack, idp, stack.username, PREFERRED_CHALLENGE="PASSWORD_SRP", SRP_A=auth_params["SRP_A"])

    with pytest.raises(ClientError) as refused:
        _finish_srp(stack, idp, srp, auth_params, challenge)

    assert _code(refused) == "NotAuthorizedException"


def test_password_verifier_of_user_auth_needs_its_session(stack: DevStack, idp: Any) -> None:
    srp = _srp(stack, idp, stack.username, stack.password)
    auth_params = srp.get_auth_params()
    challenge = _start(stack, idp, stack.username, PREFERRED_CHALLENGE="PASSWORD_SRP", SRP_A=auth_params["SRP_A"])
    claim = srp.process_challenge(challenge["ChallengeParameters"], auth_params)

    with pytest.raises(ClientError) as refused:
        _respond(stack, idp, "PASSWORD_VERIFIER", None, **claim)

    assert _code(refused) == "NotAuthorizedException"


def test_preferred_password_signs_in_and_a_wrong_one_is_refused(stack: DevStack, idp: Any) -> None:
    answer = _start(stack, idp, stack.username, PREFERRED_CHALLENGE="PASSWORD", PASSWORD=stack.password)
    assert answer["AuthenticationResult"]["AccessToken"]

    with pytest.raises(ClientError) as refused:
        _start(stack, idp, stack.username, PREFERRED_CHALLENGE="PASSWORD", PASSWORD=stack.password + "x")
    assert _code(refused) == "NotAuthorizedException"


def test_without_preference_the_user_selects_from_available_challenges(stack: DevStack, idp: Any) -> None:
    offer = _start(stack, idp, stack.username)

    assert offer["ChallengeName"] == "SELECT_CHALLENGE"
    assert offer["AvailableChallenges"] == ["PASSWORD", "PASSWORD_SRP", "EMAIL_OTP"]
    assert offer["Session"]

    answer = _respond(stack, idp, "SELECT_CHALLENGE", offer["Session"], USERNAME=stack.username, ANSWER="PASSWORD",
                      PASSWORD=stack.password)  # fmt: skip
    assert answer["AuthenticationResult"]["IdToken"]


def test_select_password_srp_then_password_verifier(stack: DevStack, idp: Any) -> None:
    srp = _srp(stack, idp, stack.username, stack.password)
    auth_params = srp.get_auth_params()
    offer = _start(stack, idp, stack.username)

    challenge = _respond(
        stack, idp, "SELECT_CHALLENGE", offer["Session"], USERNAME=stack.username, ANSWER="PASSWORD_SRP",
        SRP_A=auth_params["SRP_A"],
    )  # fmt: skip
    answer = _finish_srp(stack, idp, srp, auth_params, challenge)

    assert answer["AuthenticationResult"]["IdToken"]


def test_email_otp_is_offered_only_to_a_verified_email(stack: DevStack, idp: Any) -> None:
    offer = _start(stack, idp, stack.mfa_username)

    assert offer["AvailableChallenges"] == ["PASSWORD", "PASSWORD_SRP"]


def test_email_otp_can_be_chosen_and_answered_with_the_code(stack: DevStack, idp: Any) -> None:
    offer = _start(stack, idp, stack.username)
    challenge = _respond(stack, idp, "SELECT_CHALLENGE", offer["Session"], USERNAME=stack.username, ANSWER="EMAIL_OTP")
    assert challenge["ChallengeName"] == "EMAIL_OTP"
    code = stack.last_email_otp(stack.username)
    assert code

    answer = _respond(stack, idp, "EMAIL_OTP", challenge["Session"], USERNAME=stack.username, EMAIL_OTP_CODE=code)

    assert answer["AuthenticationResult"]["IdToken"]


def test_a_choice_session_is_single_use_and_bound_to_its_user(stack: DevStack, idp: Any) -> None:
    offer = _start(stack, idp, stack.username)
    with pytest.raises(ClientError) as other_user:
        _respond(stack, idp, "SELECT_CHALLENGE", offer["Session"], USERNAME=stack.mfa_username, ANSWER="PASSWORD",
                 PASSWORD=stack.mfa_password)  # fmt: skip
    assert _code(other_user) == "NotAuthorizedException"

    with pytest.raises(ClientError) as replay:
        _respond(stack, idp, "SELECT_CHALLENGE", offer["Session"], USERNAME=stack.username, ANSWER="PASSWORD",
                 PASSWORD=stack.password)  # fmt: skip
    assert _code(replay) == "NotAuthorizedException"


def test_totp_user_still_gets_software_token_mfa_after_the_first_factor(stack: DevStack, idp: Any) -> None:
    srp = _srp(stack, idp, stack.mfa_username, stack.mfa_password)
    auth_params = srp.get_auth_params()
    offer = _start(stack, idp, stack.mfa_username)
    challenge = _respond(
        stack, idp, "SELECT_CHALLENGE", offer["Session"], USERNAME=stack.mfa_username, ANSWER="PASSWORD_SRP",
        SRP_A=auth_params["SRP_A"],
    )  # fmt: skip
    mfa = _finish_srp(stack, idp, srp, auth_params, challenge)
    assert mfa["ChallengeName"] == "SOFTWARE_TOKEN_MFA"

    answer = _respond(stack, idp, "SOFTWARE_TOKEN_MFA", mfa["Session"], USERNAME=stack.mfa_username,
                      SOFTWARE_TOKEN_MFA_CODE=pyotp.TOTP(stack.totp_secret).now())  # fmt: skip
    assert answer["AuthenticationResult"]["IdToken"]

    direct = _start(stack, idp, stack.mfa_username, PREFERRED_CHALLENGE="PASSWORD", PASSWORD=stack.mfa_password)
    assert direct["ChallengeName"] == "SOFTWARE_TOKEN_MFA"


def test_user_auth_needs_allow_user_auth_and_the_secret_hash(stack: DevStack, idp: Any) -> None:
    with pytest.raises(ClientError) as not_enabled:
        idp.initiate_auth(
            ClientId=stack.client_id,
            AuthFlow="USER_AUTH",
            AuthParameters={
                "USERNAME": stack.username,
                "SECRET_HASH": secret_hash(stack.client_secret, stack.username, stack.client_id),
            },
        )
    with pytest.raises(ClientError) as no_hash:
        idp.initiate_auth(
            ClientId=stack.user_auth_client_id, AuthFlow="USER_AUTH", AuthParameters={"USERNAME": stack.username}
        )

    assert _code(not_enabled) == "InvalidParameterException"
    assert _code(no_hash) == "NotAuthorizedException"


def test_user_auth_client_allows_no_other_sign_in_flow(stack: DevStack, idp: Any) -> None:
    with pytest.raises(ClientError) as refused:
        idp.initiate_auth(
            ClientId=stack.user_auth_client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": stack.username, "PASSWORD": stack.password,
                            "SECRET_HASH": _hash(stack, stack.username)},
        )  # fmt: skip

    assert _code(refused) == "InvalidParameterException"


def test_seeded_user_auth_client_connection(stack: DevStack) -> None:
    conn = stack.conn_dict_for("user_auth")

    assert conn["extra"]["auth_flow"] == "USER_AUTH"
    assert conn["extra"]["client_id"] == stack.user_auth_client_id
    assert stack.describe()["user_auth_client_id"] == stack.user_auth_client_id
