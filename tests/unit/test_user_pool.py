"""Sign-in logic without a network: SECRET_HASH, claims, challenge and error messages, TOTP, refresh.

Cognito's answers are queued with botocore's own Stubber on a real client built by
``build_cognito_client``; nothing of ours is replaced. Real HTTP flows live in tests/integration.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest
from botocore import UNSIGNED
from botocore.stub import ANY, Stubber

from airflow_cognito_iam.auth.errors import AuthenticationError, ConfigurationError, TransientError
from airflow_cognito_iam.auth.models import CognitoTokens
from airflow_cognito_iam.auth.retry import RetryPolicy
from airflow_cognito_iam.auth.settings import CognitoSettings
from airflow_cognito_iam.auth.user_pool import (
    TotpStepLedger,
    UserPoolAuthenticator,
    build_cognito_client,
    scrub,
    secret_hash,
    unverified_claims,
)

PASSWORD = "Corr3ct-Horse-Battery!"
CLIENT_SECRET = "s3cr3t-client-value-0123456789abcdefghij"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
WALL = NOW.timestamp() + 7  # 7 s into a TOTP step


def make_settings(**extra: Any) -> CognitoSettings:
    values = {
        "user_pool_id": "eu-west-1_AbC123",
        "client_id": "clientabc",
        "cognito_idp_endpoint_url": "http://127.0.0.1:9",
    }
    values.update(extra)
    return CognitoSettings.from_connection(host=None, login="alice", password=PASSWORD, extra=values)


def jwt(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


def auth_result(username: str = "alice", refresh: bool = True, expires_in: int = 3600) -> dict[str, Any]:
    result: dict[str, Any] = {
        "IdToken": jwt({"sub": "0000-sub", "cognito:username": username}),
        "AccessToken": jwt({"sub": "0000-sub", "username": username}),
        "ExpiresIn": expires_in,
        "TokenType": "Bearer",
    }
    if refresh:
        result["RefreshToken"] = "refresh-token-value-1"
    return {"AuthenticationResult": result}


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def authenticator(settings: CognitoSettings, sleeps: Sleeps) -> tuple[UserPoolAuthenticator, Stubber]:
    client = build_cognito_client("cognito-idp", settings)
    stub = Stubber(client)
    stub.activate()
    auth = UserPoolAuthenticator(
        settings,
        client,
        retry_policy=RetryPolicy(max_attempts=4, sleep=sleeps),
        clock=lambda: NOW,
        sleep=sleeps,
        wall_time=lambda: WALL,
        totp_ledger=TotpStepLedger(),
    )
    return auth, stub


@pytest.fixture
def password_flow(sleeps: Sleeps) -> Iterator[tuple[UserPoolAuthenticator, Stubber]]:
    auth, stub = authenticator(make_settings(auth_flow="USER_PASSWORD_AUTH", client_secret=CLIENT_SECRET), sleeps)
    yield auth, stub
    stub.assert_no_pending_responses()


def test_secret_hash_matches_known_vectors() -> None:
    # printf '%s' 'alice1example-client-id' | openssl dgst -sha256 -hmac 'example-client-secret' -binary | base64
    assert secret_hash("alice1", "example-client-id", "example-client-secret") == (
        "IjHB7ovmAy1XZ9McFFNhLvPQ0unk+PKnWZVoq2tQf7c="
    )
    # Non-ASCII usernames and secrets are hashed as UTF-8, as Cognito does.
    assert secret_hash("ünïcødé@example.com", "7d4bq1abc", "sëcret") == "qy8r22u0ly/3zmR93lODxeZh61Ner7/epw6B61fQcoU="


def test_unverified_claims_reads_the_payload_and_tolerates_garbage() -> None:
    assert unverified_claims(jwt({"cognito:username": "alice", "sub": "x"}))["cognito:username"] == "alice"
    assert unverified_claims("not-a-jwt") == {}
    assert unverified_claims("a.!!!.c") == {}


def test_scrub_removes_secret_values_jwts_and_long_tokens() -> None:
    text = f"bad {PASSWORD} and {jwt({'a': 1})} and {'Q' * 50} for alice"
    cleaned = scrub(text, [PASSWORD])
    assert PASSWORD not in cleaned
    assert "eyJ" not in cleaned
    assert "Q" * 50 not in cleaned
    assert "alice" in cleaned


def test_password_sign_in_sends_secret_hash_and_returns_tokens(password_flow: Any) -> None:
    auth, stub = password_flow
    expected = {
        "AuthFlow": "USER_PASSWORD_AUTH",
        "ClientId": "clientabc",
        "AuthParameters": {
            "USERNAME": "alice",
            "PASSWORD": PASSWORD,
            "SECRET_HASH": secret_hash("alice", "clientabc", CLIENT_SECRET),
        },
    }
    stub.add_response("initiate_auth", auth_result(), expected)
    tokens = auth.sign_in()
    assert tokens.expires_at == NOW + timedelta(hours=1)
    assert tokens.refresh_token == "refresh-token-value-1"
    assert tokens.secret_hash_username == "alice"
    assert PASSWORD not in repr(tokens)
    assert "refresh-token-value-1" not in repr(tokens)


def test_refresh_uses_get_tokens_from_refresh_token_with_the_raw_secret(password_flow: Any) -> None:
    auth, stub = password_flow
    old = CognitoTokens("id", "access", "refresh-token-value-1", NOW, secret_hash_username="6f1e-internal-sub")
    expected = {"RefreshToken": "refresh-token-value-1", "ClientId": "clientabc", "ClientSecret": CLIENT_SECRET}
    stub.add_response("get_tokens_from_refresh_token", auth_result(username="6f1e-internal-sub", refresh=False),
                      expected)
    new = auth.refresh(old)
    assert new.refresh_token == "refresh-token-value-1"  # no rotation: the old one stays valid
    assert new.id_token != "id"


def test_a_rotated_refresh_token_replaces_the_old_one(password_flow: Any) -> None:
    auth, stub = password_flow
    old = CognitoTokens("id", "access", "refresh-token-value-0", NOW, secret_hash_username="alice")
    stub.add_response("get_tokens_from_refresh_token", auth_result(refresh=True), None)
    assert auth.refresh(old).refresh_token == "refresh-token-value-1"


def test_an_endpoint_without_the_new_operation_falls_back_to_refresh_token_auth(password_flow: Any) -> None:
    from airflow_cognito_iam.auth import user_pool

    user_pool._LEGACY_REFRESH_ENDPOINTS.clear()
    auth, stub = password_flow
    old = CognitoTokens("id", "access", "refresh-token-value-1", NOW, secret_hash_username="6f1e-internal-sub")
    stub.add_client_error("get_tokens_from_refresh_token", "UnknownOperationException", "Unknown operation")
    expected = {
        "AuthFlow": "REFRESH_TOKEN_AUTH",
        "ClientId": "clientabc",
        "AuthParameters": {
            "REFRESH_TOKEN": "refresh-token-value-1",
            # Cognito checks this hash against the internal username (the `sub` for alias sign-in).
            "SECRET_HASH": secret_hash("6f1e-internal-sub", "clientabc", CLIENT_SECRET),
        },
    }
    stub.add_response("initiate_auth", auth_result(username="6f1e-internal-sub", refresh=False), expected)
    assert auth.refresh(old).refresh_token == "refresh-token-value-1"
    user_pool._LEGACY_REFRESH_ENDPOINTS.clear()


def test_valid_tokens_are_reused_without_any_call(password_flow: Any) -> None:
    auth, _ = password_flow
    current = CognitoTokens("id", "access", "r", NOW + timedelta(hours=1))
    assert auth.get_valid_tokens(current, NOW, margin=300) is current


def test_tokens_near_expiry_are_refreshed_not_signed_in_again(password_flow: Any) -> None:
    auth, stub = password_flow
    current = CognitoTokens("id", "access", "refresh-token-value-1", NOW + timedelta(seconds=60), "alice")
    stub.add_response("get_tokens_from_refresh_token", auth_result(refresh=False), None)
    assert auth.get_valid_tokens(current, NOW, margin=300).expires_at == NOW + timedelta(hours=1)
    assert auth.last_method == "refresh"


def test_a_rejected_refresh_token_falls_back_to_a_full_sign_in(password_flow: Any) -> None:
    auth, stub = password_flow
    current = CognitoTokens("id", "access", "refresh-token-value-1", NOW - timedelta(seconds=1), "alice")
    stub.add_client_error("get_tokens_from_refresh_token", "NotAuthorizedException", "Refresh Token has expired")
    stub.add_response(
        "initiate_auth", auth_result(), {"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": ANY, "AuthParameters": ANY}
    )
    assert auth.get_valid_tokens(current, NOW, margin=300).refresh_token == "refresh-token-value-1"


CHALLENGE_ADVICE = {
    "NEW_PASSWORD_REQUIRED": "admin-set-user-password",
    "SMS_MFA": "switch the user to TOTP",
    "MFA_SETUP": "register TOTP",
    "CUSTOM_CHALLENGE": "custom-auth Lambda",
    "SELECT_MFA_TYPE": "totp_secret",
    "SOFTWARE_TOKEN_MFA": "set extra totp_secret",
    "EMAIL_OTP": "TOTP",
}


@pytest.mark.parametrize(("challenge", "advice"), CHALLENGE_ADVICE.items())
def test_challenges_we_cannot_answer_say_what_an_admin_must_do(challenge: str, advice: str, password_flow: Any) -> None:
    auth, stub = password_flow
    stub.add_response(
        "initiate_auth",
        {"ChallengeName": challenge, "Session": "session-" + "x" * 30, "ChallengeParameters": {"USERNAME": "alice"}},
    )
    with pytest.raises(AuthenticationError) as info:
        auth.sign_in()
    message = str(info.value)
    assert advice in message
    assert "alice" in message
    assert "eu-west-1_AbC123" in message
    assert PASSWORD not in message
    assert CLIENT_SECRET not in message


# (Cognito error code, message as a server may send it, expected class, words the message must hold)
ERROR_CASES = [
    (
        "NotAuthorizedException",
        "Incorrect username or password.",
        AuthenticationError,
        "incorrect username or password",
    ),
    (
        "NotAuthorizedException",
        "USER_PASSWORD_AUTH flow not enabled for this client",
        ConfigurationError,
        "ALLOW_USER_PASSWORD_AUTH",
    ),
    (
        "NotAuthorizedException",
        "Unable to verify secret hash for client clientabc",
        ConfigurationError,
        "client_secret",
    ),
    ("NotAuthorizedException", "User is disabled.", AuthenticationError, "admin-enable-user"),
    ("NotAuthorizedException", "Password attempts exceeded", AuthenticationError, "locks the user out"),
    ("UserNotFoundException", "User does not exist.", AuthenticationError, "does not exist"),
    ("UserNotConfirmedException", "User is not confirmed.", AuthenticationError, "admin-confirm-sign-up"),
    ("PasswordResetRequiredException", "Password reset required", AuthenticationError, "admin-set-user-password"),
    ("InvalidParameterException", "Missing required parameter SECRET_HASH", ConfigurationError, "has a client secret"),
    (
        "ResourceNotFoundException",
        "User pool client clientabc does not exist.",
        ConfigurationError,
        "check user_pool_id, client_id",
    ),
    ("UserLambdaValidationException", "PreAuthentication failed: blocked", AuthenticationError, "Lambda trigger"),
]


@pytest.mark.parametrize(("code", "server_message", "expected", "words"), ERROR_CASES)
def test_cognito_errors_become_clear_errors_without_secrets(
    code: str, server_message: str, expected: type[Exception], words: str, sleeps: Sleeps
) -> None:
    settings = make_settings(auth_flow="USER_PASSWORD_AUTH")  # no client_secret configured
    auth, stub = authenticator(settings, sleeps)
    # moto echoes request values (SECRET_HASH, tokens) in messages; ours must never repeat them.
    stub.add_client_error("initiate_auth", code, f"{server_message} {PASSWORD} {jwt({'x': 1})}")
    with pytest.raises(expected) as info:
        auth.sign_in()
    message = str(info.value)
    assert words in message
    assert PASSWORD not in message
    assert "eyJ" not in message
    assert sleeps == []  # never retried
    stub.assert_no_pending_responses()


def test_a_wrong_client_secret_is_named_as_such(sleeps: Sleeps) -> None:
    auth, stub = authenticator(make_settings(auth_flow="USER_PASSWORD_AUTH", client_secret=CLIENT_SECRET), sleeps)
    stub.add_client_error(
        "initiate_auth", "NotAuthorizedException", "Unable to verify secret hash for client clientabc"
    )
    with pytest.raises(ConfigurationError, match="not the secret of app client clientabc") as info:
        auth.sign_in()
    assert CLIENT_SECRET not in str(info.value)


def test_throttling_is_retried_then_succeeds(password_flow: Any, sleeps: Sleeps) -> None:
    auth, stub = password_flow
    for _ in range(2):
        stub.add_client_error("initiate_auth", "TooManyRequestsException", "Rate exceeded", http_status_code=400)
    stub.add_response(
        "initiate_auth", auth_result(), {"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": ANY, "AuthParameters": ANY}
    )
    assert auth.sign_in().access_token
    assert len(sleeps) == 2


def test_endless_throttling_gives_up_with_a_transient_error(password_flow: Any, sleeps: Sleeps) -> None:
    auth, stub = password_flow
    for _ in range(4):
        stub.add_client_error("initiate_auth", "TooManyRequestsException", "Rate exceeded")
    with pytest.raises(TransientError, match=r"initiate_auth for user 'alice'.*after 4 attempt"):
        auth.sign_in()


def test_totp_challenge_is_answered_from_the_secret(sleeps: Sleeps) -> None:
    auth, stub = authenticator(make_settings(auth_flow="USER_PASSWORD_AUTH", totp_secret=TOTP_SECRET), sleeps)
    stub.add_response(
        "initiate_auth", {"ChallengeName": "SOFTWARE_TOKEN_MFA", "Session": "s" * 40, "ChallengeParameters": {}}
    )
    code = pyotp.TOTP(TOTP_SECRET).at(WALL)
    stub.add_response(
        "respond_to_auth_challenge",
        auth_result(),
        {
            "ClientId": "clientabc",
            "ChallengeName": "SOFTWARE_TOKEN_MFA",
            "Session": "s" * 40,
            "ChallengeResponses": {"USERNAME": "alice", "SOFTWARE_TOKEN_MFA_CODE": code},
        },
    )
    assert auth.sign_in().id_token
    stub.assert_no_pending_responses()


def mfa_challenge() -> dict[str, Any]:
    return {"ChallengeName": "SOFTWARE_TOKEN_MFA", "Session": "s" * 40, "ChallengeParameters": {}}


def totp_answer(code: str) -> dict[str, Any]:
    return {
        "ClientId": "clientabc",
        "ChallengeName": "SOFTWARE_TOKEN_MFA",
        "Session": "s" * 40,
        "ChallengeResponses": {"USERNAME": "alice", "SOFTWARE_TOKEN_MFA_CODE": code},
    }


STEP = int(WALL // 30)


def test_a_refused_totp_code_is_retried_once_with_the_next_time_step(sleeps: Sleeps) -> None:
    auth, stub = authenticator(make_settings(auth_flow="USER_PASSWORD_AUTH", totp_secret=TOTP_SECRET), sleeps)
    stub.add_response("initiate_auth", mfa_challenge())
    stub.add_client_error(
        "respond_to_auth_challenge",
        "CodeMismatchException",
        "Invalid code received for user",
        expected_params=totp_answer(pyotp.TOTP(TOTP_SECRET).at(STEP * 30)),
    )
    stub.add_response("initiate_auth", mfa_challenge())
    stub.add_client_error(
        "respond_to_auth_challenge",
        "CodeMismatchException",
        "Invalid code received for user",
        expected_params=totp_answer(pyotp.TOTP(TOTP_SECRET).at((STEP + 1) * 30)),
    )
    with pytest.raises(AuthenticationError, match="two consecutive TOTP codes") as info:
        auth.sign_in()
    assert sleeps == [30 - 7 + 0.5]  # waited once, until just into the next step
    assert TOTP_SECRET not in str(info.value)
    stub.assert_no_pending_responses()


def test_a_totp_code_is_never_sent_twice_by_one_worker(sleeps: Sleeps) -> None:
    auth, stub = authenticator(make_settings(auth_flow="USER_PASSWORD_AUTH", totp_secret=TOTP_SECRET), sleeps)
    for step in (STEP, STEP + 1):
        stub.add_response("initiate_auth", mfa_challenge())
        stub.add_response(
            "respond_to_auth_challenge", auth_result(), totp_answer(pyotp.TOTP(TOTP_SECRET).at(step * 30))
        )
    auth.sign_in()
    assert sleeps == []
    auth.sign_in()  # same 30 s step: must wait for the next code rather than replay this one
    assert sleeps == [30 - 7 + 0.5]
    stub.assert_no_pending_responses()


def test_select_mfa_type_is_answered_with_totp_when_a_secret_is_set(sleeps: Sleeps) -> None:
    auth, stub = authenticator(make_settings(auth_flow="USER_PASSWORD_AUTH", totp_secret=TOTP_SECRET), sleeps)
    stub.add_response(
        "initiate_auth", {"ChallengeName": "SELECT_MFA_TYPE", "Session": "s" * 40, "ChallengeParameters": {}}
    )
    stub.add_response(
        "respond_to_auth_challenge",
        {"ChallengeName": "SOFTWARE_TOKEN_MFA", "Session": "t" * 40, "ChallengeParameters": {}},
        {
            "ClientId": ANY,
            "ChallengeName": "SELECT_MFA_TYPE",
            "Session": ANY,
            "ChallengeResponses": {"USERNAME": "alice", "ANSWER": "SOFTWARE_TOKEN_MFA"},
        },
    )
    stub.add_response("respond_to_auth_challenge", auth_result())
    assert auth.sign_in().id_token


def test_a_non_base32_totp_secret_is_refused_before_any_cognito_call() -> None:
    # Settings refuse it, so no authenticator (and no InitiateAuth) ever exists for it.
    with pytest.raises(ConfigurationError, match="totp_secret") as info:
        make_settings(auth_flow="USER_PASSWORD_AUTH", totp_secret="not base32 !!")
    assert "not base32 !!" not in str(info.value)


def test_srp_sends_a_public_value_and_never_the_password(sleeps: Sleeps) -> None:
    auth, stub = authenticator(make_settings(client_secret=CLIENT_SECRET), sleeps)
    expected = {
        "AuthFlow": "USER_SRP_AUTH",
        "ClientId": "clientabc",
        # Exactly these keys: the password itself never leaves the worker in SRP.
        "AuthParameters": {
            "USERNAME": "alice",
            "SRP_A": ANY,
            "SECRET_HASH": secret_hash("alice", "clientabc", CLIENT_SECRET),
        },
    }
    stub.add_client_error("initiate_auth", "UserNotFoundException", "User does not exist.", expected_params=expected)
    with pytest.raises(AuthenticationError, match="flow USER_SRP_AUTH"):
        auth.sign_in()
    stub.assert_no_pending_responses()


def test_clients_are_unsigned_with_one_botocore_attempt_and_the_endpoint_override() -> None:
    settings = make_settings(
        identity_pool_id="eu-central-1:0123abcd-0000-0000-0000-000000000000",
        cognito_identity_endpoint_url="http://127.0.0.1:8",
        timeout=7,
    )
    idp = build_cognito_client("cognito-idp", settings)
    identity = build_cognito_client("cognito-identity", settings)
    assert idp.meta.endpoint_url == "http://127.0.0.1:9"
    assert idp.meta.region_name == "eu-west-1"
    assert identity.meta.endpoint_url == "http://127.0.0.1:8"
    assert identity.meta.region_name == "eu-central-1"  # the identity pool's own region
    config = idp.meta.config
    assert config.signature_version is UNSIGNED
    assert config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert (config.connect_timeout, config.read_timeout) == (7, 7)


def test_alias_sign_in_answers_and_refreshes_as_the_internal_username(sleeps: Sleeps) -> None:
    """Sign-in with an alias (e.g. e-mail): real Cognito names the user by its internal username.

    SRP is verified by the devstack's server-side SRP math for the internal username, and every
    later call (password verifier, TOTP answer, refresh) must carry that name in USERNAME and in
    SECRET_HASH, not the alias the connection's login holds.
    """
    from botocore.awsrequest import AWSResponse, HTTPHeaders

    from airflow_cognito_iam.devstack.srp import SrpServerSession

    internal = "9b1d7c2e-4f5a-4c3b-8d2e-1a2b3c4d5e6f"
    settings = make_settings(client_secret=CLIENT_SECRET, totp_secret=TOTP_SECRET)  # login "alice" is the alias
    client = build_cognito_client("cognito-idp", settings)
    calls: list[tuple[str, dict[str, Any]]] = []
    server: dict[str, SrpServerSession] = {}

    def cognito(model: Any, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        body = json.loads(params["body"])
        calls.append((model.name, body))
        answers = body.get("ChallengeResponses", {})
        if body.get("AuthFlow") == "USER_SRP_AUTH":
            session = SrpServerSession.start(
                pool_id=settings.user_pool_id,
                username=internal,
                password=PASSWORD,
                client_id=settings.client_id,
                srp_a_hex=body["AuthParameters"]["SRP_A"],
            )
            server["srp"] = session
            parsed: dict[str, Any] = {
                "ChallengeName": "PASSWORD_VERIFIER",
                "ChallengeParameters": {
                    "USERNAME": internal,
                    "USER_ID_FOR_SRP": internal,
                    "SALT": session.salt_hex,
                    "SRP_B": session.srp_b_hex,
                    "SECRET_BLOCK": session.secret_block_b64,
                },
            }
        elif body.get("ChallengeName") == "PASSWORD_VERIFIER":
            server["srp"].verify(
                signature_b64=answers["PASSWORD_CLAIM_SIGNATURE"], timestamp=answers["TIMESTAMP"], now=datetime.now(UTC)
            )
            parsed = {
                "ChallengeName": "SOFTWARE_TOKEN_MFA",
                "Session": "m" * 40,
                "ChallengeParameters": {"USER_ID_FOR_SRP": internal},
            }
        else:  # the TOTP answer or the refresh
            parsed = auth_result(username=internal, refresh="RefreshToken" not in body)
        return AWSResponse("", 200, HTTPHeaders(), None), parsed

    client.meta.events.register("before-call.cognito-identity-provider.*", cognito)
    auth = UserPoolAuthenticator(
        settings,
        client,
        retry_policy=RetryPolicy(max_attempts=1, sleep=sleeps),
        clock=lambda: NOW,
        sleep=sleeps,
        wall_time=lambda: WALL,
        totp_ledger=TotpStepLedger(),
    )

    tokens = auth.refresh(auth.sign_in())

    assert [name for name, _ in calls] == ["InitiateAuth", "RespondToAuthChallenge", "RespondToAuthChallenge",
                                           "GetTokensFromRefreshToken"]
    start, verifier, totp, refresh = (body for _, body in calls)
    assert start["AuthParameters"]["USERNAME"] == "alice"  # the first call names the user as typed
    assert start["AuthParameters"]["SECRET_HASH"] == secret_hash("alice", "clientabc", CLIENT_SECRET)
    internal_hash = secret_hash(internal, "clientabc", CLIENT_SECRET)
    assert verifier["ChallengeResponses"]["USERNAME"] == internal
    assert verifier["ChallengeResponses"]["SECRET_HASH"] == internal_hash
    assert totp["ChallengeResponses"] == {
        "USERNAME": internal,
        "SOFTWARE_TOKEN_MFA_CODE": pyotp.TOTP(TOTP_SECRET).at(STEP * 30),
        "SECRET_HASH": internal_hash,
    }
    assert refresh["ClientSecret"] == CLIENT_SECRET  # GetTokensFromRefreshToken takes the raw secret
    assert tokens.secret_hash_username == internal
