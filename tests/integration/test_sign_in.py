"""Sign-in over real HTTP on 127.0.0.1 against the devstack, whose strict layer checks what real
Cognito checks and moto does not: the SRP proof, SECRET_HASH on every call, the client's allowed
flows, refresh-token ownership. Call counts come from the stack's own counters.
"""

from __future__ import annotations

import logging
import secrets
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_cognito_iam.auth.errors import AuthenticationError, ConfigurationError, TransientError
from airflow_cognito_iam.auth.retry import RetryPolicy
from airflow_cognito_iam.auth.settings import CognitoSettings
from airflow_cognito_iam.auth.user_pool import TotpStepLedger, UserPoolAuthenticator, unverified_claims

pytestmark = pytest.mark.integration

Stack = Any  # airflow_cognito_iam.devstack.DevStack


@pytest.fixture
def stack(cognito_iam_conn: Stack) -> Stack:
    """The shared devstack, with faults cleared and counters zeroed for this test."""
    return cognito_iam_conn


def cognito_calls(stack: Stack) -> dict[str, int]:
    return dict(stack.stats()["cognito"])


def settings_for(stack: Stack, *, secret: bool = True, endpoint: str | None = None, **extra: Any) -> CognitoSettings:
    """Settings for the stack's pool; ``secret`` picks the client with a secret, else the public one."""
    values: dict[str, Any] = {
        "user_pool_id": stack.user_pool_id,
        "client_id": stack.client_id if secret else stack.public_client_id,
        "cognito_idp_endpoint_url": endpoint or stack.moto_endpoint_url,
    }
    if secret:
        values["client_secret"] = stack.client_secret
    login = extra.pop("login", stack.username)
    password = extra.pop("password", stack.password)
    values.update(extra)
    return CognitoSettings.from_connection(host=None, login=login, password=password, extra=values)


@pytest.fixture
def own_user(stack: Stack) -> Iterator[tuple[str, str]]:
    """A user only this test signs in as, so revoking its tokens disturbs no other test."""
    idp = stack.client("cognito-idp")
    username, password = f"cf-{secrets.token_hex(4)}", f"Cf{secrets.token_urlsafe(10)}9!"
    idp.admin_create_user(UserPoolId=stack.user_pool_id, Username=username, MessageAction="SUPPRESS")
    idp.admin_set_user_password(UserPoolId=stack.user_pool_id, Username=username, Password=password, Permanent=True)
    yield username, password
    idp.admin_delete_user(UserPoolId=stack.user_pool_id, Username=username)


def no_sleep() -> tuple[RetryPolicy, list[float]]:
    waits: list[float] = []
    return RetryPolicy(sleep=waits.append), waits


@pytest.mark.parametrize("secret", [True, False], ids=["client-with-secret", "public-client"])
def test_srp_sign_in_passes_the_real_verifier(stack: Stack, secret: bool) -> None:
    tokens = UserPoolAuthenticator(settings_for(stack, secret=secret)).sign_in()
    assert unverified_claims(tokens.id_token)["cognito:username"] == stack.username
    assert tokens.refresh_token
    assert tokens.expires_at > datetime.now(UTC) + timedelta(minutes=30)
    assert cognito_calls(stack) == {"InitiateAuth": 1, "RespondToAuthChallenge": 1}
    assert not stack.stats()["cognito_rejected"]


def test_srp_with_a_wrong_password_fails_the_proof_and_is_not_retried(stack: Stack) -> None:
    policy, waits = no_sleep()
    settings = settings_for(stack, password="Wrong-Passw0rd!")
    with pytest.raises(AuthenticationError, match="incorrect username or password") as info:
        UserPoolAuthenticator(settings, retry_policy=policy).sign_in()
    assert cognito_calls(stack) == {"InitiateAuth": 1, "RespondToAuthChallenge": 1}
    assert waits == []
    assert "Wrong-Passw0rd!" not in str(info.value)


def test_password_sign_in_returns_tokens_in_one_call(stack: Stack) -> None:
    tokens = UserPoolAuthenticator(settings_for(stack, auth_flow="USER_PASSWORD_AUTH")).sign_in()
    assert unverified_claims(tokens.access_token)["username"] == stack.username
    assert cognito_calls(stack) == {"InitiateAuth": 1}


def test_password_flow_on_a_client_that_does_not_allow_it_names_the_setting(stack: Stack) -> None:
    # The stack's public client allows SRP and refresh only, like an Amplify-created client.
    settings = settings_for(stack, secret=False, auth_flow="USER_PASSWORD_AUTH")
    with pytest.raises(ConfigurationError, match="ALLOW_USER_PASSWORD_AUTH") as info:
        UserPoolAuthenticator(settings).sign_in()
    assert stack.password not in str(info.value)


@pytest.mark.parametrize("flow", ["USER_SRP_AUTH", "USER_PASSWORD_AUTH"])
def test_a_client_with_a_secret_needs_client_secret(stack: Stack, flow: str) -> None:
    settings = settings_for(stack, secret=False, client_id=stack.client_id, auth_flow=flow)
    with pytest.raises(ConfigurationError, match="has a client secret: set extra client_secret") as info:
        UserPoolAuthenticator(settings).sign_in()
    assert stack.password not in str(info.value)
    assert cognito_calls(stack) == {"InitiateAuth": 1}


@pytest.mark.parametrize("flow", ["USER_SRP_AUTH", "USER_PASSWORD_AUTH"])
def test_a_wrong_client_secret_is_named_without_being_shown(stack: Stack, flow: str) -> None:
    settings = settings_for(stack, auth_flow=flow, client_secret="not-the-secret-of-this-client")
    with pytest.raises(ConfigurationError, match="not the secret of app client") as info:
        UserPoolAuthenticator(settings).sign_in()
    assert "not-the-secret-of-this-client" not in str(info.value)


@pytest.mark.parametrize("secret", [True, False], ids=["client-with-secret", "public-client"])
def test_near_expiry_the_refresh_token_is_used_not_a_full_sign_in(stack: Stack, secret: bool) -> None:
    auth = UserPoolAuthenticator(settings_for(stack, secret=secret))
    first = auth.get_valid_tokens(None, datetime.now(UTC), margin=300)
    stack.reset_stats()
    # A minute before expiry (inside the 5 min margin): GetTokensFromRefreshToken, with the raw
    # client secret when the client has one, and no new SRP exchange.
    second = auth.get_valid_tokens(first, first.expires_at - timedelta(seconds=60), margin=300)
    assert cognito_calls(stack) == {"GetTokensFromRefreshToken": 1}
    assert not stack.stats()["cognito_rejected"]
    assert second.id_token != first.id_token
    assert second.refresh_token == first.refresh_token  # Cognito does not return a new one
    assert unverified_claims(second.id_token)["cognito:username"] == stack.username


def test_valid_tokens_cause_no_cognito_call(stack: Stack) -> None:
    auth = UserPoolAuthenticator(settings_for(stack))
    first = auth.sign_in()
    stack.reset_stats()
    assert auth.get_valid_tokens(first, datetime.now(UTC), margin=300) is first
    assert cognito_calls(stack) == {}


def test_a_revoked_refresh_token_falls_back_to_a_full_sign_in(stack: Stack, own_user: tuple[str, str]) -> None:
    username, password = own_user
    auth = UserPoolAuthenticator(settings_for(stack, login=username, password=password))
    first = auth.sign_in()
    stack.client("cognito-idp").admin_user_global_sign_out(UserPoolId=stack.user_pool_id, Username=username)
    stack.reset_stats()
    again = auth.get_valid_tokens(first, first.expires_at, margin=300)
    # The refused refresh, then SRP again.
    assert cognito_calls(stack) == {"GetTokensFromRefreshToken": 1, "InitiateAuth": 1, "RespondToAuthChallenge": 1}
    assert again.refresh_token != first.refresh_token


@pytest.mark.parametrize("flow", ["USER_SRP_AUTH", "USER_PASSWORD_AUTH"])
def test_totp_challenge_is_answered_from_totp_secret(stack: Stack, flow: str) -> None:
    settings = settings_for(
        stack, login=stack.mfa_username, password=stack.mfa_password, totp_secret=stack.totp_secret, auth_flow=flow
    )
    # A fresh ledger: other tests' TOTP steps must not make this one wait for the next step.
    tokens = UserPoolAuthenticator(settings, totp_ledger=TotpStepLedger()).sign_in()
    assert unverified_claims(tokens.id_token)["cognito:username"] == stack.mfa_username
    calls = cognito_calls(stack)
    # One TOTP answer (two if the code crossed a 30 s boundary and was retried once).
    answers = calls["RespondToAuthChallenge"] - (1 if flow == "USER_SRP_AUTH" else 0)
    assert answers in (calls["InitiateAuth"], 2 * calls["InitiateAuth"] - 1)


def test_a_wrong_totp_secret_is_refused_after_one_more_time_step(stack: Stack) -> None:
    waits: list[float] = []
    settings = settings_for(
        stack,
        login=stack.mfa_username,
        password=stack.mfa_password,
        totp_secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
        auth_flow="USER_PASSWORD_AUTH",
    )
    with pytest.raises(AuthenticationError, match="two consecutive TOTP codes") as info:
        UserPoolAuthenticator(settings, sleep=waits.append, totp_ledger=TotpStepLedger()).sign_in()
    assert len(waits) == 1
    assert cognito_calls(stack) == {"InitiateAuth": 2, "RespondToAuthChallenge": 2}
    assert "JBSWY3DP" not in str(info.value)


def test_mfa_without_totp_secret_tells_the_admin_what_to_set(stack: Stack) -> None:
    settings = settings_for(stack, login=stack.mfa_username, password=stack.mfa_password)
    with pytest.raises(AuthenticationError, match="set extra totp_secret") as info:
        UserPoolAuthenticator(settings).sign_in()
    assert stack.mfa_password not in str(info.value)


@pytest.mark.parametrize("flow", ["USER_SRP_AUTH", "USER_PASSWORD_AUTH"])
def test_new_password_required_is_an_error_naming_the_admin_command(stack: Stack, flow: str) -> None:
    settings = settings_for(
        stack, login=stack.new_password_username, password=stack.new_password_password, auth_flow=flow
    )
    with pytest.raises(AuthenticationError) as info:
        UserPoolAuthenticator(settings).sign_in()
    message = str(info.value)
    assert "admin-set-user-password" in message
    assert stack.new_password_username in message
    assert stack.user_pool_id in message
    assert stack.new_password_password not in message


def test_wrong_password_is_refused_once_and_never_retried(stack: Stack) -> None:
    policy, waits = no_sleep()
    settings = settings_for(stack, password="Wrong-Passw0rd!", auth_flow="USER_PASSWORD_AUTH")
    with pytest.raises(AuthenticationError, match="incorrect username or password") as info:
        UserPoolAuthenticator(settings, retry_policy=policy).sign_in()
    assert cognito_calls(stack) == {"InitiateAuth": 1}
    assert waits == []
    assert "Wrong-Passw0rd!" not in str(info.value)
    assert stack.username in str(info.value)


def test_unknown_user_is_named(stack: Stack) -> None:
    settings = settings_for(stack, login="nobody-here")
    with pytest.raises(AuthenticationError, match=r"'nobody-here' in user pool .* does not exist"):
        UserPoolAuthenticator(settings).sign_in()


def test_unknown_app_client_is_a_configuration_error(stack: Stack) -> None:
    settings = settings_for(stack, secret=False, client_id="doesnotexist1234567890")
    with pytest.raises(ConfigurationError, match="doesnotexist1234567890"):
        UserPoolAuthenticator(settings).sign_in()


def test_throttled_sign_in_is_retried_with_backoff_and_succeeds(stack: Stack) -> None:
    policy, waits = no_sleep()
    stack.set_cognito_faults(count=2, actions=["InitiateAuth"])
    tokens = UserPoolAuthenticator(settings_for(stack), retry_policy=policy).sign_in()
    assert tokens.id_token
    assert cognito_calls(stack) == {"InitiateAuth": 3, "RespondToAuthChallenge": 1}
    assert len(waits) == 2


def test_a_throttled_challenge_answer_is_retried_too(stack: Stack) -> None:
    policy, waits = no_sleep()
    stack.set_cognito_faults(count=1, actions=["RespondToAuthChallenge"], error="InternalErrorException", status=500)
    assert UserPoolAuthenticator(settings_for(stack), retry_policy=policy).sign_in().id_token
    assert cognito_calls(stack) == {"InitiateAuth": 1, "RespondToAuthChallenge": 2}
    assert len(waits) == 1


def test_endless_throttling_stops_at_the_attempt_limit(stack: Stack) -> None:
    waits: list[float] = []
    stack.set_cognito_faults(count=None, actions=["InitiateAuth"])
    with pytest.raises(TransientError, match=r"after 3 attempt.*TooManyRequestsException"):
        UserPoolAuthenticator(
            settings_for(stack), retry_policy=RetryPolicy(max_attempts=3, sleep=waits.append)
        ).sign_in()
    assert cognito_calls(stack) == {"InitiateAuth": 3}
    assert len(waits) == 2


def test_an_unreachable_endpoint_is_retried_then_reported(stack: Stack) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    waits: list[float] = []
    settings = settings_for(stack, endpoint=f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(TransientError, match="EndpointConnectionError"):
        UserPoolAuthenticator(settings, retry_policy=RetryPolicy(max_attempts=2, sleep=waits.append)).sign_in()
    assert len(waits) == 1


def test_no_secret_or_token_reaches_the_logs(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    from airflow_cognito_iam.auth.identity_pool import IdentityPoolExchanger

    # DEBUG everywhere, as Airflow's logging_level=DEBUG does: botocore then logs request
    # parameters and response bodies, which must come out redacted.
    caplog.set_level(logging.DEBUG)
    stack.set_cognito_faults(count=1, actions=["RespondToAuthChallenge", "GetCredentialsForIdentity"])
    settings = settings_for(
        stack,
        login=stack.mfa_username,
        password=stack.mfa_password,
        totp_secret=stack.totp_secret,
        identity_pool_id=stack.identity_pool_id,
        cognito_identity_endpoint_url=stack.moto_endpoint_url,
        auth_flow="USER_PASSWORD_AUTH",  # the password itself goes over the wire in this flow
    )
    policy, _ = no_sleep()
    auth = UserPoolAuthenticator(settings, retry_policy=policy, totp_ledger=TotpStepLedger())
    tokens = auth.sign_in()
    tokens = auth.refresh(tokens)
    creds = IdentityPoolExchanger(settings, retry_policy=policy).get_credentials(tokens.id_token)
    with pytest.raises(AuthenticationError):
        UserPoolAuthenticator(settings_for(stack, password="Wrong-Passw0rd!"), retry_policy=policy).sign_in()
    assert "retrying" in caplog.text  # the retries were logged...
    secret_values = [
        stack.mfa_password,
        stack.client_secret,
        stack.totp_secret,
        "Wrong-Passw0rd!",
        tokens.id_token,
        tokens.access_token,
        tokens.refresh_token,
        creds.secret_access_key,
        creds.session_token,
    ]
    for value in secret_values:  # ...and nothing secret was
        assert value
        assert value not in caplog.text
