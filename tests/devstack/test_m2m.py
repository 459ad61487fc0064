"""Machine-to-machine: GetClientToken, the /oauth2/token endpoint and scope-checked API routes."""

from __future__ import annotations

import base64
from typing import Any

import jwt
import pytest
import requests
from botocore.exceptions import ClientError

from airflow_cognito_iam.devstack.stack import DevStack

from .conftest import srp_sign_in

pytestmark = pytest.mark.integration

READ, WRITE = "devstack-api/orders.read", "devstack-api/orders.write"


def _code(exc_info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc_info.value.response["Error"]["Code"])


def _client_token(stack: DevStack, idp: Any, **kwargs: Any) -> dict[str, Any]:
    call: dict[str, Any] = {"ClientId": stack.m2m_client_id, "Secret": stack.m2m_client_secret, **kwargs}
    result: dict[str, Any] = idp.get_client_token(**call)["ClientAuthenticationResult"]
    return result


def _api(stack: DevStack, method: str, token: str, **kwargs: Any) -> requests.Response:
    return requests.request(
        method, f"{stack.api_url}/m2m/orders", headers={"Authorization": f"Bearer {token}"}, timeout=10, **kwargs
    )


def test_get_client_token_issues_a_scoped_access_token_without_a_user(stack: DevStack, idp: Any) -> None:
    result = _client_token(stack, idp)

    assert result["TokenType"] == "Bearer"
    assert result["ExpiresIn"] == 3600
    claims = jwt.decode(result["AccessToken"], options={"verify_signature": False})
    assert claims["token_use"] == "access"
    assert claims["client_id"] == stack.m2m_client_id
    assert claims["sub"] == stack.m2m_client_id
    assert sorted(claims["scope"].split()) == [READ, WRITE]
    assert "username" not in claims
    assert jwt.get_unverified_header(result["AccessToken"])["alg"] == "RS256"


def test_scopes_narrow_the_token_and_the_api_checks_them(stack: DevStack, idp: Any) -> None:
    read_only = _client_token(stack, idp, Scopes=[READ])["AccessToken"]
    both = _client_token(stack, idp, Scopes=[READ, WRITE])["AccessToken"]

    listed = _api(stack, "GET", read_only, params={"date": "2026-11-20"})
    assert listed.status_code == 200
    assert listed.json()["client_id"] == stack.m2m_client_id
    refused = _api(stack, "POST", read_only, json={"sku": "x"})
    assert refused.status_code == 403
    assert WRITE in refused.json()["message"]
    assert "insufficient_scope" in refused.headers["WWW-Authenticate"]
    assert _api(stack, "POST", both, json={"sku": "x"}).status_code == 201


def test_wrong_secret_and_disallowed_scope_are_refused(stack: DevStack, idp: Any) -> None:
    with pytest.raises(ClientError) as wrong_secret:
        idp.get_client_token(ClientId=stack.m2m_client_id, Secret="w" * 36)
    with pytest.raises(ClientError) as bad_scope:
        _client_token(stack, idp, Scopes=["devstack-api/orders.delete"])

    assert _code(wrong_secret) == "NotAuthorizedException"
    assert _code(bad_scope) == "InvalidParameterException"
    assert "invalid_scope" in str(bad_scope.value)


def test_user_flows_are_refused_on_the_machine_client_and_client_tokens_on_user_clients(
    stack: DevStack, idp: Any
) -> None:
    from airflow_cognito_iam.devstack.cognito_layer import secret_hash

    with pytest.raises(ClientError) as user_flow:
        idp.initiate_auth(
            ClientId=stack.m2m_client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": stack.username, "PASSWORD": stack.password,
                            "SECRET_HASH": secret_hash(stack.m2m_client_secret, stack.username, stack.m2m_client_id)},
        )  # fmt: skip
    with pytest.raises(ClientError) as on_user_client:
        idp.get_client_token(ClientId=stack.client_id, Secret=stack.client_secret)

    assert _code(user_flow) == "InvalidParameterException"
    assert _code(on_user_client) == "InvalidParameterException"


def test_client_token_flow_must_be_the_only_flow(stack: DevStack) -> None:
    admin = stack.client("cognito-idp")

    with pytest.raises(ClientError) as mixed:
        admin.create_user_pool_client(
            UserPoolId=stack.user_pool_id,
            ClientName="mixed",
            GenerateSecret=True,
            ExplicitAuthFlows=["ALLOW_CLIENT_TOKEN_AUTH", "ALLOW_USER_SRP_AUTH"],
        )
    with pytest.raises(ClientError) as no_secret:
        admin.create_user_pool_client(
            UserPoolId=stack.user_pool_id, ClientName="no-secret", ExplicitAuthFlows=["ALLOW_CLIENT_TOKEN_AUTH"]
        )

    assert _code(mixed) == "InvalidParameterException"
    assert _code(no_secret) == "InvalidParameterException"


def _token_endpoint(stack: DevStack, data: dict[str, str], basic: tuple[str, str] | None = None) -> requests.Response:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if basic is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
    return requests.post(stack.oauth_token_url, data=data, headers=headers, timeout=10)


def test_oauth2_token_endpoint_with_basic_auth_or_form_credentials(stack: DevStack) -> None:
    by_basic = _token_endpoint(
        stack, {"grant_type": "client_credentials", "scope": READ}, (stack.m2m_client_id, stack.m2m_client_secret)
    )
    by_form = _token_endpoint(
        stack,
        {
            "grant_type": "client_credentials",
            "client_id": stack.m2m_client_id,
            "client_secret": stack.m2m_client_secret,
        },
    )

    assert by_basic.status_code == 200, by_basic.text
    body = by_basic.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["token_type"] == "Bearer"
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["scope"] == READ
    assert _api(stack, "GET", body["access_token"]).status_code == 200
    assert _api(stack, "POST", body["access_token"], json={}).status_code == 403
    assert sorted(jwt.decode(by_form.json()["access_token"], options={"verify_signature": False})["scope"].split()) == [
        READ,
        WRITE,
    ]


def test_oauth2_token_endpoint_errors_are_oauth_json(stack: DevStack) -> None:
    creds = (stack.m2m_client_id, stack.m2m_client_secret)
    cases = [
        (_token_endpoint(stack, {"grant_type": "client_credentials"}, (stack.m2m_client_id, "w" * 36)), 401,
         "invalid_client"),
        (_token_endpoint(stack, {"grant_type": "client_credentials", "client_id": "nope", "client_secret": "x"}), 400,
         "invalid_client"),
        (_token_endpoint(stack, {"grant_type": "client_credentials", "scope": "devstack-api/x"}, creds), 400,
         "invalid_scope"),
        (_token_endpoint(stack, {"grant_type": "password"}, creds), 400, "unsupported_grant_type"),
        (_token_endpoint(stack, {"grant_type": "client_credentials"}, (stack.client_id, stack.client_secret)), 400,
         "unauthorized_client"),
    ]  # fmt: skip

    for response, status, error in cases:
        assert (response.status_code, response.json()) == (status, {"error": error})
    assert stack.m2m_client_secret not in str([r.text for r, _, _ in cases])


def test_m2m_routes_refuse_missing_or_foreign_tokens_and_user_tokens_lack_scopes(stack: DevStack, idp: Any) -> None:
    user_access = srp_sign_in(stack, idp)["AccessToken"]

    assert _api(stack, "GET", "not-a-token").status_code == 401
    assert requests.get(f"{stack.api_url}/m2m/orders", timeout=10).status_code == 401
    assert _api(stack, "GET", user_access).status_code == 403


def test_bearer_whoami_still_takes_user_tokens(stack: DevStack, idp: Any) -> None:
    tokens = srp_sign_in(stack, idp)

    answer = requests.get(f"{stack.api_url}/bearer/whoami", headers={"Authorization": tokens["IdToken"]}, timeout=10)

    assert answer.status_code == 200
    assert answer.json()["username"] == stack.username


def test_stats_count_client_tokens_and_the_token_endpoint(stack: DevStack, idp: Any) -> None:
    _client_token(stack, idp)
    _token_endpoint(stack, {"grant_type": "client_credentials"}, (stack.m2m_client_id, stack.m2m_client_secret))
    _token_endpoint(stack, {"grant_type": "client_credentials"}, (stack.m2m_client_id, "w" * 36))

    stats = stack.stats()
    assert stats["cognito"]["GetClientToken"] == 1
    assert stats["cognito"]["oauth2/token"] == 2
    assert stats["cognito_rejected"]["oauth2/token"] == 1


def test_token_lifetime_knob_applies_to_machine_tokens(stack: DevStack, idp: Any) -> None:
    stack.set_token_lifetime(90)

    assert _client_token(stack, idp)["ExpiresIn"] == 90


def test_seeded_machine_client_connection(stack: DevStack) -> None:
    conn = stack.conn_dict_for("m2m", oauth_token_url=stack.oauth_token_url)

    assert conn["extra"]["auth_flow"] == "CLIENT_CREDENTIALS"
    assert conn["extra"]["scopes"] == [READ, WRITE]
    assert "identity_pool_id" not in conn["extra"]
    assert "login" not in conn
    assert stack.describe()["m2m_scopes"] == [READ, WRITE]
