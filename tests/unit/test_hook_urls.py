"""CognitoIamHook.url_for: relative endpoints join the connection host; absolute ones must be allowed."""

from __future__ import annotations

import json

import pytest

from airflow_cognito_iam.auth.errors import HostNotAllowedError
from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook

CONN = {
    "conn_type": "cognito_iam",
    "host": "https://abc123.execute-api.eu-west-1.amazonaws.com/prod",
    "login": "etl-bot",
    "password": "pw-not-used-here",
    "extra": {"user_pool_id": "eu-west-1_AbC123", "client_id": "client", "identity_pool_id": "eu-west-1:0123-abcd"},
}


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> CognitoIamHook:
    monkeypatch.setenv("AIRFLOW_CONN_URLS_TEST", json.dumps(CONN))
    return CognitoIamHook("urls_test", allowed_hosts=["data.example.com"])


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("/orders", "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/orders"),
        ("orders", "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/orders"),
        ("orders:search", "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/orders:search"),
        ("", "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"),
        ("https://data.example.com/x?a=1", "https://data.example.com/x?a=1"),
        (
            "https://abc123.execute-api.eu-west-1.amazonaws.com:443/prod/x",
            "https://abc123.execute-api.eu-west-1.amazonaws.com:443/prod/x",
        ),
    ],
)
def test_endpoints_resolve_under_allowed_hosts(hook: CognitoIamHook, endpoint: str, url: str) -> None:
    assert hook.url_for(endpoint) == url


def test_an_absolute_url_to_another_host_is_refused(hook: CognitoIamHook) -> None:
    with pytest.raises(HostNotAllowedError, match=r"evil\.example\.net"):
        hook.url_for("https://evil.example.net/steal")
