"""Cognito as configured in 2026, against the devstack (which enforces it; moto does not).

Refresh-token rotation, USER_AUTH (choice-based sign-in), machine-to-machine clients and remembered
devices, through the public hook and real task processes.
"""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from airflow_cognito_iam.auth.cache import FileCredentialCache, clear_memory_cache
from airflow_cognito_iam.auth.errors import AuthenticationError, ConfigurationError
from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook
from airflow_cognito_iam.operators.api import CognitoIamApiOperator
from tests.support.processes import run_released_together

pytestmark = pytest.mark.integration


def use(monkeypatch: pytest.MonkeyPatch, conn: dict[str, Any], conn_id: str = "cognito_iam_default") -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    clear_memory_cache()


def calls(stack: Any) -> dict[str, int]:
    return dict(stack.stats()["cognito"])


def idp(stack: Any) -> Any:
    return boto3.client(
        "cognito-idp", region_name=stack.region, endpoint_url=stack.moto_endpoint_url,
        config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1}),
    )


# -- refresh-token rotation ---------------------------------------------------------------------


def test_a_forced_refresh_on_a_rotation_client_spends_the_token_once(
    cognito_iam_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = cognito_iam_conn
    use(monkeypatch, stack.conn_dict_for("rotation"))
    hook = CognitoIamHook()
    first = hook.get_tokens()
    stack.reset_stats()

    hook.provider.force_refresh_tokens()
    second = hook.get_tokens()
    assert calls(stack) == {"GetTokensFromRefreshToken": 1}, "a refresh, not a sign-in"
    assert second.refresh_token
    assert second.refresh_token != first.refresh_token, "rotated"

    # The old token is single-use: the stack refuses it now (grace period 0).
    with pytest.raises(ClientError) as refused:
        idp(stack).get_tokens_from_refresh_token(
            RefreshToken=first.refresh_token,
            ClientId=stack.rotation_client_id,
            ClientSecret=stack.rotation_client_secret,
        )
    assert refused.value.response["Error"]["Code"] in ("NotAuthorizedException", "RefreshTokenReuseException")

    # The next refresh uses the new token (and works), and the shared cache holds the newest one.
    stack.reset_stats()
    hook.provider.force_refresh_tokens()
    third = hook.get_tokens()
    assert calls(stack) == {"GetTokensFromRefreshToken": 1}
    cached = FileCredentialCache(hook.settings).load()
    assert cached is not None
    assert cached.tokens is not None
    assert cached.tokens.refresh_token == third.refresh_token != second.refresh_token


def test_a_rotated_out_refresh_token_falls_back_to_one_sign_in(
    cognito_iam_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = cognito_iam_conn
    use(monkeypatch, stack.conn_dict_for("rotation", credential_cache="memory"))
    hook = CognitoIamHook()
    tokens = hook.get_tokens()
    # Someone else spends the token (another deployment sharing the user, say).
    idp(stack).get_tokens_from_refresh_token(
        RefreshToken=tokens.refresh_token,
        ClientId=stack.rotation_client_id,
        ClientSecret=stack.rotation_client_secret,
    )
    stack.reset_stats()
    hook.provider.force_refresh_tokens()
    counted = calls(stack)
    assert counted.get("GetTokensFromRefreshToken") == 1
    assert counted.get("InitiateAuth") == 1, "exactly one full sign-in, never a loop"


REFRESHER = """
import sys
from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook
hook = CognitoIamHook()
print("ready", flush=True)
sys.stdin.readline()
print("tokens", hook.get_tokens().refresh_token[-12:], flush=True)
"""


def test_8_processes_that_find_expired_tokens_spend_the_refresh_token_once(
    cognito_iam_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = cognito_iam_conn
    use(monkeypatch, stack.conn_dict_for("rotation"))
    stack.set_token_lifetime(61)  # usable for about a second with the 60 s token margin
    CognitoIamHook().get_tokens()
    stack.set_token_lifetime(3600)
    time.sleep(2)
    clear_memory_cache()
    stack.reset_stats()
    outputs = run_released_together(REFRESHER, 8)
    ends = {next(x for x in out.splitlines() if x.startswith("tokens")) for out in outputs}
    counted = calls(stack)
    assert counted.get("GetTokensFromRefreshToken") == 1, counted
    assert "InitiateAuth" not in counted, counted
    assert len(ends) == 1, "every process ends on the one rotated refresh token"


# -- USER_AUTH ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preferred", "expected_calls"),
    [
        ("PASSWORD_SRP", {"InitiateAuth": 1, "RespondToAuthChallenge": 1}),
        ("PASSWORD", {"InitiateAuth": 1}),
        ("NONE", {"InitiateAuth": 1, "RespondToAuthChallenge": 2}),  # SELECT_CHALLENGE, then the SRP proof
    ],
)
def test_user_auth_signs_in_with_or_without_a_preferred_challenge(
    cognito_iam_conn: Any, monkeypatch: pytest.MonkeyPatch, preferred: str, expected_calls: dict[str, int]
) -> None:
    stack = cognito_iam_conn
    use(monkeypatch, stack.conn_dict_for("user_auth", preferred_challenge=preferred, identity_pool_id=None))
    stack.reset_stats()
    tokens = CognitoIamHook().get_tokens()
    assert tokens.id_token.count(".") == 2
    counted = calls(stack)
    assert {k: v for k, v in counted.items() if k in ("InitiateAuth", "RespondToAuthChallenge")} == expected_calls


def test_user_auth_with_a_secret_client_gets_aws_credentials(cognito_iam_conn: Any, monkeypatch: Any) -> None:
    stack = cognito_iam_conn
    use(monkeypatch, stack.conn_dict_for("user_auth"))
    assert stack.user_auth_client_secret
    whoami = CognitoIamHook().request("GET", "/whoami").json()
    assert whoami["identity_id"]


def test_user_auth_with_totp(cognito_iam_conn: Any, monkeypatch: Any) -> None:
    stack = cognito_iam_conn
    conn = stack.conn_dict_for(
        "user_auth", login=stack.mfa_username, password=stack.mfa_password, totp_secret=stack.totp_secret,
        identity_pool_id=None,
    )
    use(monkeypatch, conn)
    stack.reset_stats()
    CognitoIamHook().get_tokens()
    assert calls(stack).get("RespondToAuthChallenge", 0) >= 2  # SRP proof, then the TOTP code


# -- machine to machine --------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["GetClientToken", "oauth2/token"])
def test_m2m_reaches_a_scoped_route_and_is_refused_without_the_scope(
    cognito_iam_conn: Any, monkeypatch: pytest.MonkeyPatch, via: str
) -> None:
    stack = cognito_iam_conn
    extra = {"oauth_token_url": stack.oauth_token_url} if via == "oauth2/token" else {}
    use(monkeypatch, stack.conn_dict_for("m2m", scopes="devstack-api/orders.read", **extra))
    stack.reset_stats()
    read = CognitoIamApiOperator(task_id="m2m", endpoint="/m2m/orders", auth="access_token").execute({})
    assert read is not None
    write = CognitoIamApiOperator(task_id="m2m_w", endpoint="/m2m/orders", method="POST", json={},
                                  auth="access_token")
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="403"):
        write.execute({})
    assert calls(stack).get(via) == 1, "one token for both requests (cached)"


def test_m2m_in_iam_mode_is_refused_before_any_call(cognito_iam_conn: Any, monkeypatch: Any) -> None:
    stack = cognito_iam_conn
    use(monkeypatch, stack.conn_dict_for("m2m"))
    stack.reset_stats()
    with pytest.raises(ConfigurationError, match="access_token"):
        CognitoIamHook().request("GET", "/whoami")
    assert calls(stack) == {}
    conn = stack.conn_dict_for("m2m", identity_pool_id=stack.identity_pool_id)
    use(monkeypatch, conn)
    with pytest.raises(ConfigurationError, match="identity_pool_id"):
        _ = CognitoIamHook().settings


def test_m2m_with_a_wrong_secret_names_the_field(cognito_iam_conn: Any, monkeypatch: Any) -> None:
    stack = cognito_iam_conn
    use(monkeypatch, stack.conn_dict_for("m2m", client_secret="wrong-secret-value-of-the-right-length-xyz"))
    with pytest.raises(ConfigurationError, match="client_secret") as info:
        CognitoIamHook().get_tokens()
    assert "wrong-secret-value-of-the-right-length-xyz" not in str(info.value)


# -- remembered devices --------------------------------------------------------------------------


def test_a_remembered_device_signs_in_with_device_srp_and_refreshes_with_its_key(
    cognito_iam_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = cognito_iam_conn
    use(monkeypatch, stack.conn_dict_for("device", identity_pool_id=None))
    first = CognitoIamHook().get_tokens()
    assert first.device is not None, "the new device was confirmed and kept"
    assert calls(stack).get("ConfirmDevice") == 1

    # A later task whose tokens are gone but whose device is remembered: device SRP.
    cache = FileCredentialCache(CognitoIamHook().settings)
    entry = cache.load()
    assert entry is not None
    assert entry.tokens is not None
    assert entry.tokens.device is not None
    stack.reset_stats()
    tokens = CognitoIamHook().provider.authenticator.sign_in(entry.tokens.device)
    counted = calls(stack)
    # PASSWORD_VERIFIER, DEVICE_SRP_AUTH, DEVICE_PASSWORD_VERIFIER
    assert counted.get("RespondToAuthChallenge") == 3, counted
    assert "ConfirmDevice" not in counted
    assert tokens.device == entry.tokens.device

    # Refresh names the device; without its key the stack refuses the refresh.
    stack.reset_stats()
    refreshed = CognitoIamHook().provider.authenticator.refresh(tokens)
    assert refreshed.device == tokens.device
    assert calls(stack) == {"GetTokensFromRefreshToken": 1}


def test_an_unanswerable_user_auth_challenge_tells_the_admin_what_to_change() -> None:
    from airflow_cognito_iam.auth.settings import CognitoSettings
    from airflow_cognito_iam.auth.user_pool import UserPoolAuthenticator

    settings = CognitoSettings.from_connection(
        host=None, login="u", password="p",
        extra={"user_pool_id": "eu-west-1_x", "client_id": "c", "auth_flow": "USER_AUTH"},
    )
    auth = UserPoolAuthenticator(settings, client=object())
    message = auth._challenge_message("EMAIL_OTP", {})
    assert "ALLOW_USER_AUTH" in message
    with pytest.raises(AuthenticationError, match="WEB_AUTHN"):
        auth._select_challenge({"AvailableChallenges": ["WEB_AUTHN"]}, "u", auth._srp(None))
