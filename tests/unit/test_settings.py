"""CognitoSettings: validation up front, every problem at once, nothing secret in errors or repr."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_cognito_iam.auth.errors import ConfigurationError
from airflow_cognito_iam.auth.settings import CognitoSettings, is_loopback_host

GOOD_EXTRA = {
    "user_pool_id": "eu-west-1_AbC123xyz",
    "client_id": "1example23456789abcdefghij",
    "client_secret": "client-secret-value",
    "identity_pool_id": "eu-west-1:01234567-89ab-cdef-0123-456789abcdef",
    "totp_secret": "JBSWY3DPEHPK3PXP",
}


def build(extra: dict[str, Any] | None = None, **kwargs: Any) -> CognitoSettings:
    values: dict[str, Any] = {
        "host": "https://abc123defg.execute-api.eu-central-1.amazonaws.com/prod",
        "login": "etl-bot",
        "password": "Sup3r-Secret!",
        "extra": {**GOOD_EXTRA, **(extra or {})},
    }
    values.update(kwargs)
    return CognitoSettings.from_connection(**values)


def problems_of(**kwargs: Any) -> dict[str, str]:
    with pytest.raises(ConfigurationError) as caught:
        build(**kwargs)
    return caught.value.problems


def test_region_is_inferred_from_the_user_pool_id() -> None:
    assert build().region == "eu-west-1"


def test_explicit_region_overrides_the_pool_prefix() -> None:
    assert build({"region": "us-east-2"}).region == "us-east-2"


def test_api_region_is_inferred_from_an_execute_api_host() -> None:
    settings = build()
    assert settings.api_region == "eu-central-1"
    assert settings.signing_region == "eu-central-1"
    assert settings.api_service == "execute-api"


def test_api_region_falls_back_to_the_pool_region_for_a_custom_domain() -> None:
    settings = build(host="https://api.example.com/v1")
    assert settings.api_region is None
    assert settings.signing_region == "eu-west-1"


def test_vpc_endpoint_host_gives_the_api_region() -> None:
    settings = build(host="https://abc-vpce-0123.execute-api.ap-southeast-2.vpce.amazonaws.com/prod")
    assert settings.signing_region == "ap-southeast-2"


def test_host_without_scheme_defaults_to_https_and_keeps_the_port() -> None:
    settings = build(host="api.example.com", port=8443)
    assert settings.api_base_url == "https://api.example.com:8443"
    assert settings.api_host == "api.example.com:8443"


def test_every_missing_field_is_reported_at_once() -> None:
    problems = problems_of(login="", password=None, extra={"user_pool_id": "", "client_id": None})
    assert set(problems) >= {"login", "password", "user_pool_id", "client_id"}


def test_malformed_ids_are_named_with_an_example() -> None:
    problems = problems_of(
        extra={"user_pool_id": "AbC123", "identity_pool_id": "not-a-pool", "custom_role_arn": "role/x"}
    )
    assert "eu-west-1_AbC123xyz" in problems["user_pool_id"]
    assert "<region>:<uuid>" in problems["identity_pool_id"]
    assert "arn:aws:iam" in problems["custom_role_arn"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("auth_flow", "CUSTOM_AUTH"), ("credential_cache", "redis"), ("timeout", "soon"), ("max_attempts", 0)],
)
def test_invalid_enumerations_and_numbers_are_refused(field: str, value: Any) -> None:
    assert field in problems_of(extra={field: value})


def test_plain_http_to_a_remote_host_is_refused_unless_opted_in() -> None:
    assert "host" in problems_of(host="http://api.internal.example:8080")
    assert build(host="http://api.internal.example:8080", extra={"allow_http": "true"}).api_base_url == (
        "http://api.internal.example:8080"
    )


def test_plain_http_to_loopback_is_allowed_for_local_stacks() -> None:
    settings = build(
        host="http://127.0.0.1:9000",
        extra={"cognito_idp_endpoint_url": "http://localhost:4566/", "cognito_identity_endpoint_url": "http://[::1]:1"},
    )
    assert settings.api_base_url == "http://127.0.0.1:9000"
    assert settings.cognito_idp_endpoint_url == "http://localhost:4566"


def test_endpoint_overrides_obey_the_same_http_rule() -> None:
    assert "cognito_idp_endpoint_url" in problems_of(extra={"cognito_idp_endpoint_url": "http://10.0.0.5:4566"})


def test_a_typo_in_an_extra_is_named_with_a_suggestion() -> None:
    problems = problems_of(extra={"identity_pool": "eu-west-1:0123"})
    assert "identity_pool_id" in problems["identity_pool"]


def test_unrelated_unknown_extras_are_ignored() -> None:
    assert build({"owner_team": "data-platform"}).client_id == GOOD_EXTRA["client_id"]


def test_string_booleans_and_numbers_from_the_ui_are_parsed() -> None:
    settings = build({"verify": "false", "timeout": "12.5", "allowed_hosts": "a.example.com, b.example.com"})
    assert settings.verify is False
    assert settings.timeout == 12.5
    assert settings.allowed_hosts == ("a.example.com", "b.example.com")


def test_verify_may_name_a_ca_bundle() -> None:
    assert build({"verify": "/etc/ssl/certs/corp.pem"}).verify == "/etc/ssl/certs/corp.pem"


def test_no_secret_reaches_repr_or_error_messages() -> None:
    settings = build()
    text = repr(settings)
    with pytest.raises(ConfigurationError) as caught:
        build({"auth_flow": "bogus"})
    for secret in ("Sup3r-Secret!", GOOD_EXTRA["client_secret"], GOOD_EXTRA["totp_secret"]):
        assert secret not in text
        assert secret not in str(caught.value)


def test_error_names_the_connection() -> None:
    with pytest.raises(ConfigurationError, match="'my_api'"):
        CognitoSettings.from_connection(host=None, login=None, password=None, extra={}, conn_id="my_api")


def test_provider_name_is_the_identity_pool_logins_key() -> None:
    assert build().provider_name == "cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123xyz"


def test_provider_name_keeps_the_pool_region_when_region_is_overridden() -> None:
    # The Logins key names the issuer of the ID token, which is the pool's own region.
    assert build({"region": "us-east-1"}).provider_name.startswith("cognito-idp.eu-west-1.amazonaws.com/")


def test_provider_name_uses_the_china_partition_domain() -> None:
    settings = build({"user_pool_id": "cn-north-1_AbC123", "identity_pool_id": "cn-north-1:0123abcd-0000"})
    assert settings.provider_name == "cognito-idp.cn-north-1.amazonaws.com.cn/cn-north-1_AbC123"


def test_cache_key_is_stable_secret_free_and_user_specific() -> None:
    a, b = build(), build(password="another-password")
    other_user = build(login="someone-else")
    assert a.cache_key() == b.cache_key()
    assert a.cache_key() != other_user.cache_key()
    assert "Sup3r-Secret!" not in a.cache_key()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("::1", True),
        ("10.0.0.1", False),
        ("example.com", False),
        (None, False),
    ],
)
def test_loopback_detection(host: str | None, expected: bool) -> None:
    assert is_loopback_host(host) is expected
